"""``python -m anytime.sweeps``: the sweep launcher (see :mod:`anytime.sweeps.launch`)."""

from anytime import cli
from anytime.sweeps import launch

if __name__ == "__main__":
  cli.run(launch.main)
