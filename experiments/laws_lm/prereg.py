"""The command-line protocol shared by the pre-registered LM tests (laws_lm_long, laws_lm_repeat,
laws_lm_clock): train the fit runs, write the forecast once (``--prereg``) and commit it, then
train the held-out runs, which refuse to start without it."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from anytime import cli
from experiments.laws_lm import runs as ll


def parse(
  argv, doc: str, phases: tuple[str, ...], prereg_help: str, reads_only: bool = False
) -> argparse.Namespace:
  """laws_lm's run arguments plus ``--prereg`` and ``--phase`` (one of ``phases``), checked
  (``reads_only``: the command trains nothing, so ``--root`` may be an archive)."""
  p = ll.parser(doc)
  ll.add_run_args(p, jobs=2)
  p.add_argument("--prereg", action="store_true", help=prereg_help)
  p.add_argument(
    "--phase", default="all", help=f"which runs to train: one of {phases} (default all)"
  )
  args = p.parse_args(argv)
  ll.check_run_args(args, reads_only=reads_only)
  if args.phase not in phases:
    raise ValueError(f"--phase={args.phase!r} is invalid: allowed {phases}.")
  return args


def write_once(path: str, forecast: Callable[[], list[dict]]) -> None:
  """Writes ``forecast()`` to ``path``, which must not exist: a forecast is made once."""
  if os.path.exists(path):
    raise ValueError(f"{path} exists: the forecast is written once, before the runs.")
  rows = forecast()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  ll._write_csv(path, rows)
  cli.print_rows(rows)


def require(path: str) -> None:
  """Refuses to go on to held-out runs before the forecast exists."""
  if not os.path.exists(path):
    raise ValueError(
      f"{path} missing: train --phase fit, then --prereg (and commit it), before the held-out runs."
    )
