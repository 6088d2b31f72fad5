"""Anytime vs horizon-tuned cosine in linear regression (the paper's Figures 1 and 2, in theory).

For horizons T in {1, 2, 4, ..., 32} x T0 and each (a, b):

* cosine to 0.1x peak, tuned per T over a log grid of peaks (multiplier / tr H): the best
  last iterate and the best Polyak-averaged iterate at T (one run per T and peak);
* ONE anytime run per method, its peak chosen once from the same grid (the one whose worst
  ratio over all T is smallest; it does not depend on T), evaluated at every T:
  t**-gamma* (gamma* of theory.rates, offset o: peak * (o / (t + o))**gamma*) with Polyak
  averaging or with EMA-25 (proportional EMA), and constant + EMA-25 (the paper's LM
  recipe); peak and offset are chosen once, jointly, from the grids;
* ratio = anytime excess risk at T / best tuned cosine at T (min over peaks and over last
  and averaged iterate): < 1 means the anytime run wins.
* Figure 1 analogue: the cosine run tuned for 32 T0, evaluated at intermediate T, against
  the per-T tuned cosine envelope.

Exact recursion, compressed spectrum for d = 500k (error <= 1e-5, theory_bench).

  python -m experiments.linreg horizons            # paper settings, T0 = 1500 (207 s)

Writes results/theory/horizons_ratios.csv, horizons_curves.csv, horizons.png, fig1.png.
"""

from __future__ import annotations

import argparse
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import anytime
from anytime import cli
from experiments.linreg import common as C
from theory import rates, recursion

MULTIPLIERS = tuple(2.0**k for k in np.arange(-8.0, 3.01, 0.5))
HORIZON_FACTORS = (1, 2, 4, 8, 16, 32)


OFFSETS = (1.0, 10.0, 100.0, 1000.0, 10000.0)


def anytime_methods(a, b, offsets=OFFSETS):
  """name -> (schedule factory (peak, offset), averaging rule, offsets to try)."""
  g = rates.optimal_decay(a, b)

  def decay(pk, off):
    return anytime.polynomial_decay(pk, g, offset=off) if g > 0 else anytime.constant(pk)

  dec_offsets = tuple(offsets) if g > 0 else (1.0,)
  return {
    f"t^-{g:.2f}+polyak": (decay, anytime.polyak(), dec_offsets),
    f"t^-{g:.2f}+ema25": (decay, anytime.proportional_ema(25.0), dec_offsets),
    "constant+ema25": (
      lambda pk, off: anytime.constant(pk),
      anytime.proportional_ema(25.0),
      (1.0,),
    ),
  }


