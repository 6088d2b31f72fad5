"""A pre-registered replication of the 32-unit WSD forecast on five new seeds (the ranking target).

    .venv/bin/python -m experiments.laws_lm replicate --root runs/laws_lm            # train, check
    .venv/bin/python -m experiments.laws_lm replicate --root results/laws/lm/runs --no_train

laws_lm_long's forecast (``long_prereg.csv``, fitted on seeds 0-2 of the constant and 32-unit
cosine runs) put the four WSD cooldowns within 0.5% of their 3-seed mean finals but ranked them
wrong. The measured finals span 0.10%, and two seeds out of three order them as the forecast
does. With three seeds the truth's ranking is itself not known. This module measures it with
eight seeds, scored by a criterion fixed before the runs: one pair at a time, with a paired
test.

Design (committed before any of these runs existed; the forecast is not refitted):

- New runs: seeds 3-7 of laws_lm_long's constant run and its four WSD branches (10% and 20%,
  linear and 1-sqrt, to 0.1x peak): 5 + 20 runs, the same config as seeds 0-2. No new cosine
  runs: the 16-unit cosine's +1.06% miss holds on each of its three seeds (per-seed errors
  +0.6% to +1.4%), so more seeds would not change it.
- Forecast: ``long_prereg.csv``'s primary row (multi-power law, library residual, steps >=
  1,920), unchanged. Other laws and windows are reported beside it.
- Truth: each cooldown's final loss, averaged over seeds 0-7. The mean over the new seeds 3-7
  alone (whose trunks no fit has seen) is reported as well.
- Pass, two parts:
  1. Every WSD forecast within 0.5% of its 8-seed mean final.
  2. The ranking, one pair at a time. For each of the 6 pairs (A, B), d_s = L_A,s - L_B,s over
     the 8 seeds. The pair is resolved when a two-sided paired t-test rejects d = 0 at 5% (|t|
     > t_0.975,7 = 2.365). The forecast ranks correctly when it orders every resolved pair as
     measured. Unresolved pairs are ties at this precision and are reported as such. The full
     ordering of the 8-seed means is reported as well.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
from scipy import stats

from anytime import cli
from experiments.laws_lm import grid as ll
from experiments.laws_lm import long

NEW_SEEDS = (3, 4, 5, 6, 7)
ALL_SEEDS = long.SEEDS + NEW_SEEDS
LABELS = ("constant", *long.WSD)
PRIMARY = ("1920", "multipower")  # long_prereg.csv's (min_step, law) of the pre-registered forecast
ALPHA = 0.05  # the paired test's two-sided level
CHECK = "replicate_check.csv"
PAIRS = "replicate_pairs.csv"


def runs(seeds=NEW_SEEDS):
  """The replication's runs: the constant run and its WSD branches at ``seeds``."""
  return long.runs(LABELS, seeds)


def per_seed_finals(root: str, seeds=ALL_SEEDS) -> dict[str, np.ndarray] | None:
  """{WSD label: final losses in ``seeds`` order}, or None while any run is unfinished."""
  out = {}
  for label in long.WSD:
    finals = [ll.final_loss(root, r) for r in long.runs((label,), seeds)]
    if any(v is None for v in finals):
      return None
    out[label] = np.asarray(finals, dtype=float)
  return out


def paired_test(a: np.ndarray, b: np.ndarray, alpha: float = ALPHA) -> dict:
  """The two-sided paired t-test of mean(a - b) = 0 over matched seeds.

  t = mean(d) / (sd(d) / sqrt(n)) with d = a - b and sd with n - 1 degrees of freedom; the pair
  is resolved when |t| exceeds the t distribution's 1 - alpha/2 quantile at n - 1 degrees."""
  a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
  if a.shape != b.shape or a.ndim != 1 or a.size < 2:
    raise ValueError(
      f"paired samples must be 1-D, of equal length >= 2: got shapes {a.shape} and {b.shape}."
    )
  if not 0 < alpha < 1:
    raise ValueError(f"alpha={alpha} is invalid: expected 0 < alpha < 1.")
  d = a - b
  n = d.size
  se = float(np.std(d, ddof=1) / np.sqrt(n))
  mean = float(np.mean(d))
  t = mean / se if se > 0 else (0.0 if mean == 0 else np.copysign(np.inf, mean))
  critical = float(stats.t.ppf(1 - alpha / 2, n - 1))
  return dict(mean=mean, se=se, t=t, critical=critical, resolved=bool(abs(t) > critical))


