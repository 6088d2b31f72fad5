"""A pre-registered test of the reducible-gain multi-power law at a new peak LR (5e-3).

    .venv/bin/python -m experiments.laws_lm gain --root runs/laws_lm --phase fit       # 1.
    .venv/bin/python -m experiments.laws_lm gain --root runs/laws_lm --prereg          # 2.
    .venv/bin/python -m experiments.laws_lm gain --root runs/laws_lm --phase held-out  # 3.
    .venv/bin/python -m experiments.laws_lm gain --root results/laws/lm/runs --no_train
    .venv/bin/python -m experiments.laws_lm gain --root results/laws/lm/runs --dev   # dev table

Fitted on every run of a schedule set at once, the paper's multi-power law still misses some
final by more than 0.5% in 5 of the 6 sets (laws_lm_area's ``area_capacity.csv``): at equal LR
area an anneal made early in a run gains more than one made late (the 16-unit cosine 1.2x the
32-unit one, the late WSD cooldowns 0.6-0.75x), and the law's gain B * G(.) does not know when a
decrease was made. ``MultiPowerLaw(gain="reducible")`` scales the gain of the decrease at step k
by the power-law part of the loss there, A * S(k)**-alpha, with no new parameter. Fitted in
sample it comes within 0.38% of every 32-unit final (``--dev``). But constant + cosine do not
pin down its annealing shape; a cosine and a cooldown do. So the fit pair is the long cosine
and WSD 10% 1-sqrt, chosen on the six dev sets (``gain_dev.csv``), where the other three cooldowns
and the other cosine were forecast within 0.51% at 32 units and 0.50% at 8 units.

Design (committed before any of these runs existed):

- laws_lm_long's schedule set with **peak 5e-3** (dev sets: 1e-2 and 2e-2): width 32, stdlib
  train split, 32 units = 7,680 steps, evals every 96 steps, warmup 50. Seeds 0-2, seed means.
- Fit runs: the 32-unit cosine and WSD 10% 1-sqrt (the constant run is trained as its parent
  and not fitted). Held out: WSD 10% linear, 20% linear, 20% 1-sqrt and the 16-unit cosine.
- Fits on steps >= 1,920 with the library residual: the reducible-gain law (primary) and the
  paper's law (``gain="constant"``) on the same pair, and the paper's law on constant + long
  cosine (the design of laws_lm_long). ``--prereg`` writes their forecasts of the held-out
  finals and of the constant run (reported, not judged) to ``gain_prereg.csv`` once the fit
  runs finish; it is committed before any held-out run exists, and the held-out phase refuses
  to train without it.
- Pass (the issue's target): the primary forecast of every held-out seed-mean final within
  0.5%, and every pair of held-out cooldowns that a paired t-test over the 3 seeds resolves
  (|t| > 4.303) ordered as measured.
- Also pre-registered: the paper's law on the same pair over-predicts the 16-unit cosine by
  more than 0.5% (dev sets: +0.87% to +1.56%).

Replication (added after the 3-seed check, which passed with no pair of held-out cooldowns
resolved; committed before these runs): the same forecast, unchanged, against the seed means
over seeds 0-5. ``--phase replicate`` trains the constant run and the held-out runs at seeds
3-5; the check is repeated on the 6 seeds (``gain_replicate.csv``, ``gain_replicate_pairs.csv``,
paired t-test critical |t| > 2.571) with the same criteria.
"""

from __future__ import annotations

import argparse
import itertools
import os

import numpy as np

from anytime import cli
from anytime.laws import MultiPowerLaw
from anytime.sweeps import common as sc
from experiments.laws_lm import area, long, prereg
from experiments.laws_lm import grid as ll
from experiments.laws_lm import replicate as rep