def compare(problem, t0, *, multipliers=MULTIPLIERS, factors=HORIZON_FACTORS, spectrum=None):
  """Returns (ratio rows, curve rows) for one problem."""
  a, b = problem.capacity, problem.source
  spec = spectrum if spectrum is not None else recursion.spectrum_for(problem)
  peaks = recursion.peak_grid(problem, multipliers)
  horizons = np.array([f * t0 for f in factors], dtype=np.int64)
  t_max = int(horizons[-1])
  dense = np.unique(np.concatenate([C.log_records(t_max, 60), horizons]))
  at_h = np.searchsorted(dense, horizons)
  # Tuned cosine per horizon (last and Polyak-averaged iterate).
  cos_last = np.full((len(horizons), len(peaks)), np.inf)
  cos_avg = np.full_like(cos_last, np.inf)
  long_cos = None
  for h, t in enumerate(horizons):
    scheds = [anytime.cosine(pk, int(t), final_value=0.1 * pk) for pk in peaks]
    rec = dense[dense <= t] if t == t_max else np.array([t])
    c = recursion.run(
      problem,
      recursion.lr_array(scheds, int(t)),
      averaging=anytime.polyak(),
      record_steps=rec,
      spectrum=spec,
    )
    cos_last[h], cos_avg[h] = c.last[:, -1], c.averaged[:, -1]
    if t == t_max:
      long_cos = c
  tuned_last, tuned_avg = cos_last.min(1), cos_avg.min(1)
  tuned = np.minimum(tuned_last, tuned_avg)
  rows = []
  curves = []
  j_long = recursion.best_index(cos_last[-1])
  for k, t in enumerate(dense):
    curves.append(
      dict(
        capacity=a,
        source=b,
        method="cosine@32T0 (last)",
        step=int(t),
        risk=float(long_cos.last[j_long, k]),
      )
    )
  for name, (make, rule, offsets) in anytime_methods(a, b).items():
    grid = [(pk, off) for off in offsets for pk in peaks]
    c = recursion.run(
      problem,
      recursion.lr_array([make(pk, off) for pk, off in grid], t_max),
      averaging=rule,
      record_steps=dense,
      spectrum=spec,
    )
    at = c.averaged[:, at_h]  # [grid, horizons]
    worst = np.max(at / tuned[None], axis=1)
    j = recursion.best_index(worst)  # one (peak, offset) for every horizon
    mult = multipliers[j % len(peaks)]
    for h, t in enumerate(horizons):
      rows.append(
        dict(
          capacity=a,
          source=b,
          T0=t0,
          horizon_factor=int(factors[h]),
          horizon=int(t),
          method=name,
          multiplier=mult,
          offset=grid[j][1],
          anytime_risk=float(at[j, h]),
          tuned_cosine_last=float(tuned_last[h]),
          tuned_cosine_avg=float(tuned_avg[h]),
          cosine_last_multiplier=multipliers[int(np.argmin(cos_last[h]))],
          ratio=float(at[j, h] / tuned[h]),
          ratio_vs_cosine_last=float(at[j, h] / tuned_last[h]),
          long_cosine_last=float(long_cos.last[j_long, np.searchsorted(dense, t)]),
          long_cosine_ratio=float(long_cos.last[j_long, np.searchsorted(dense, t)] / tuned_last[h]),
        )
      )
    for k, t in enumerate(dense):
      curves.append(
        dict(capacity=a, source=b, method=name, step=int(t), risk=float(c.averaged[j, k]))
      )
  return rows, curves


def plot_ratios(rows, path):
  settings = sorted({(r["capacity"], r["source"]) for r in rows})
  methods = ["t^-gamma*+polyak", "t^-gamma*+ema25", "constant+ema25"]
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for ax, m in zip(axes, methods, strict=False):
    for a, b in settings:
      key = lambda r: (
        "constant+ema25"
        if r["method"] == "constant+ema25"
        else ("t^-gamma*+" + r["method"].split("+")[1])
      )
      pts = [r for r in rows if (r["capacity"], r["source"]) == (a, b) and key(r) == m]
      ax.semilogx(
        [r["horizon_factor"] for r in pts], [r["ratio"] for r in pts], "o-", label=f"a={a}, b={b:g}"
      )
    ax.axhline(1.0, color="gray", ls=":")
    ax.set(
      xlabel="horizon / T0",
      ylabel="anytime risk / tuned cosine risk",
      title=f"one run of {m}\nvs cosine tuned per horizon",
    )
    ax.title.set_fontsize(10)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def method_words(method: str) -> str:
  """A method's name in words: ``t^-0.50+ema25`` -> ``LR ~ t^-0.50 + EMA, gamma 25``."""
  if method.startswith("cosine@"):
    return f"cosine tuned for {method[7:].split()[0].replace('T0', ' T0')}, last iterate"
  schedule, _, rule = method.partition("+")
  schedule = "constant LR" if schedule == "constant" else f"LR ~ {schedule}"
  if rule == "polyak":
    return f"{schedule} + Polyak average (one run)"
  if rule.startswith("ema"):
    return f"{schedule} + EMA, gamma {rule[3:]} (one run)"
  return method


