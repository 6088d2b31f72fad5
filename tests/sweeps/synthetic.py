"""Synthetic sweeps and eval logs with known answers, written in the trainer's own format.

``SYNTH`` is a three-horizon sweep of the ``tiny`` preset (1x = 20 steps of 128
tokens). ``LOSSES`` gives each run's loss per horizon and key; ``write_logs``
writes them with the trainer's header (anytime.lm.train._header) through
anytime.lm.metrics.MetricWriter, the eval records shaped as in train.run.
"""

from __future__ import annotations

import functools
import math

from anytime.lm import metrics as metrics_lib
from anytime.lm import model as model_lib
from anytime.lm import train
from anytime.sweeps import common as sc


def make_sweep():
  s = sc.load_sweep("smoke")
  s.name = "synth"
  s.horizons = (1, 2, 4)
  s.averages = ("pema6.25", "pema25")
  s.cosine.lrs = (0.001, 0.003)
  s.constant.lrs = (0.001, 0.003)
  s.inverse_sqrt.lrs = (0.003,)
  s.inverse_sqrt.offsets = (10.0, 40.0)
  s.wsd.lrs = (0.001, 0.003)
  s.schedule_free.lrs = (0.003,)
  s.noise.seeds = (1,)
  s.noise.horizons = (2,)
  s.noise.methods = ("cosine", "constant")
  s.noise.lr = 0.003
  return s


def base(h: float) -> float:
  """The tuned cosine loss at horizon h: 3.0, 2.9, 2.8 at 1, 2, 4x."""
  return 3.0 - 0.1 * math.log2(h)


H = {1: 0, 2: 1, 4: 2}  # horizon -> index into the per-horizon lists below


def loss(run: sc.Run, h: float, key: str) -> float | None:
  """The synthetic loss of ``run`` scored at horizon ``h`` (None: not logged)."""
  i, b = H[h], base(h)
  seed_shift = 0.02 if run.seed == 1 else 0.0
  if run.method == "cosine":
    if h != run.horizon:
      return 2.5  # intermediate horizons of a longer cosine run: must never be selected
    if run.lr == 0.001:
      return None if h == 4 else b + [0.0, 0.02, 0.04][i]  # h4 run missing from the sweep
    return b + [0.01, 0.0, 0.0][i] + seed_shift
  if run.method == "constant":
    table = {
      (0.001, "raw"): [0.05, 0.05, 0.05],
      (0.001, "pema6.25"): [0.01, 0.01, -0.006],
      (0.001, "pema25"): [0.005, -0.002, 0.003],
      (0.003, "raw"): [0.06, 0.06, 0.06],
      (0.003, "pema6.25"): [0.02, 0.02, 0.02],
      (0.003, "pema25"): [0.004, 0.001, -0.004],
    }
    return b + table[(run.lr, key)][i] + seed_shift
  if run.method == "inverse_sqrt":
    if key == "raw":
      return b + 0.1
    if key == "pema6.25":
      return b + 0.05
    return b + ([0.03] * 3 if run.offset == 10.0 else [0.02, 0.01, math.nan])[i]
  if run.method == "wsd":
    if key != "raw" or h != run.horizon:
      return b + 0.5
    return b + ([0.007, -0.001, 0.002][i] if run.lr == 0.001 else 0.01)
  if run.method == "schedule_free":
    return b + 0.02 if key == sc.SCHEDULE_FREE_KEY else b + 0.3
  raise AssertionError(run.method)


EXPECTED = {  # variant label -> deltas at 1, 2, 4x
  "constant+EMA (tuned)": [0.004, -0.002, -0.006],
  "constant+EMA25": [0.004, -0.002, -0.004],
  "constant (last iterate)": [0.05, 0.05, 0.05],
  "inverse-sqrt+EMA (tuned)": [0.02, 0.01, 0.03],
  "inverse-sqrt+EMA25": [0.02, 0.01, 0.03],
  "WSD (last iterate)": [0.007, -0.001, 0.002],
  "Schedule-Free": [0.02, 0.02, 0.02],
}


def header(run: sc.Run) -> dict:
  return dict(_header(run.lm_arg, run.overrides))


@functools.lru_cache(maxsize=256)
def _header(lm_arg: str, overrides: tuple) -> dict:
  cfg = sc.lm_config(lm_arg, overrides)
  if cfg.opt.schedule not in ("cosine", "constant", "inverse_sqrt", "wsd"):
    cfg.opt.schedule = "constant"
  mcfg = train.model_config(cfg)
  counts = _counts(mcfg)
  plan = train.make_plan(cfg, counts["non_embedding"])
  return train._header(cfg, mcfg, plan, counts, model_lib.flops_per_token(mcfg))


@functools.lru_cache(maxsize=16)
def _counts(mcfg) -> dict:
  return model_lib.param_counts(mcfg)


def keys_of(run: sc.Run) -> tuple[str, ...]:
  if run.method == "schedule_free":
    return (sc.SCHEDULE_FREE_KEY,)
  if run.method == "cosine":
    return ("raw",)
  return ("raw", "pema6.25", "pema25")


def write_log(workdir: str, run: sc.Run, loss_fn=loss) -> bool:
  """Writes ``run``'s eval log; False if the run has no logged loss at all."""
  hs = [h for h in H if run.start_step < round(h * run.steps_per_chinchilla) <= run.total_steps]
  records = []
  for h in hs:
    losses = {k: loss_fn(run, h, k) for k in keys_of(run)}
    if any(v is None for v in losses.values()):
      continue
    step = round(h * run.steps_per_chinchilla)
    records.append(
      {
        "kind": "eval",
        "step": step,
        "tokens": step * run.tokens_per_step,
        "chinchilla": step / run.steps_per_chinchilla,
        "is_horizon": True,
        "horizon": float(h),
        "unit": "chinchilla",
        "eval_tokens": 256,
        "loss": losses,
      }
    )
  if not records:
    return False
  writer = metrics_lib.MetricWriter(workdir, tensorboard=False)
  writer.write("eval", header(run))
  for record in records:
    writer.write("eval", record)
  writer.close()
  return True