PEAK_LR = 5e-3
PREFIX = "lr0.005"  # run names: lr0.005_w32_h32_e96_s<seed>_<label>
SEEDS = (0, 1, 2)
REPLICATE_SEEDS = (3, 4, 5)  # added to SEEDS for the replication
MIN_STEP = 1920  # laws_lm_long's primary window
LONG_COSINE, SHORT_COSINE = f"cosine_h{long.HORIZON:g}", f"cosine_h{long.HORIZON / 2:g}"
FIT_SET = (LONG_COSINE, "wsd10_1-sqrt")
HELD_COOLDOWNS = tuple(k for k in long.WSD if k not in FIT_SET)
HELD_OUT = (*HELD_COOLDOWNS, SHORT_COSINE)
REPORTED = ("constant",)  # forecast and compared, not judged: its curve exists at fit time
# (name, gain, fit set): the primary forecast first
FORECASTS = (
  ("reducible", "reducible", FIT_SET),
  ("paper", "constant", FIT_SET),
  ("paper_constant+cosine", "constant", long.FIT_SET),
)
PRIMARY = FORECASTS[0][0]
PREREG = "gain_prereg.csv"
CHECK = "gain_check.csv"
PAIRS = "gain_pairs.csv"
DEV = "gain_dev.csv"
FIGURE = "gain_forecast.png"
REPLICATE = "gain_replicate.csv"
REPLICATE_PAIRS = "gain_replicate_pairs.csv"
PHASES = ("fit", "held-out", "all", "replicate")


def runs(labels=long.LABELS, seeds=SEEDS) -> list[sc.Run]:
  """The schedule set at PEAK_LR with ``labels`` at ``seeds``, parents before branches."""
  return long.peak_runs(PEAK_LR, PREFIX, labels, seeds)


def fit_runs() -> list[sc.Run]:
  """The fit pair and the cooldown's parent (the constant run)."""
  return runs(("constant", *FIT_SET))


def name(label: str, seed: int) -> str:
  return f"{PREFIX}_{long.name(label, seed)}"


def mean_curves(root: str, labels, min_step: int = MIN_STEP) -> dict | None:
  """{label: seed-mean curve at steps >= min_step}, or None while any run is unfinished."""
  if not long.finished(root, runs(labels)):
    return None
  by_name = {r.name: r for r in runs()}  # branches need their parents' records
  per_seed = [{lb: ll.curve(root, by_name[name(lb, s)], by_name) for lb in labels} for s in SEEDS]
  return {lb: ll._cut(c, min_step) for lb, c in area.seed_mean(per_seed).items()}


def fit(curves: dict, gain: str, fit_set):
  return MultiPowerLaw(gain=gain).fit([curves[k] for k in fit_set])


def forecast(root: str) -> list[dict]:
  """Each forecast's fit on its fit runs and its forecast of each held-out (and reported) final."""
  curves = mean_curves(root, ("constant", *FIT_SET))
  if curves is None:
    raise ValueError(f"the fit runs {FIT_SET} at seeds {SEEDS} are unfinished in {root}.")
  rows = []
  for key, gain, fit_set in FORECASTS:
    fitted = fit(curves, gain, fit_set)
    rel = np.concatenate([fitted.predict(curves[k]) / curves[k].loss - 1 for k in fit_set])
    for label in (*HELD_OUT, *(k for k in (*REPORTED, *FIT_SET) if k not in fit_set)):
      run = runs((label,), (0,))[0]
      mid, lo, hi = (float(v[-1]) for v in fitted.predict_interval(long._final_only(run), z=2.0))
      rows.append(
        dict(
          forecast=key,
          fit_set="+".join(fit_set),
          run=label,
          judged=label in HELD_OUT and key == PRIMARY,
          steps=run.total_steps,
          final_pred=f"{mid:.5f}",
          band_2sigma=f"{lo:.5f}-{hi:.5f}",
          at_bound=ll._at_bound(fitted),
          fit_rmse_rel=f"{np.sqrt(np.mean(rel**2)):.5f}",
        )
      )
  return rows


