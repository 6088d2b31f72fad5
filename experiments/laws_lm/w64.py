"""Pre-registered checks of the laws at width 64, a width the laws_lm grid never trained.

    .venv/bin/python -m experiments.laws_lm w64 --prereg     # predictions, from laws_lm's logs only
    .venv/bin/python -m experiments.laws_lm w64 --root runs/laws_lm [--only REGEX]   # train, check
    .venv/bin/python -m experiments.laws_lm w64 --root results/laws/lm/runs --no_train  # check

laws_lm's LR law met its held-out point under one optimum estimator (quadratics on the 5 LRs
around each sweep's best) and missed it under the other (quadratics on the whole grid), and the
first was added after the second's figure was known. This module tests both on a new point whose
predictions are computed from laws_lm's committed logs and written to ``w64_prereg.csv`` before
any width-64 run exists (``--prereg``, which never overwrites a file; the file is committed first,
and training or checking refuses to run without it). Same data, batch, warmup, unit (240 steps)
and LR grid as laws_lm:

A. LR law: a cosine sweep of width 64 (2 heads, MLP 256, 2 layers; 98.9k non-embedding parameters,
   4x width 32's and 1.8x width 48's, the largest fitted) at 2 units, 9 peak LRs, seeds 0-3. Each
   estimator's law (fitted on laws_lm's 7 fit sweeps, seeds 0-3) predicts width 64's optimum;
   an estimator passes if it lands within half an octave of the optimum its own way measures.
   A second point, width 64 at 8 units (seeds 0-1; ``w64_h8_prereg.csv``), was pre-registered
   after the first point's figures were known and before any of its runs.
B. muP transfer: the same sweep with muP (``model.parameterization=mup``, base width 32, where
   muP is the standard parameterization, so laws_lm's width-32 2-unit sweep is its base). muP's
   prediction: width 64's optimum equals width 32's. Its error is set beside the LR law's.
C. Schedules: the dense-eval schedule comparison of laws_lm (C) at width 64, peak LR 5e-3 (width
   32's 1e-2 scaled by 0.5, the ratio of the two widths' optima the LR law predicts; chosen before
   any width-64 run), seeds 0-2: the multi-power law fitted on constant + 8-unit cosine (dense
   seed means) predicts the four WSD cooldowns and the 4-unit cosine: within 0.5%, ranked right?
D. Across sizes: the same dense set at width 48 (peak 7.07e-3, the grid LR nearest to width 32's
   1e-2 scaled by the law's ratio of optima), so that the forward-momentum law (which needs three
   sizes for its N term) is fitted on every width-32 and width-48 curve plus width 64's constant
   and 8-unit cosine, and predicts width 64's held-out schedules: does annealing fitted on other
   sizes transfer? Set beside C's one-size fits.
"""

from __future__ import annotations

import dataclasses
import itertools
import os

import numpy as np

from anytime import cli
from anytime.laws import ForwardMomentumLaw, MultiPowerLaw
from anytime.laws.optimal_lr import fit_lr_optimum
from anytime.sweeps import common as sc
from experiments.laws_lm import grid as ll
from experiments.laws_lm import lr as lrl

WIDTH, SHAPE = 64, dict(heads=2, mlp=256)
BASE_WIDTH = 32  # muP base: laws_lm's width 32 (muP = standard there)
HORIZON = 2.0  # the LR sweeps' budget, units of 240 steps
SEEDS = (0, 1, 2, 3)  # SP sweep seeds, as laws_lm's grid
MUP_SEEDS = (0, 1, 2, 3)  # seeds 2, 3 added after 0, 1 (same grid as SP)
SCHEDULE_LR = 5e-3
SIZE_WIDTH, SIZE_LR = 48, 7.071e-3  # D: the third size of the forward-momentum check
PREREG_SEEDS = (0, 1, 2, 3)  # the laws_lm sweeps the prereg laws are fitted on
PREREG = "w64_prereg.csv"
# A second pre-registered point, written after the first one's figures but before any of its runs:
# width 64 at 8 units, where width 32's held-out sweep was flat (SP only, seeds 0-1).
H8, H8_SEEDS = 8.0, (0, 1)
HORIZONS = (HORIZON, H8)


def prereg_name(horizon: float) -> str:
  return PREREG if horizon == HORIZON else f"w64_h{horizon:g}_prereg.csv"


