"""A synthetic Figure-2 sweep with known answers: the one-trajectory rule, headline seeds, pairs.

``make_sweep`` is tests/sweeps/synthetic.py's three-horizon sweep (1, 2, 4x; tuned cosine 3.0,
2.9, 2.8 on seed 0) with headline seeds (1, 2). ``loss`` gives every run's loss (method - tuned
cosine per horizon in the tables below); ``write`` writes the grid, records the headline
selection and writes the headline seed runs' logs, except ``MISSING`` (so n = 2 at 4x).
"""

from __future__ import annotations

import math

from anytime.sweeps import common as sc
from anytime.sweeps import headline
from tests.sweeps import synthetic

# Per-seed shifts: a seed moves every cosine run by COSINE_SHIFT and every other run by SHIFT.
COSINE_SHIFT = {0: 0.0, 1: 0.010, 2: -0.004}
SHIFT = {0: 0.0, 1: 0.002, 2: 0.0}
# Constant + EMA, (lr, key) -> loss - tuned cosine at 1, 2, 4x (seed 0). Per horizon the best is
# (0.001, pema6.25) at 1x, (0.003, pema6.25) at 2x, (0.003, pema25) at 4x; the lowest MEAN
# (the one trajectory) is (0.001, pema25): +0.004 at every horizon.
CONSTANT = {
  (0.001, "pema6.25"): [-0.010, 0.020, 0.020],  # mean 0.010
  (0.001, "pema25"): [0.004, 0.004, 0.004],  # mean 0.004
  (0.003, "pema6.25"): [0.010, -0.005, 0.010],  # mean 0.005
  (0.003, "pema25"): [0.030, 0.030, -0.010],  # mean 0.01667
}
# Inverse-sqrt (lr 0.003), (offset, key): offset 10 with EMA 25 is best where finite but diverges
# at 4x, so it is not eligible; the trajectory is offset 40, EMA 25 (mean 0.01).
INVERSE_SQRT = {
  (10.0, "pema6.25"): [0.05, 0.05, 0.05],
  (10.0, "pema25"): [0.0, 0.0, math.nan],
  (40.0, "pema6.25"): [0.03, 0.03, 0.03],
  (40.0, "pema25"): [0.02, 0.01, 0.0],
}
MISSING = "cosine_h4_lr0.003_b0.95_s2"  # a headline run without a log
HEADLINE_RUNS = sorted(
  [f"cosine_h{h}_lr0.003_b0.95_s{s}" for h in (1, 2, 4) for s in (1, 2)]
  + [f"constant_h4_lr0.001_b0.95_s{s}" for s in (1, 2)]
  + [f"inverse_sqrt_o40_h4_lr0.003_b0.95_s{s}" for s in (1, 2)]
)
TRAIN_TOKENS = 5120  # 1x = 2560 tokens = 0.5 epochs


def make_sweep():
  s = synthetic.make_sweep()
  s.name = "f2"
  s.noise.seeds = ()
  s.headline.seeds = (1, 2)
  s.report_train_tokens = TRAIN_TOKENS
  return s


def loss(run: sc.Run, h: float, key: str) -> float | None:
  i, b = synthetic.H[h], synthetic.base(h)
  shift = SHIFT[run.seed]
  if run.method == "cosine":
    if h != run.horizon:
      return 2.5  # a longer cosine run read early: never scored
    return b + (0.0 if run.lr == 0.003 else 0.01) + COSINE_SHIFT[run.seed]
  if key == "raw":
    return b + 0.05 + shift
  if run.method == "constant":
    return b + CONSTANT[(run.lr, key)][i] + shift
  if run.method == "inverse_sqrt":
    return b + INVERSE_SQRT[(run.offset, key)][i] + shift
  if run.method == "wsd":
    return b + (0.007 if run.lr == 0.001 else 0.01)
  return b + 0.02  # schedule_free


def write_grid(s, root: str) -> list[sc.Run]:
  grid = sc.expand(s)
  for run in grid:
    synthetic.write_log(sc.workdir(root, run), run, loss)
  return grid


def write(s, root: str) -> tuple[list[sc.Run], list[sc.Run]]:
  """The grid, then the headline runs (recorded in headline.json); returns both."""
  grid = write_grid(s, root)
  extra = headline.runs(s, root)
  for run in extra:
    if run.name != MISSING:
      synthetic.write_log(sc.workdir(root, run), run, loss)
  return grid, extra