def per_seed_finals(root: str, labels, seeds=SEEDS) -> dict[str, np.ndarray] | None:
  got = {lb: [ll.final_loss(root, r) for r in runs((lb,), seeds)] for lb in labels}
  if any(v is None for vals in got.values() for v in vals):
    return None
  return {lb: np.asarray(v, dtype=float) for lb, v in got.items()}


def check(root: str, prereg_rows: list[dict], seeds=SEEDS) -> tuple[list[dict], list[dict]] | None:
  """The forecasts against the seed-mean finals over ``seeds``, and the primary forecast's order
  of each pair of held-out cooldowns; None while any run is unfinished. Forecasts of runs not
  trained at every seed (the fit pair's other member, in the replication) are left out."""
  labels = sorted({r["run"] for r in prereg_rows})
  if seeds != SEEDS:
    labels = [lb for lb in labels if lb in ("constant", *HELD_OUT)]
    prereg_rows = [r for r in prereg_rows if r["run"] in labels]
  finals = per_seed_finals(root, labels, seeds)
  if finals is None:
    return None
  truth = {lb: float(v.mean()) for lb, v in finals.items()}
  true_rank = sorted(HELD_OUT, key=truth.get)
  rows = []
  for key, group in itertools.groupby(prereg_rows, key=lambda r: r["forecast"]):
    group = list(group)
    pred = {r["run"]: float(r["final_pred"]) for r in group}
    errs = {k: pred[k] / truth[k] - 1 for k in pred}
    for r in group:
      k = r["run"]
      rows.append(
        dict(
          forecast=key,
          fit_set=r["fit_set"],
          run=k,
          judged=r["judged"],
          final_true=f"{truth[k]:.5f}",
          final_pred=r["final_pred"],
          band_2sigma=r["band_2sigma"],
          final_rel_err=f"{errs[k]:+.5f}",
          within_target=abs(errs[k]) <= long.TARGET,
          held_out_all_within_target=all(abs(errs[h]) <= long.TARGET for h in HELD_OUT),
          held_out_order_correct=sorted(HELD_OUT, key=pred.get) == true_rank,
        )
      )
  primary = {r["run"]: float(r["final_pred"]) for r in prereg_rows if r["forecast"] == PRIMARY}
  return rows, pair_rows({k: finals[k] for k in HELD_COOLDOWNS}, primary)


def pair_rows(finals: dict[str, np.ndarray], pred: dict[str, float]) -> list[dict]:
  """Each pair of held-out cooldowns: the measured paired difference, its test, the forecast."""
  rows = []
  for a, b in itertools.combinations(finals, 2):
    test = rep.paired_test(finals[a], finals[b])
    measured = np.sign(test["mean"])
    rows.append(
      dict(
        pair=f"{a} - {b}",
        mean_diff=f"{test['mean']:+.5f}",
        t=f"{test['t']:+.2f}",
        resolved=test["resolved"],
        forecast_diff=f"{pred[a] - pred[b]:+.5f}",
        forecast_agrees=bool(np.sign(pred[a] - pred[b]) == measured),
      )
    )
  return rows


def verdict(rows: list[dict], pairs: list[dict]) -> dict:
  """The pre-registered criteria, each True or False."""
  at = {(r["forecast"], r["run"]): r for r in rows}
  return dict(
    primary_all_within_target=bool(at[(PRIMARY, SHORT_COSINE)]["held_out_all_within_target"]),
    primary_resolved_pairs_ordered=all(p["forecast_agrees"] for p in pairs if p["resolved"]),
    paper_overpredicts_short_cosine=float(at[("paper", SHORT_COSINE)]["final_rel_err"])
    > long.TARGET,
  )