ESTIMATORS = (("full-grid", 0), (f"window{ll.LR_WINDOW}", ll.LR_WINDOW))


def lr_runs(seeds=SEEDS, mup: bool = False, horizon: float = HORIZON) -> list[sc.Run]:
  """Width 64's cosine sweep at ``horizon`` (``mup``: muP with base width 32)."""
  s = ll._sweep(WIDTH, SHAPE)
  extra = [("horizons", sc._tuple([horizon])), ("opt.averages", "()")]
  if mup:
    extra += [("model.parameterization", "mup"), ("model.base_width", str(BASE_WIDTH))]
  runs = []
  for seed, lr in itertools.product(seeds, ll.LRS):
    run = sc._run(s, "cosine", horizon, lr, ll.B2, seed, extra=extra)
    name = ("mup_" if mup else "") + ll._cosine_name(WIDTH, horizon, lr, seed)
    runs.append(dataclasses.replace(run, name=name))
  return runs


def mup_check_run() -> sc.Run:
  """muP at its base width, seed 0, LR 1e-2: must retrace laws_lm's standard run (check 0)."""
  s = ll._sweep(BASE_WIDTH)
  extra = [("horizons", sc._tuple([HORIZON])), ("opt.averages", "()")]
  extra += [("model.parameterization", "mup"), ("model.base_width", str(BASE_WIDTH))]
  run = sc._run(s, "cosine", HORIZON, 1e-2, ll.B2, 0, extra=extra)
  return dataclasses.replace(run, name="mup_" + ll._cosine_name(BASE_WIDTH, HORIZON, 1e-2, 0))


def _dense_sets(width: int, peak_lr: float, shape: dict | None = None) -> list[sc.Run]:
  """laws_lm's dense-eval schedule set at another width and peak LR, every DENSE_SEEDS seed."""
  runs = []
  for seed in ll.DENSE_SEEDS:
    runs += ll._schedule_runs(seed, dense=True, width=width, peak_lr=peak_lr, shape=shape)
  return runs


def schedule_runs() -> list[sc.Run]:
  return _dense_sets(WIDTH, SCHEDULE_LR, SHAPE)


def size_runs() -> list[sc.Run]:
  return _dense_sets(SIZE_WIDTH, SIZE_LR)


def grid() -> list[sc.Run]:
  runs = [*lr_runs(), mup_check_run(), *lr_runs(MUP_SEEDS, mup=True), *schedule_runs()]
  return runs + size_runs() + lr_runs(H8_SEEDS, horizon=H8)


# ------------------------------------------------------------------------------------------


def _optimum_of(root: str, runs: list[sc.Run], window: int):
  """(LROptimum, [(lr, mean loss)], seeds that finished) of one sweep, the final loss averaged
  over its seeds; None while fewer than 4 LRs finished."""
  by_lr: dict = {}
  seeds = set()
  for r in runs:
    loss = ll.final_loss(root, r)
    if loss is not None:
      by_lr.setdefault(r.lr, []).append(loss)
      seeds.add(r.seed)
  lrs = sorted(by_lr)
  losses = [float(np.mean(by_lr[lr])) for lr in lrs]
  lrs, losses = lrl.around_best(lrs, losses, window)
  if len(lrs) < 4:
    return None
  return fit_lr_optimum(lrs, losses), list(zip(lrs, losses, strict=True)), sorted(seeds)


def predictions(laws_root: str, horizon: float = HORIZON) -> list[dict]:
  """The pre-registered predictions of width 64's optimum at ``horizon``, from laws_lm's logs."""
  base_runs = ll.grid(PREREG_SEEDS)
  target = lr_runs((0,), horizon=horizon)[0]
  rows = []
  for label, window in ESTIMATORS:
    optima = lrl.lr_optima(laws_root, base_runs, window=window)
    law = lrl.fit_law(optima)
    pred, lo, hi = (float(v) for v in law.predict(target.params, target.trained_tokens, z=2.0))
    base = optima[(BASE_WIDTH, horizon)][0]
    rows.append(
      dict(
        estimator=label,
        n=target.params,
        d=target.trained_tokens,
        lr_law=f"{pred:.4g}",
        lr_law_band_2sigma=f"{lo:.4g}-{hi:.4g}",
        alpha=f"{law.alpha:.3f}+-{law.alpha_se:.3f}",
        beta=f"{law.beta:.3f}+-{law.beta_se:.3f}",
        mup_transfer=f"{base.lr:.4g}",
        mup_base=f"w{BASE_WIDTH} {horizon:g} units, seeds {','.join(map(str, PREREG_SEEDS))}",
      )
    )
  return rows