def plot_fig1(rows, curves, path):
  """Each anytime run's risk curve against the per-horizon tuned cosine, one panel per (a, b)."""
  settings = sorted({(r["capacity"], r["source"]) for r in rows})
  cols = min(3, len(settings))
  nrow = (len(settings) + cols - 1) // cols
  fig, axes = plt.subplots(nrow, cols, figsize=(5.2 * cols, 4.0 * nrow + 0.6), squeeze=False)
  for ax, (a, b) in zip(axes.flat, settings, strict=False):
    for m in sorted({c["method"] for c in curves}):
      pts = [c for c in curves if (c["capacity"], c["source"]) == (a, b) and c["method"] == m]
      label = method_words(m)
      ax.loglog([p["step"] for p in pts], [p["risk"] for p in pts], label=label, lw=1.2)
    env = [r for r in rows if (r["capacity"], r["source"]) == (a, b)]
    env = {r["horizon"]: min(r["tuned_cosine_last"], r["tuned_cosine_avg"]) for r in env}
    ax.loglog(list(env), list(env.values()), "ks", ms=4, label="cosine tuned per horizon T")
    gamma = rates.optimal_decay(a, b)
    ax.set_title(f"capacity a={a}, source b={b:g} (gamma*={gamma:.2f})", fontsize=9)
    ax.set_xlabel("SGD step (log scale)")
    ax.set_ylabel("expected excess risk (exact)")
    ax.legend(fontsize=7)
  for ax in list(axes.flat)[len(settings) :]:
    ax.axis("off")
  fig.suptitle(
    "Linear regression, exact expected risk:\none horizon-free run per method "
    "vs cosine tuned separately for each horizon T",
    fontsize=10,
  )
  fig.tight_layout()
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)


def print_table(rows):
  print(
    f"{'a':>4} {'b':>5} {'method':>17} {'T/T0':>4} {'mult':>7} {'anytime':>10} "
    f"{'cos last':>10} {'cos avg':>10} {'ratio':>6} {'long cos/env':>12}"
  )
  for r in rows:
    print(
      f"{r['capacity']:4.1f} {r['source']:5.2f} {r['method']:>17} {r['horizon_factor']:4d} "
      f"{r['multiplier']:7.4f} {r['offset']:5.0f} {r['anytime_risk']:10.3e} "
      f"{r['tuned_cosine_last']:10.3e} "
      f"{r['tuned_cosine_avg']:10.3e} {r['ratio']:6.3f} {r['long_cosine_ratio']:12.3f}"
    )


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--t0", type=int, default=1500)
  ap.add_argument("--dim", type=int, default=C.PAPER_DIM)
  ap.add_argument("--out", default=C.RESULTS)
  ap.add_argument(
    "--replot",
    action="store_true",
    help="redraw horizons.png and fig1.png from the CSVs in --out (seconds, no compute)",
  )
  args = ap.parse_args(argv)
  if args.replot:
    paths = [os.path.join(args.out, f"horizons_{k}.csv") for k in ("ratios", "curves")]
    rows, curves = ([C.typed(r) for r in C.read_csv(cli.input_file("--out", p))] for p in paths)
    plot_ratios(rows, os.path.join(args.out, "horizons.png"))
    plot_fig1(rows, curves, os.path.join(args.out, "fig1.png"))
    return
  cli.at_least("--t0", args.t0, 1)
  cli.at_least("--dim", args.dim, 1)
  cli.output_dir("--out", args.out)  # before minutes of compute, not after
  rows, curves = [], []
  for a, b in C.PAPER_SETTINGS:
    t = time.time()
    r, c = compare(C.problem(a, b, dim=args.dim), args.t0)
    rows += r
    curves += c
    print(f"a={a} b={b:g}: {time.time() - t:.1f} s", flush=True)
  C.write_csv(os.path.join(args.out, "horizons_ratios.csv"), rows)
  C.write_csv(os.path.join(args.out, "horizons_curves.csv"), curves)
  plot_ratios(rows, os.path.join(args.out, "horizons.png"))
  plot_fig1(rows, curves, os.path.join(args.out, "fig1.png"))
  print_table(rows)