def dev_rows(root: str) -> list[dict]:
  """On laws_lm_area's six schedule sets (the dev sets): each law on the fit pair, on constant +
  long cosine, and on every run (in sample), with each run's final error."""
  rows = []
  for key, horizon, per_seed, min_step in area.complete_sets(root):
    cut = {k: ll._cut(c, min_step) for k, c in area.seed_mean(per_seed).items()}
    cosine = f"cosine_h{horizon:g}"
    pairs = {
      "pair": (cosine, FIT_SET[1]),
      "constant+cosine": ("constant", cosine),
      "in_sample": tuple(cut),
    }
    for gain in ("reducible", "constant"):
      for fit_key, fit_set in pairs.items():
        fitted = MultiPowerLaw(gain=gain).fit([cut[k] for k in fit_set])
        errs = {k: float(fitted.predict(c)[-1] / c.loss[-1] - 1) for k, c in cut.items()}
        # the must-show's schedules: the cooldowns and the other cosine, where not fitted
        judged = [k for k in errs if k not in ("constant", cosine) and k not in fit_set]
        if fit_key == "in_sample":
          judged = list(errs)
        rows.append(
          dict(
            setting=key,
            gain=gain,
            fit=fit_key,
            **{f"err_{k}": f"{v:+.5f}" for k, v in errs.items()},
            largest_abs_err_judged=f"{max(abs(errs[k]) for k in judged):.5f}",
            at_bound=ll._at_bound(fitted),
          )
        )
  return rows


def plot(root: str, out: str) -> None:
  curves = mean_curves(root, long.LABELS)
  title = f"reducible-gain multi-power law fitted on {' + '.join(FIT_SET)} at peak {PEAK_LR:g}"
  fitted = fit(curves, "reducible", FIT_SET)
  long._plot_forecast(curves, fitted, os.path.join(out, FIGURE), FIT_SET, title, legend_ax=1)


def main(argv=None) -> int:
  argv = list(argv) if argv is not None else None
  dev = argparse.ArgumentParser(add_help=False)
  dev.add_argument("--dev", action="store_true")
  known, rest = dev.parse_known_args(argv)
  args = prereg.parse(rest, __doc__, PHASES, "write the forecast and stop", reads_only=known.dev)
  if known.dev:  # the dev table: reads the six dev sets' logs, trains nothing
    rows = dev_rows(args.root)
    os.makedirs(args.out, exist_ok=True)
    ll._write_csv(os.path.join(args.out, DEV), rows)
    cli.print_rows(rows)
    return 0
  every = runs()
  prereg_path = os.path.join(args.out, PREREG)
  if args.dry:
    ll.print_dry(every, name_width=44)
    return 0
  if args.prereg:
    prereg.write_once(prereg_path, lambda: forecast(args.root))
    return 0
  if args.phase != "fit":
    prereg.require(prereg_path)
  replicate = runs(("constant", *HELD_OUT), REPLICATE_SEEDS)
  todo = {"fit": fit_runs(), "held-out": runs(HELD_OUT), "all": every, "replicate": replicate}
  todo = todo[args.phase]
  if not args.no_train:
    ll.train(args, todo)
  if args.copy_logs:
    ll.copy_logs(args.root, every + replicate, os.path.join(args.out, "runs"))
  if os.path.exists(prereg_path):
    got = check(args.root, ll.read_csv(prereg_path))
    if got is not None:
      rows, pairs = got
      ll._write_csv(os.path.join(args.out, CHECK), rows)
      ll._write_csv(os.path.join(args.out, PAIRS), pairs)
      cli.print_rows(rows + pairs)
      print(verdict(rows, pairs))
      plot(args.root, args.out)
    got = check(args.root, ll.read_csv(prereg_path), SEEDS + REPLICATE_SEEDS)
    if got is not None:
      rows, pairs = got
      ll._write_csv(os.path.join(args.out, REPLICATE), rows)
      ll._write_csv(os.path.join(args.out, REPLICATE_PAIRS), pairs)
      cli.print_rows(rows + pairs)
      print("replication:", verdict(rows, pairs))
  return 0