def pair_rows(finals: dict[str, np.ndarray], pred: dict[str, float]) -> list[dict]:
  """Each pair of cooldowns: the measured paired difference, its test, and the forecast's sign."""
  rows = []
  for a, b in itertools.combinations(long.WSD, 2):
    test = paired_test(finals[a], finals[b])
    measured = np.sign(test["mean"])
    forecast = np.sign(pred[a] - pred[b])
    agreeing = int(np.sum(np.sign(finals[a] - finals[b]) == measured))
    rows.append(
      dict(
        pair=f"{a} - {b}",
        mean_diff=f"{test['mean']:+.5f}",
        se=f"{test['se']:.5f}",
        t=f"{test['t']:+.2f}",
        critical=f"{test['critical']:.3f}",
        resolved=test["resolved"],
        seeds_agreeing=f"{agreeing}/{finals[a].size}",
        forecast_diff=f"{pred[a] - pred[b]:+.5f}",
        forecast_agrees=bool(forecast == measured),
      )
    )
  return rows


def check(root: str, prereg: list[dict]) -> tuple[list[dict], list[dict]] | None:
  """The forecast against the 8-seed finals (every law and window), and the primary forecast's
  pairwise ranking; None while any run is unfinished."""
  finals = per_seed_finals(root)
  if finals is None:
    return None
  new = [ALL_SEEDS.index(s) for s in NEW_SEEDS]
  truth = {k: float(v.mean()) for k, v in finals.items()}
  truth_new = {k: float(v[new].mean()) for k, v in finals.items()}
  rank_true = sorted(long.WSD, key=truth.get)
  rows, pairs = [], []
  for key, group in itertools.groupby(prereg, key=lambda r: (r["min_step"], r["law"])):
    pred = {r["run"]: float(r["final_pred"]) for r in group if r["run"] in long.WSD}
    these = pair_rows(finals, pred)
    ranked = all(p["forecast_agrees"] for p in these if p["resolved"])
    errs = {k: pred[k] / truth[k] - 1 for k in long.WSD}
    for k in long.WSD:
      rows.append(
        dict(
          min_step=key[0],
          law=key[1],
          run=k,
          final_true_8seeds=f"{truth[k]:.5f}",
          final_true_new5=f"{truth_new[k]:.5f}",
          final_pred=f"{pred[k]:.5f}",
          rel_err_8seeds=f"{errs[k]:+.5f}",
          rel_err_new5=f"{pred[k] / truth_new[k] - 1:+.5f}",
          within_target=abs(errs[k]) <= long.TARGET,
          all_within_target=all(abs(e) <= long.TARGET for e in errs.values()),
          resolved_pairs_ranked=ranked,
          full_ranking_correct=sorted(long.WSD, key=pred.get) == rank_true,
          ranking_true=" < ".join(rank_true),
        )
      )
    pairs += [dict(min_step=key[0], law=key[1], **p) for p in these]
  return rows, pairs


def main(argv=None) -> int:
  p = ll.parser(__doc__)
  ll.add_run_args(p, jobs=2)
  args = p.parse_args(argv)
  ll.check_run_args(args)
  prereg_path = os.path.join(args.out, long.PREREG)
  if not os.path.exists(prereg_path):
    raise ValueError(f"{prereg_path} missing: this replication checks laws_lm_long's forecast.")
  todo = runs()
  if args.dry:
    ll.print_dry(todo)
    return 0
  if not args.no_train:
    ll.train(args, todo)
  if args.copy_logs:
    ll.copy_logs(args.root, todo, os.path.join(args.out, "runs"))
  got = check(args.root, ll.read_csv(prereg_path))
  if got is None:
    print(f"not every run of seeds {ALL_SEEDS} has finished under {args.root}: no check yet")
    return 0
  rows, pairs = got
  ll._write_csv(os.path.join(args.out, CHECK), rows)
  ll._write_csv(os.path.join(args.out, PAIRS), pairs)

  def primary(table):
    return [r for r in table if (r["min_step"], r["law"]) == PRIMARY]

  cli.print_rows(primary(pairs), skip=("min_step", "law"))
  cli.print_rows(primary(rows), skip=("min_step", "law", "ranking_true"))
  return 0