def lr_check(root: str, prereg: list[dict], horizon: float = HORIZON) -> list[dict]:
  """Each estimator's prediction against width 64's optimum measured its own way (SP), and
  muP's transfer against the muP sweep's optimum (where those runs exist)."""
  rows = []
  sp = lr_runs(SEEDS if horizon == HORIZON else H8_SEEDS, horizon=horizon)
  mup = lr_runs(MUP_SEEDS, mup=True) if horizon == HORIZON else []
  for pre, (label, window) in zip(prereg, ESTIMATORS, strict=True):
    if pre["estimator"] != label:
      raise ValueError(
        f"{prereg_name(horizon)}: estimator {pre['estimator']!r}, expected {label!r}"
      )
    for kind, runs, pred in (("LR law (SP)", sp, pre["lr_law"]), ("muP", mup, pre["mup_transfer"])):
      got = _optimum_of(root, runs, window) if runs else None
      if got is None:
        continue
      opt, pts, seeds = got
      rows.append(
        dict(
          horizon=horizon,
          estimator=label,
          prediction=kind,
          lr_pred=pred,
          lr_opt=f"{opt.lr:.4g}",
          lr_opt_interval=f"{opt.low:.4g}-{opt.high:.4g}",
          error_octaves=round(float(np.log2(float(pred) / opt.lr)), 3),
          within_half_octave=abs(np.log2(float(pred) / opt.lr)) <= 0.5,
          seeds=",".join(map(str, seeds)),
          losses=" ".join(f"{lr:.4g}:{loss:.4f}" for lr, loss in pts),
        )
      )
  return rows


def schedule_check(root: str, out: str, min_step: int) -> list[dict]:
  """laws_lm's schedule laws on width 64's dense curves (seed 0 and the seed means); the seed
  means' fits in one figure, ``schedule_law_w64.png`` (fit sets x laws)."""
  runs = schedule_runs()
  if any(ll.final_loss(root, r) is None for r in runs):
    return []
  rows, panels = [], {}
  for evals in ("dense", "dense-mean"):
    curves = ll.schedule_curves(root, runs, min_step, evals, width=WIDTH)
    for fit_set, law in itertools.product(ll.FIT_SETS, ll.SCHEDULE_LAWS):
      got, fitted = ll._fit_and_predict(curves, fit_set, law)
      rows += [dict(width=WIDTH, fit_evals=evals, **r) for r in got]
      panels[fit_set, law[0]] = (curves, fitted, fit_set, f"{law[0]}, {evals} curves")
  labels = [label for label, *_ in ll.SCHEDULE_LAWS]
  ll.plot_schedule_panels(
    panels,
    ll.FIT_SETS,
    labels,
    os.path.join(out, f"schedule_law_w{WIDTH}.png"),
    f"width {WIDTH}, peak LR {SCHEDULE_LR:g}: rows fit sets, columns laws (dense seed means)",
  )
  return rows


def size_check(root: str, laws_root: str, out: str, min_step: int) -> list[dict]:
  """D: the forward-momentum law fitted across three sizes predicts width 64's held-out
  schedules (dense seed means), beside the same law and the multi-power law fitted on width 64
  alone (constant + 8-unit cosine)."""
  sets = ((laws_root, ll.grid()), (root, size_runs()), (root, schedule_runs()))
  if any(ll.final_loss(r, run) is None for r, runs in sets for run in runs if "_e24_" in run.name):
    return []
  curves = {}
  for (where, runs), width in zip(sets, (ll.SCHEDULE_WIDTH, SIZE_WIDTH, WIDTH), strict=True):
    params = next(r.params for r in runs if r.name == ll.dense_name("constant", 0, width))
    for label, c in ll.schedule_curves(where, runs, min_step, "dense-mean", width=width).items():
      curves[(width, label)] = dataclasses.replace(c, name=f"w{width}_{label}", model_size=params)
  target_fit = [(WIDTH, label) for label in ll.FIT_SETS[0]]
  across = [k for k in curves if k[0] != WIDTH] + target_fit
  held = [k for k in curves if k[0] == WIDTH and k not in target_fit]
  fits = (
    ("forward_momentum", "w32+w48 all, w64 constant+cosine_h8", ForwardMomentumLaw, across),
    ("forward_momentum", "w64 constant+cosine_h8", ForwardMomentumLaw, target_fit),
    ("multipower", "w64 constant+cosine_h8", MultiPowerLaw, target_fit),
  )
  rows = []
  for law_label, fit_label, law_cls, keys in fits:
    fitted = law_cls().fit([curves[k] for k in keys])
    preds = {k: float(fitted.predict(curves[k])[-1]) for k in held}
    wsd = [k for k in held if k[1].startswith("wsd")]
    ranked = sorted(wsd, key=lambda k: curves[k].loss[-1]) == sorted(wsd, key=preds.get)
    for k in held:
      true = float(curves[k].loss[-1])
      rows.append(
        dict(
          law=law_label,
          fit=fit_label,
          size_term="alpha_N" in fitted.result.names,
          run=f"w{k[0]}_{k[1]}",
          final_true=round(true, 5),
          final_pred=round(preds[k], 5),
          final_rel_err=round(preds[k] / true - 1, 5),
          wsd_ranking_correct=ranked,
        )
      )
  return rows


