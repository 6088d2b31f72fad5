"""The shipped configs: ``lm.py`` (the trainer's, ``get_config("model=150m,...")``) and
``sweeps.py`` (the launcher's). They install with the package, so
``python -m anytime.lm --config=configs/lm.py:ARGS`` works from any directory: a config path
that does not exist as given is looked up here by its file name (:func:`resolve`)."""

from __future__ import annotations

import os

DIR = os.path.dirname(os.path.abspath(__file__))
SHIPPED = ("lm.py", "sweeps.py")


def resolve(spec: str) -> str:
  """``FILE.py[:ARGS]`` -> the same, with FILE replaced by the shipped file of its name when
  FILE does not exist as given and its name is one of :data:`SHIPPED`."""
  path, sep, arg = spec.partition(":")
  if os.path.exists(path) or os.path.basename(path) not in SHIPPED:
    return spec
  return os.path.join(DIR, os.path.basename(path)) + sep + arg
