"""``python -m anytime.sweeps.pin CORES PROGRAM ARGS...``: run PROGRAM on CORES only.

The launcher pins each run this way rather than with ``subprocess.Popen(preexec_fn=...)``: a
``preexec_fn`` forces a plain ``fork`` of the launcher, which has JAX (and its threads) loaded,
and runs Python in the child before ``exec``, the pattern that deadlocks a multithreaded
parent. Here the affinity is set in a fresh interpreter, then ``exec`` replaces it with the
trainer (same pid, so the launcher's lock and ``wait`` see the trainer itself).
"""

from __future__ import annotations

import os
import sys


def parse_cores(text: str) -> set[int]:
  """``"0,1"`` -> {0, 1} (ValueError naming the value otherwise)."""
  try:
    cores = {int(c) for c in text.split(",")}
  except ValueError:
    cores = set()
  if not cores or min(cores) < 0:
    raise ValueError(f"cores={text!r} is invalid: expected comma-separated core numbers >= 0.")
  return cores


def main(argv: list[str]) -> None:
  if len(argv) < 2:
    sys.exit("usage: python -m anytime.sweeps.pin CORES PROGRAM [ARGS...]")
  os.sched_setaffinity(0, parse_cores(argv[0]))
  os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
  main(sys.argv[1:])
