"""The laws on real LM runs: a dedicated small grid, trained here, fitted and checked.

    .venv/bin/python -m experiments.laws_lm grid --root runs/laws_lm [--jobs 2]  # train, fit
    .venv/bin/python -m experiments.laws_lm grid --root results/laws/lm/runs --no_train  # refit

The grid uses the ``demo`` sweep's model family and data (anytime/configs/sweeps.py: 2 layers, the
stdlib BPE-1024 corpus, batch 16 x 128 tokens) and a horizon unit of 240 steps (491,520 tokens)
for every width:

A. LR sweeps: cosine to 0.1x peak, warmup 50, at 0.5, 1, 2, 4 units for width 32 (24.9k
   non-embedding parameters), 1, 2, 4 units for width 48 (55.7k), and at 8 units for width 32
   (held out); 9 peak LRs half an octave apart (2.5e-3 ... 4e-2).
B. Schedules at width 32, peak 1e-2, 8 units: a constant run (checkpoints at 80% and 90%), the
   8-unit cosine (from A), WSD branches from the constant run with 10% / 20% cooldowns, linear
   and 1-sqrt, and the 4-unit cosine (from A) as "cosine at another horizon".
C. The schedule comparison of B again with an eval every 24 steps (``eval_every``) at seeds 0, 1,
   2 (runs ``w32_e24_s<seed>_<schedule>``, the cosines trained as their own runs): the schedule
   laws are fitted on the sparse curves, the dense seed-0 curves and the dense seed means.

Checks (issue 6's LM "must show"), each printed and written to ``--out`` (2 and 3 are in
experiments/laws_lm/lr.py):

1. ``schedule_law.csv``: the multi-power law (with the library's residual and with the paper's,
   and the annealing law) fitted on the constant and 8-unit cosine curves predicts the held-out
   final losses (four WSD cooldowns, 4-unit cosine): relative error of each, and whether the WSD
   cooldowns are ranked correctly; plus a check that sees only the fit runs (the 8-unit cosine's
   last point predicted from the rest). The LRs are each run's schedule, exactly (``exact_lrs``).
   ``--profile`` adds ``multipower_profile.csv``: the fit with (beta, gamma) fixed on a grid.
2. ``lr_law.csv``: per (width, budget) the quadratic-in-ln-LR optimum; ``ln LR* = ln C +
   alpha ln N + beta ln D`` fitted on the other (width, budget) optima predicts the held-out
   optimum of width 32 at 8 units (error in octaves).
3. ``equivalent_compute.csv``: ``L(C) = E + A (C/C_ref)^-a`` fitted on width 32's tuned losses
   at 0.5-4 units; the equivalent compute of the tuned 8-unit checkpoint vs its true compute, and
   the compute -> LR* power law's LR for it.

LR sweeps can have several seeds (``--seeds 0,1``; run names end in ``_s<seed>``): the LR law
fits the final loss averaged over the seeds that finished, per (width, budget, LR), and
``seed_noise.csv`` gives the seed-1 minus seed-0 differences where both exist and the pooled
per-run std over all seeds; ``lr_law_window5.csv`` refits the LR law with each quadratic on the 5
LRs around its sweep's best (a sensitivity check of the full-grid quadratics).

``--root`` holds one trainer workdir per run (resumable: finished runs are skipped); with
``--copy_logs`` the small logs are copied to ``<out>/runs`` so the fits can be rebuilt anywhere.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import itertools
import os
import re
import shutil

import numpy as np

from anytime import cli
from anytime.laws import AnnealingLaw, MultiPowerLaw
from anytime.laws.curves import curve_from_records
from anytime.sweeps import common as sc
from anytime.sweeps import launch as launcher

UNIT_STEPS = 240  # the demo sweep's steps_per_chinchilla: one horizon unit for every width
WARMUP = 50
WIDTHS = {32: dict(heads=2, mlp=128), 48: dict(heads=2, mlp=192)}
# Half an octave apart, 2.5e-3 ... 4e-2. The first 6 (up to 1.41e-2) left most optima above the grid
# (session 2), so the grid goes 4 half-octaves further up.
LRS = tuple(float(f"{2.5e-3 * 2 ** (k / 2):.4g}") for k in range(9))
FIT_HORIZONS = {32: (0.5, 1.0, 2.0, 4.0), 48: (1.0, 2.0, 4.0)}
HELD_OUT = (32, 8.0)  # (width, horizon) whose optimum the LR law predicts
SCHEDULE_WIDTH, SCHEDULE_LR, SCHEDULE_HORIZON = 32, 1e-2, 8.0
COOLDOWNS = (("wsd10_linear", 0.1, "linear"), ("wsd10_1-sqrt", 0.1, "sqrt"))
COOLDOWNS += (("wsd20_linear", 0.2, "linear"), ("wsd20_1-sqrt", 0.2, "sqrt"))
FIT_SETS = (("constant", "cosine_h8"), ("constant", "wsd20_linear"))  # the laws' fit runs
# A diagnostic beside the two-schedule fits: can the law follow slow and fast anneals at once?
FIT_SETS += (("constant", "cosine_h8", "wsd20_linear"),)
# The schedule comparison again with an eval every DENSE_EVERY steps (80 points on top of the
# 16 log-spaced) at DENSE_SEEDS: the constant run's loss moves by +-0.6% between neighbouring
# evals (SGD noise at peak LR), the size of the 0.5% target, and 16 points leave the multi-power
# law's annealing shape unidentified (docs/laws.md). Seed 0 retraces the sparse runs (same seed
# and data order; only fp32 summation order differs, checked in dense_check).
DENSE_EVERY = 24
DENSE_SEEDS = (0, 1, 2)
SCHEDULE_LABELS = ("constant", "cosine_h8", "cosine_h4", *(label for label, *_ in COOLDOWNS))
B2 = 0.95
LR_WINDOW = 5  # the LR law's sensitivity check: quadratics on 5 LRs (2 octaves) around each best
LOSS_KEY = "raw"


def _sweep(width: int, shape: dict | None = None):
  """The demo sweep's settings with the model resized to ``width`` (``shape``: heads and MLP
  width, default WIDTHS[width])."""
  s = sc.load_sweep("demo")
  shape = shape or WIDTHS[width]
  keep = [o for o in s.lm_overrides if not o.startswith(("model.", "steps_per_chinchilla"))]
  s.lm_overrides = (
    *keep,
    f"model.d_model={width}",
    f"model.num_heads={shape['heads']}",
    f"model.mlp_dim={shape['mlp']}",
    f"steps_per_chinchilla={UNIT_STEPS}",
    "eval_points=16",
    f"opt.warmup_steps={WARMUP}",
  )
  return s


def _cosine_name(width: int, horizon: float, lr: float, seed: int = 0) -> str:
  return f"w{width}_{sc.run_name('cosine', horizon, lr, B2, seed)}"


def grid(seeds: tuple[int, ...] = (0,)) -> list[sc.Run]:
  """Every run of the grid, parents before branches, with stable names.

  ``seeds``: the LR sweeps' seeds (the seed suffix ``_s<seed>`` is part of the name, as in
  sc.run_name); the schedule runs are seed 0 only.
  """
  if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
    raise ValueError(f"seeds={seeds!r} must be distinct integers >= 0, at least one.")
  runs = []
  no_averages = ("opt.averages", "()")
  for width in WIDTHS:
    s = _sweep(width)
    horizons = FIT_HORIZONS[width] + ((HELD_OUT[1],) if width == HELD_OUT[0] else ())
    for seed, h, lr in itertools.product(seeds, horizons, LRS):
      extra = [("horizons", sc._tuple([h])), no_averages]
      run = sc._run(s, "cosine", h, lr, B2, seed, extra=extra)
      runs.append(dataclasses.replace(run, name=_cosine_name(width, h, lr, seed)))
  runs += _schedule_runs()
  for seed in DENSE_SEEDS:
    runs += _schedule_runs(seed, dense=True)
  return runs


def sparse_name(label: str) -> str:
  """The run name of schedule ``label`` (SCHEDULE_LABELS) in the sparse set (seed 0; its
  cosines are the LR sweeps' runs at the schedule LR)."""
  h = SCHEDULE_HORIZON
  if label == "constant":
    return f"w{SCHEDULE_WIDTH}_constant_h{h:g}_lr{SCHEDULE_LR:g}"
  if label in ("cosine_h8", "cosine_h4"):
    return _cosine_name(SCHEDULE_WIDTH, h if label == "cosine_h8" else h / 2, SCHEDULE_LR)
  return f"w{SCHEDULE_WIDTH}_{label}_h{h:g}"


def dense_name(
  label: str,
  seed: int,
  width: int = SCHEDULE_WIDTH,
  horizon: float = SCHEDULE_HORIZON,
  every: int = DENSE_EVERY,
) -> str:
  """The run name of schedule ``label`` in the dense-eval set at ``seed`` (another
  ``horizon`` than SCHEDULE_HORIZON: laws_lm_long's set, named with it)."""
  prefix = f"w{width}" if horizon == SCHEDULE_HORIZON else f"w{width}_h{horizon:g}"
  return f"{prefix}_e{every}_s{seed}_{label}"


def _schedule_runs(
  seed: int = 0,
  dense: bool = False,
  width: int = SCHEDULE_WIDTH,
  peak_lr: float = SCHEDULE_LR,
  shape: dict | None = None,
  horizon: float = SCHEDULE_HORIZON,
  every: int = DENSE_EVERY,
) -> list[sc.Run]:
  """The schedule comparison: the constant run, its WSD branches, and (dense set only; the
  sparse set takes them from the LR sweeps) the cosines at the horizon and half of it
  (``cosine_h8``, ``cosine_h4``) at the schedule LR. ``width``, ``peak_lr``, ``shape``,
  ``horizon``, ``every`` (eval interval): another model or length (dense set only;
  laws_lm_w64, laws_lm_long)."""
  default = (width, peak_lr, horizon) == (SCHEDULE_WIDTH, SCHEDULE_LR, SCHEDULE_HORIZON)
  if not dense and not (default and every == DENSE_EVERY):
    raise ValueError(
      f"width={width}, peak_lr={peak_lr}, horizon={horizon}, every={every}: only the dense "
      "set takes another model, length or eval interval."
    )
  s = _sweep(width, shape)
  h = horizon
  common = [("opt.averages", "()")] + ([("eval_every", str(every))] if dense else [])
  name = functools.partial(dense_name, seed=seed, width=width, horizon=h, every=every)
  parent = name("constant") if dense else sparse_name("constant")
  starts = sorted({round(h * (1 - frac), 6) for _, frac, _ in COOLDOWNS} | {h})
  run = sc._run(
    s, "constant", h, peak_lr, B2, seed, extra=[("horizons", sc._tuple(starts)), *common]
  )
  runs = [dataclasses.replace(run, name=parent)]
  for label, frac, shape in COOLDOWNS:
    extra = [
      ("horizons", sc._tuple([h])),
      *common,
      ("opt.wsd_decay_fraction", f"{frac:g}"),
      ("opt.wsd_shape", shape),
      ("init_from", parent),
    ]
    run = sc._run(s, "wsd", h, peak_lr, B2, seed, extra=extra, parent=parent, branch=h * (1 - frac))
    runs.append(dataclasses.replace(run, name=name(label) if dense else sparse_name(label)))
  if dense:
    for cos_h in (h, h / 2):
      extra = [("horizons", sc._tuple([cos_h])), *common]
      run = sc._run(s, "cosine", cos_h, peak_lr, B2, seed, extra=extra)
      runs.append(dataclasses.replace(run, name=name(f"cosine_h{cos_h:g}")))
  return runs


# ------------------------------------------------------------------------------------------
# Reading the logs.


def _jsonl(path: str) -> list[dict]:
  from anytime.lm.metrics import read_jsonl

  return read_jsonl(path) if os.path.exists(path) else []


def final_loss(root: str, run: sc.Run) -> float | None:
  """The run's loss at its end, or None if it did not finish (or diverged)."""
  log = sc.read_eval_log(os.path.join(root, run.name))
  if log is None or not log.done:
    return None
  loss = sc.loss_at_horizon(log, run.horizon, LOSS_KEY)
  return loss if sc.finite(loss) else None


def curve(root: str, run: sc.Run, runs_by_name: dict):
  """The run's loss curve with its whole LR history (a branch prepends its parent's)."""
  path = os.path.join(root, run.name)
  train, evals = _jsonl(os.path.join(path, "train.jsonl")), _jsonl(os.path.join(path, "eval.jsonl"))
  if run.parent is not None:
    ppath = os.path.join(root, run.parent)

    def before(records):
      return [r for r in records if "step" in r and int(r["step"]) <= run.start_step]

    train = before(_jsonl(os.path.join(ppath, "train.jsonl"))) + train
    evals = before(_jsonl(os.path.join(ppath, "eval.jsonl"))) + evals
  evals = [r for r in evals if r.get("kind") == "eval"]
  by_step = {int(r["step"]): r for r in evals}  # a resumed run may log a step twice
  c = curve_from_records(
    run.name,
    [by_step[k] for k in sorted(by_step)],
    loss_key=f"loss/{LOSS_KEY}",
    lr_records=train,
    warmup_steps=WARMUP,
  )
  return dataclasses.replace(c, lrs=exact_lrs(run, train)[: c.lrs.size])


def exact_lrs(run: sc.Run, train: list[dict]) -> np.ndarray:
  """The LR of every update 1..total_steps from the run's schedule config (a branch's config
  is its whole history), checked against the LRs in its train log.

  The log has the LR every 50 steps; interpolating it linearly bends a 1-sqrt cooldown (7% of
  the peak off at its start) and turns the last warmup step into a 1.8% ramp over the next 50
  steps (spurious LR increases for the multi-power law).
  """
  from anytime import optim

  cfg = sc.lm_config(run.lm_arg, run.overrides)
  schedule = optim.make_schedule(cfg.opt, run.total_steps)
  lrs = np.asarray(schedule(np.arange(run.total_steps)), dtype=np.float64)
  logged = [(int(r["step"]), float(r["lr"])) for r in train if "step" in r and "lr" in r]
  for step, lr in logged:
    if not 1 <= step <= lrs.size or abs(lrs[step - 1] - lr) > 1e-5 * cfg.opt.lr:
      raise ValueError(
        f"run {run.name!r}: logged lr={lr} at step {step} differs from its schedule's "
        f"{lrs[step - 1] if 1 <= step <= lrs.size else 'nothing'} (config and log disagree)."
      )
  return lrs


# ------------------------------------------------------------------------------------------
# The three checks.


# The laws fitted on the schedule runs: (label, law, fit options). "multipower-paper" is the
# multi-power paper's own residual (Huber 1e-3 on log loss); the others use the library default
# (Huber 1e-2 on the relative error).
SCHEDULE_LAWS = (
  ("multipower", MultiPowerLaw, {}),
  ("multipower-paper", MultiPowerLaw, dict(residual="log", f_scale=1e-3)),
  ("annealing", AnnealingLaw, {}),
)
# The multi-power law's annealing shape, fixed on this grid for --profile (the other 5 fitted).
PROFILE_BETAS, PROFILE_GAMMAS = (0.01, 0.1, 0.5, 2.0, 8.0), (0.25, 0.5, 1.0, 2.0, 4.0)


# The schedule laws are fitted on three versions of the schedule curves: "sparse" (seed 0, the
# 16 log-spaced evals), "dense" (seed 0, every 24 steps) and "dense-mean" (every 24 steps, the
# mean over DENSE_SEEDS at each step; the held-out finals are seed means too).
EVALS = ("sparse", "dense", "dense-mean")


def schedule_curves(
  root: str,
  runs: list[sc.Run],
  min_step: int,
  evals: str = "sparse",
  width: int = SCHEDULE_WIDTH,
  seeds: tuple[int, ...] = DENSE_SEEDS,
) -> dict:
  """{label: LossCurve} of the schedule comparison (``evals``: one of EVALS), steps >=
  ``min_step``; the dense versions at ``width``, their mean over ``seeds``."""
  by_name = {r.name: r for r in runs}
  if evals == "sparse":
    named = {label: sparse_name(label) for label in SCHEDULE_LABELS}
    curves = {k: curve(root, by_name[v], by_name) for k, v in named.items()}
  elif evals in ("dense", "dense-mean"):
    seeds = seeds if evals == "dense-mean" else seeds[:1]
    curves = {}
    for label in SCHEDULE_LABELS:
      per_seed = [curve(root, by_name[dense_name(label, s, width)], by_name) for s in seeds]
      curves[label] = _mean_curve(label, per_seed)
  else:
    raise ValueError(f"evals={evals!r} is invalid: allowed {EVALS}.")
  return {k: _cut(c, min_step) for k, c in curves.items()}


def _mean_curve(label, per_seed):
  """The seeds' mean loss at each step (the seeds share their schedule and eval steps)."""
  first = per_seed[0]
  for c in per_seed[1:]:
    if not (np.array_equal(c.steps, first.steps) and np.array_equal(c.lrs, first.lrs)):
      raise ValueError(f"schedule {label!r}: the seeds' eval steps or LRs differ ({c.name}).")
  loss = np.mean([c.loss for c in per_seed], axis=0)
  return dataclasses.replace(first, name=label, loss=loss)


def dense_names() -> set[str]:
  """The run names of the dense-eval schedule set, every seed."""
  return {dense_name(label, seed) for label in SCHEDULE_LABELS for seed in DENSE_SEEDS}


def dense_available(root: str, runs: list[sc.Run]) -> bool:
  """Whether every run of the dense-eval schedule set finished."""
  by_name = {r.name: r for r in runs}
  return all(final_loss(root, by_name[n]) is not None for n in dense_names())


def available_evals(root: str, runs: list[sc.Run]) -> tuple[str, ...]:
  """The versions of the schedule curves (EVALS) whose runs exist: the dense ones once finished."""
  return EVALS if dense_available(root, runs) else EVALS[:1]


def dense_check(root: str, runs: list[sc.Run]) -> dict:
  """{label: largest |dense / sparse - 1|} over the steps both evaluated: dense seed 0
  retraces the sparse runs (same seed and data; only fp32 summation order may differ)."""
  sparse = schedule_curves(root, runs, 1)
  dense = schedule_curves(root, runs, 1, evals="dense")
  worst = {}
  for k in SCHEDULE_LABELS:
    a, b = sparse[k], dense[k]
    common, ia, ib = np.intersect1d(a.steps, b.steps, return_indices=True)
    if common.size < a.steps.size:
      missing = sorted(set(a.steps.tolist()) - set(common.tolist()))
      raise ValueError(f"the dense copy of {k!r} lacks steps {missing}")
    worst[k] = float(np.max(np.abs(b.loss[ib] / a.loss[ia] - 1)))
  return worst


def _cut(c, low, high=None):
  m = (c.steps >= low) & (c.steps <= (high if high is not None else c.steps[-1]))
  return dataclasses.replace(c, steps=c.steps[m], loss=c.loss[m])


def schedule_law(root: str, runs: list[sc.Run], out: str, min_step: int) -> list[dict]:
  """Every law on every fit set, on each version of the curves (EVALS; the dense ones once
  their runs exist)."""
  rows = []
  for evals in available_evals(root, runs):
    curves = schedule_curves(root, runs, min_step, evals)
    new = []
    for fit_set, law in itertools.product(FIT_SETS, SCHEDULE_LAWS):
      new += _fit_and_predict(curves, fit_set, law, out, evals)
    for law in SCHEDULE_LAWS:
      new.append(_first_part_check(curves, law))
    rows += [dict(fit_evals=evals, **r) for r in new]
  _write_csv(os.path.join(out, "schedule_law.csv"), rows)
  return rows


def _first_part_check(curves, law) -> dict:
  """A check that sees only the fit runs: fitted on the constant run and the 8-unit cosine
  without its last point, the law's prediction of that last point."""
  label, law_cls, options = law
  cos = curves["cosine_h8"]
  fitted = law_cls().fit([curves["constant"], _cut(cos, 0, cos.steps[-2])], **options)
  pred = fitted.predict(cos)[-1]
  return dict(
    fit=f"constant+cosine_h8<={cos.steps[-2]}",
    law=label,
    run="cosine_h8",
    role="fit-run check",
    final_true=round(float(cos.loss[-1]), 5),
    final_pred=round(float(pred), 5),
    final_rel_err=round(float(pred / cos.loss[-1] - 1), 5),
  )


def _fit_and_predict(curves, fit_set, law, out, evals="sparse", tag="", plot=True) -> list[dict]:
  label, law_cls, options = law
  rows = []
  wsd = [name for name, *_ in COOLDOWNS if name not in fit_set]
  fitted = law_cls().fit([curves[n] for n in fit_set], **options)
  preds = {}
  for name, c in curves.items():
    pred = fitted.predict(c)
    preds[name] = pred[-1]
    rows.append(
      dict(
        fit="+".join(fit_set),
        law=label,
        run=name,
        role="fit" if name in fit_set else "held-out",
        final_true=round(float(c.loss[-1]), 5),
        final_pred=round(float(pred[-1]), 5),
        final_rel_err=round(float(pred[-1] / c.loss[-1] - 1), 5),
        mean_abs_rel_err=round(float(np.mean(np.abs(pred / c.loss - 1))), 5),
        at_bound=_at_bound(fitted),
      )
    )
  true_rank = sorted(wsd, key=lambda n: curves[n].loss[-1])
  pred_rank = sorted(wsd, key=lambda n: preds[n])
  for r in rows:
    r["wsd_ranking_true"] = " < ".join(true_rank)
    r["wsd_ranking_pred"] = " < ".join(pred_rank)
    r["ranking_correct"] = true_rank == pred_rank
  suffix = "" if evals == "sparse" else f"_{evals}"
  name = f"schedule_law{tag}_{label}_fit-{'+'.join(fit_set)}{suffix}.png"
  if plot:
    _plot_schedules(curves, fitted, fit_set, os.path.join(out, name), evals)
  return rows


def _at_bound(fitted) -> str:
  r = fitted.result
  return " ".join(n for n, b in zip(r.names, r.at_bound, strict=True) if b)


class _FixedShape(MultiPowerLaw):
  """The multi-power law with (beta, gamma) fixed: fits L0, A, alpha, B, C."""

  names = MultiPowerLaw.names[:5]

  def __init__(self, beta: float, gamma: float):
    super().__init__()
    self.shape = (beta, gamma)

  def predict_from(self, params, feats):
    return super().predict_from(np.concatenate([params, self.shape]), feats)

  def start(self, curves, feats):
    init, lower, upper = super().start(curves, feats)
    return init[:5], lower[:5], upper[:5]


def multipower_profile(root: str, runs: list[sc.Run], out: str, min_step: int) -> list[dict]:
  """Identifiability: the multi-power law fitted on constant + 8-unit cosine with its shape
  (beta, gamma) fixed on a grid; per point the fit's cost and rmse and the held-out errors
  (with the sparse and, once they exist, the dense fit curves)."""
  fit_set = FIT_SETS[0]
  rows = []
  for evals in available_evals(root, runs):
    curves = schedule_curves(root, runs, min_step, evals)
    rows += _profile_rows(curves, fit_set, evals)
  _write_csv(os.path.join(out, "multipower_profile.csv"), rows)
  return rows


def _profile_rows(curves, fit_set, evals) -> list[dict]:
  rows = []
  for (label, _, options), beta, gamma in itertools.product(
    SCHEDULE_LAWS[:2], PROFILE_BETAS, PROFILE_GAMMAS
  ):
    fitted = _FixedShape(beta, gamma).fit([curves[n] for n in fit_set], **options)
    row = dict(fit_evals=evals, residual=label, beta=beta, gamma=gamma)
    row["cost"] = f"{fitted.result.cost:.5g}"
    row["rmse"] = round(fitted.result.rmse, 6)
    row["at_bound"] = _at_bound(fitted)
    for name, c in curves.items():
      if name not in fit_set:
        row[name] = round(float(fitted.predict(c)[-1] / c.loss[-1] - 1), 5)
    rows.append(row)
  return rows


# ------------------------------------------------------------------------------------------
# Output.


def _write_csv(path: str, rows: list[dict]) -> None:
  """Writes ``rows`` to ``path`` (creating its directory) by an atomic rename, so an
  interrupted write leaves the previous file whole."""
  keys = list(dict.fromkeys(k for r in rows for k in r))
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
  os.replace(tmp, path)
  print(f"wrote {path}")


def read_csv(path: str) -> list[dict]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def _pyplot():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def _plot_schedules(curves, fitted, fit_set, path, evals="sparse") -> None:
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for (name, c), color in zip(curves.items(), plt.cm.tab10.colors, strict=False):
    style = ":" if name in fit_set else "--"
    ax.plot(c.steps, c.loss, color=color, lw=2, alpha=0.45, label=name)
    ax.plot(c.steps, fitted.predict(c), color=color, lw=1, ls=style)
  ax.set_xscale("log")
  ax.set(xlabel="step", ylabel="validation loss (thick: data, dotted: fit, dashed: prediction)")
  ax.set_title(f"{fitted.law.label} fitted on {' + '.join(fit_set)} ({evals} curves)", fontsize=9)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def copy_logs(root: str, runs: list[sc.Run], dest: str) -> None:
  for r in runs:
    src = os.path.join(root, r.name)
    if not os.path.isdir(src):
      continue
    os.makedirs(os.path.join(dest, r.name), exist_ok=True)
    for f in ("eval.jsonl", "train.jsonl", "run.json", "config.json"):
      if os.path.exists(os.path.join(src, f)):
        shutil.copy2(os.path.join(src, f), os.path.join(dest, r.name, f))


def add_run_args(p: argparse.ArgumentParser, jobs: int) -> None:
  """The options laws_lm and laws_lm_w64 share: where runs live, what to train, what to write."""
  p.add_argument("--root", default="runs/laws_lm", help="the runs' workdirs")
  p.add_argument("--out", default="results/laws/lm", help="CSV + PNG output directory")
  p.add_argument("--jobs", type=int, default=jobs, help="runs at once")
  p.add_argument("--no_train", action="store_true", help="only fit the logs under --root")
  p.add_argument("--only", default="", help="train only runs whose name matches this regex")
  p.add_argument("--copy_logs", action="store_true", help="copy the small logs to <out>/runs")
  p.add_argument("--min_step", type=int, default=100, help="schedule-law fits: steps >= this")
  p.add_argument("--dry", action="store_true", help="list the runs and their cost")


def check_run_args(args: argparse.Namespace) -> None:
  """Refuses bad add_run_args values before any run or write."""
  if args.jobs < 1:
    raise ValueError(f"--jobs={args.jobs} is invalid: expected an integer >= 1.")


def print_dry(runs: list[sc.Run], name_width: int = 40) -> None:
  """--dry: each run's trained steps and FLOPs, then the total."""
  for r in runs:
    print(f"{r.name:{name_width}s} {r.trained_steps:6d} steps  {r.train_flops:.3g} FLOPs")
  print(f"{len(runs)} runs, {sum(r.train_flops for r in runs):.3g} FLOPs")


def train(args: argparse.Namespace, runs: list[sc.Run]) -> None:
  """Trains the ``runs`` matching --only under --root with --jobs at once (finished ones skip)."""
  todo = [r for r in runs if re.search(args.only, r.name)]
  outcome = launcher.run_local(todo, os.path.abspath(args.root), jobs=args.jobs)
  print(", ".join(f"{k}: {len(v)}" for k, v in outcome.items()))


def main(argv=None) -> int:
  from experiments.laws_lm import lr as lr_mod  # imports this module: loaded at call time

  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  add_run_args(p, jobs=2)
  p.add_argument(
    "--profile", action="store_true", help="also the multi-power law's (beta, gamma) profile"
  )
  p.add_argument(
    "--seeds", default="0", help="the LR sweeps' seeds, comma-separated (the fit averages them)"
  )
  args = p.parse_args(argv)
  check_run_args(args)
  try:
    seeds = tuple(int(x) for x in args.seeds.split(","))
  except ValueError:
    raise ValueError(f"--seeds={args.seeds!r} is invalid: expected integers like 0,1.") from None
  runs = grid(seeds)
  if args.dry:
    for r in runs:
      print(f"{r.name:48s} {r.trained_steps:6d} steps  {r.train_flops:.3g} FLOPs")
    print(f"{len(runs)} runs, {sum(r.trained_tokens for r in runs) / 1e6:.1f}M tokens")
    return 0
  if not args.no_train:
    train(args, runs)
  os.makedirs(args.out, exist_ok=True)
  if args.copy_logs:
    copy_logs(args.root, runs, os.path.join(args.out, "runs"))
  if dense_available(args.root, runs):
    worst = dense_check(args.root, runs)
    print("\n0. dense-eval seed 0 vs the sparse runs, largest |relative difference|:")
    print("  " + "  ".join(f"{k}={v:.2e}" for k, v in worst.items()))
  print("\n1. schedule laws:")
  for r in schedule_law(args.root, runs, args.out, args.min_step):
    print("  " + "  ".join(f"{k}={v}" for k, v in r.items() if not k.startswith("wsd_")))
  if args.profile:
    print("\n1b. multi-power law, (beta, gamma) fixed:")
    cli.print_rows(multipower_profile(args.root, runs, args.out, args.min_step))
  optima = lr_mod.lr_optima(args.root, runs)
  try:
    lr_rows = lr_mod.lr_law(optima, args.out)
    eq_rows = lr_mod.equivalent_compute(optima, args.out)
  except (ValueError, KeyError) as e:  # grid not finished: the runs are resumable
    print(f"\n2-3. LR law and equivalent compute: not enough finished runs yet ({e!r})")
    return 1
  print("\n2. LR law:")
  cli.print_rows(lr_rows)
  windowed = lr_mod.lr_optima(args.root, runs, window=LR_WINDOW)
  if HELD_OUT in windowed and len(windowed) > 3:
    print(f"\n2b. LR law, each quadratic on the {LR_WINDOW} LRs around its sweep's best:")
    cli.print_rows(lr_mod.lr_law(windowed, args.out, name=f"lr_law_window{LR_WINDOW}"))
  print("\n3. equivalent compute:")
  cli.print_rows(eq_rows)
  noise = lr_mod.seed_noise(args.root, runs, args.out)
  if noise:
    print("\n4. seed noise (final loss, seed 1 - seed 0, same LR):")
    cli.print_rows(noise)
  return 0
