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

import itertools
import os

import numpy as np

from anytime import cli
from anytime.laws import AnnealingLaw, MultiPowerLaw
from anytime.sweeps import common as sc
from experiments.laws_lm import lr as lr_mod

# The grid, its logs and the shared command line live in experiments.laws_lm.runs (which lr.py
# imports too); re-exported here, the name the other laws_lm commands read them by.
from experiments.laws_lm.runs import (  # noqa: F401
  ARCHIVE,
  B2,
  COOLDOWNS,
  DENSE_EVERY,
  DENSE_SEEDS,
  EVALS,
  FIT_HORIZONS,
  FIT_SETS,
  HELD_OUT,
  LOSS_KEY,
  LR_WINDOW,
  LRS,
  SCHEDULE_HORIZON,
  SCHEDULE_LABELS,
  SCHEDULE_LR,
  SCHEDULE_WIDTH,
  UNIT_STEPS,
  WARMUP,
  WIDTHS,
  _cosine_name,
  _cut,
  _jsonl,
  _mean_curve,
  _pyplot,
  _schedule_runs,
  _sweep,
  _write_csv,
  add_run_args,
  available_evals,
  check_run_args,
  copy_logs,
  curve,
  dense_available,
  dense_check,
  dense_name,
  dense_names,
  exact_lrs,
  final_loss,
  grid,
  open_root,
  parser,
  print_dry,
  read_csv,
  schedule_curves,
  sparse_name,
  train,
)

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


def schedule_law(root: str, runs: list[sc.Run], out: str, min_step: int) -> list[dict]:
  """Every law on every fit set, on each version of the curves (EVALS; the dense ones once
  their runs exist); one figure per law, ``schedule_law_<law>.png`` (fit sets x versions)."""
  rows, panels = [], {}
  versions = available_evals(root, runs)
  for evals in versions:
    curves = schedule_curves(root, runs, min_step, evals)
    new = []
    for fit_set, law in itertools.product(FIT_SETS, SCHEDULE_LAWS):
      got, fitted = _fit_and_predict(curves, fit_set, law)
      new += got
      panels[law[0], fit_set, evals] = (curves, fitted, fit_set, f"{evals} curves")
    for law in SCHEDULE_LAWS:
      new.append(_first_part_check(curves, law))
    rows += [dict(fit_evals=evals, **r) for r in new]
  _write_csv(os.path.join(out, "schedule_law.csv"), rows)
  for label, law_cls, _ in SCHEDULE_LAWS:
    plot_schedule_panels(
      {(f, e): panels[label, f, e] for f in FIT_SETS for e in versions},
      FIT_SETS,
      versions,
      os.path.join(out, f"schedule_law_{label}.png"),
      f"{label} ({law_cls.label}) at width {SCHEDULE_WIDTH}: rows fit sets, columns curve versions",
    )
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


def _fit_and_predict(curves, fit_set, law) -> tuple[list[dict], object]:
  """``law`` fitted on ``fit_set``: a row per curve (its final value true and predicted),
  and the fitted law (for the figures)."""
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
  return rows, fitted


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
def plot_schedule_panels(panels: dict, row_keys, col_keys, path: str, title: str) -> None:
  """One figure of schedule-law fits, a panel per ``panels[row, col] = (curves, fitted,
  fit_set, subtitle)``: each curve's data (thick) with the law's fit (dotted, the fit runs) or
  prediction (dashed, held out). One figure per law in place of one per panel: the 36 separate
  PNGs this replaced made results/ hard to read, and the panels compare better side by side."""
  plt = _pyplot()
  nrows, ncols = len(row_keys), len(col_keys)
  fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.2 * nrows), squeeze=False)
  for (i, row), (j, col) in itertools.product(enumerate(row_keys), enumerate(col_keys)):
    curves, fitted, fit_set, subtitle = panels[row, col]
    ax = axes[i][j]
    for (name, c), color in zip(curves.items(), plt.cm.tab10.colors, strict=False):
      style = ":" if name in fit_set else "--"
      ax.plot(c.steps, c.loss, color=color, lw=2, alpha=0.45, label=name)
      ax.plot(c.steps, fitted.predict(c), color=color, lw=1, ls=style)
    ax.set_xscale("log")
    ax.set_title(f"fit {' + '.join(fit_set)}, {subtitle}", fontsize=8)
    ax.tick_params(labelsize=7)
  axes[0][0].legend(fontsize=6)
  fig.supxlabel("step", fontsize=9)
  fig.supylabel("validation loss (thick: data, dotted: fit, dashed: prediction)", fontsize=9)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  print(f"wrote {path}")


def main(argv=None) -> int:
  p = parser(__doc__)
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