def main(argv=None) -> int:
  p = ll.parser(__doc__)
  ll.add_run_args(p, jobs=1)
  p.add_argument(
    "--laws_root", default="results/laws/lm/runs", help="laws_lm's logs (the prereg fits)"
  )
  p.add_argument("--prereg", action="store_true", help="write the predictions and stop")
  args = p.parse_args(argv)
  ll.check_run_args(args)
  if not args.dry:
    args.laws_root = ll.open_root("--laws_root", args.laws_root)
  runs = grid()
  prereg_paths = {h: os.path.join(args.out, prereg_name(h)) for h in HORIZONS}
  if args.dry:
    for r in runs:
      print(f"{r.name:52s} {r.trained_steps:6d} steps  {r.train_flops:.3g} FLOPs  N={r.params}")
    print(f"{len(runs)} runs, {sum(r.train_flops for r in runs):.3g} FLOPs")
    return 0
  if args.prereg:  # writes the missing files, never overwrites one
    todo = {h: path for h, path in prereg_paths.items() if not os.path.exists(path)}
    if not todo:
      raise ValueError(
        f"{sorted(prereg_paths.values())} exist: the predictions are written once, before the runs."
      )
    os.makedirs(args.out, exist_ok=True)
    for h, path in todo.items():
      rows = predictions(args.laws_root, h)
      ll._write_csv(path, rows)
      cli.print_rows(rows)
    return 0
  missing = [path for path in prereg_paths.values() if not os.path.exists(path)]
  if missing:
    raise ValueError(f"{missing} missing: run --prereg (and commit it) before training.")
  if not args.no_train:
    ll.train(args, runs)
  if args.copy_logs:
    ll.copy_logs(args.root, runs, os.path.join(args.out, "runs"))
  check = mup_check_run()
  base = ll._cosine_name(BASE_WIDTH, HORIZON, 1e-2, 0)
  got, ref = ll.final_loss(args.root, check), ll.final_loss(args.laws_root, _by_name(base))
  if got is not None and ref is not None:
    print(f"\n0. muP at its base width vs standard (same seed, LR 1e-2): {got:.5f} vs {ref:.5f}")
  lr_rows = [
    r for h, path in prereg_paths.items() for r in lr_check(args.root, ll.read_csv(path), h)
  ]
  if lr_rows:
    print("\n1. width 64's optimum vs the pre-registered predictions:")
    ll._write_csv(os.path.join(args.out, "w64_lr_check.csv"), lr_rows)
    cli.print_rows(lr_rows)
  sched = schedule_check(args.root, args.out, args.min_step)
  if sched:
    print("\n2. schedule laws at width 64:")
    ll._write_csv(os.path.join(args.out, "w64_schedule_law.csv"), sched)
    for r in sched:
      print("  " + "  ".join(f"{k}={v}" for k, v in r.items() if not k.startswith("wsd_")))
  sizes = size_check(args.root, args.laws_root, args.out, args.min_step)
  if sizes:
    print("\n3. annealing fitted across sizes, width 64's held-out schedules:")
    ll._write_csv(os.path.join(args.out, "w64_size_law.csv"), sizes)
    cli.print_rows(sizes)
  return 0


def _by_name(name: str) -> sc.Run:
  return next(r for r in ll.grid((0,)) if r.name == name)
