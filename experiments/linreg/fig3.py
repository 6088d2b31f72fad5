"""The paper's Figure 3 in linear regression: horizon-free schedules with Polyak averaging.

d = 500k (compressed spectrum, error <= 1e-5 measured by experiments/bench/recursion.py),
50k steps, sigma^2 = 0.01, a in {1.1, 1.5, 1.9}, b in {a, 2a}; peak step = multiplier / tr H
over a log grid; schedules constant, 1/sqrt(t) and t**-gamma* (peak * (o / (t + o))**gamma,
offset o in {1, 100, 1e4}), Polyak-averaged risk, best (multiplier, offset) per curve (lowest
averaged risk at the last step). In the paper's settings gamma* is 0 (b = a) or 1/2 (b = 2a),
so its t**-gamma* curve is the constant or the 1/sqrt(t) one. Two extra settings
(b = 1.5a, where gamma* = 1/3, and b = 3a, where the paper's max(0, 1 - a/b) = 2/3 and the
general gamma* = 1/2 differ) add the schedule t**-gamma_paper.

  python -m experiments.linreg fig3                 # 194 s on 2 cores (fig3_log.txt)
  python -m experiments.linreg fig3 --mode full     # the O(d) recursion (hours)

Writes results/theory/fig3_summary.csv, fig3_curves.csv, fig3.png.
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
EXTRA_SETTINGS = ((1.5, 2.25), (1.5, 4.5))


OFFSETS = (1.0, 100.0, 10000.0)


def schedules_for(a, b, peak, offset=1.0):
  out = {
    "constant": anytime.constant(peak),
    "inv_sqrt": anytime.inverse_sqrt(peak, offset=offset),
  }
  g, gp = rates.optimal_decay(a, b), rates.paper_optimal_decay(a, b)
  if g not in (0.0, 0.5):
    out["gamma_star"] = anytime.polynomial_decay(peak, g, offset=offset)
  if gp not in (0.0, 0.5, g):
    out["gamma_paper"] = anytime.polynomial_decay(peak, gp, offset=offset)
  return out


def run_setting(a, b, steps, dim, mode):
  p = C.problem(a, b, dim=dim)
  peaks = recursion.peak_grid(p, MULTIPLIERS)
  names = list(schedules_for(a, b, 1.0))
  grid = [(pk, off) for off in OFFSETS for pk in peaks]  # constant repeats (harmless)
  scheds = [schedules_for(a, b, pk, off)[n] for n in names for pk, off in grid]
  rec = C.log_records(steps, 80)
  spec = recursion.spectrum_for(p, mode)
  c = recursion.run(
    p,
    recursion.lr_array(scheds, steps),
    averaging=anytime.polyak(),
    record_steps=rec,
    spectrum=spec,
  )
  avg = c.averaged.reshape(len(names), len(grid), -1)
  last = c.last.reshape(len(names), len(grid), -1)
  summary, curves = [], []
  lo = rec >= steps // 10
  for i, n in enumerate(names):
    j = recursion.best_index(avg[i, :, -1])
    slope = -np.polyfit(np.log(rec[lo]), np.log(avg[i, j, lo]), 1)[0]
    gamma = {
      "constant": 0.0,
      "inv_sqrt": 0.5,
      "gamma_star": rates.optimal_decay(a, b),
      "gamma_paper": rates.paper_optimal_decay(a, b),
    }[n]
    summary.append(
      dict(
        capacity=a,
        source=b,
        schedule=n,
        gamma=gamma,
        best_multiplier=MULTIPLIERS[j % len(peaks)],
        offset=grid[j][1],
        final_avg_risk=float(avg[i, j, -1]),
        final_last_risk=float(last[i, j, -1]),
        diverged_runs=int(np.sum(np.isinf(avg[i, :, -1]))),
        slope_last_decade=float(slope),
        predicted_exponent=rates.averaged_exponent(a, b, gamma),
      )
    )
    for k, t in enumerate(rec):
      curves.append(
        dict(
          capacity=a,
          source=b,
          schedule=n,
          step=int(t),
          avg_risk=float(avg[i, j, k]),
          last_risk=float(last[i, j, k]),
        )
      )
  return summary, curves


def plot(curves, path):
  settings = sorted({(float(r["capacity"]), float(r["source"])) for r in curves})
  cols = 4
  rows_n = (len(settings) + cols - 1) // cols
  fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3.3 * rows_n), squeeze=False)
  for ax, (a, b) in zip(axes.flat, settings, strict=False):
    for n in ("constant", "inv_sqrt", "gamma_star", "gamma_paper"):
      pts = [
        r
        for r in curves
        if float(r["capacity"]) == a and float(r["source"]) == b and r["schedule"] == n
      ]
      if pts:
        ax.loglog([int(r["step"]) for r in pts], [float(r["avg_risk"]) for r in pts], label=n)
    ax.set_title(f"a={a}, b={b:g} (gamma*={rates.optimal_decay(a, b):.2f})", fontsize=9)
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
  for ax in list(axes.flat)[len(settings) :]:
    ax.axis("off")
  axes[0, 0].set_ylabel("Polyak-averaged excess risk")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=C.PAPER_STEPS)
  ap.add_argument("--dim", type=int, default=C.PAPER_DIM)
  ap.add_argument("--mode", default="compressed", choices=["compressed", "full"])
  ap.add_argument("--out", default=C.RESULTS)
  ap.add_argument(
    "--replot",
    action="store_true",
    help="redraw fig3.png from fig3_curves.csv in --out (no compute)",
  )
  args = ap.parse_args(argv)
  if args.replot:
    tag = "" if args.mode == "compressed" else "_full"
    path = cli.input_file("--out", os.path.join(args.out, f"fig3_curves{tag}.csv"))
    plot([C.typed(r) for r in C.read_csv(path)], os.path.join(args.out, f"fig3{tag}.png"))
    return
  cli.at_least("--steps", args.steps, 10)
  cli.at_least("--dim", args.dim, 1)
  cli.output_dir("--out", args.out)  # before minutes of compute, not after
  summary, curves = [], []
  for a, b in C.PAPER_SETTINGS + EXTRA_SETTINGS:
    t0 = time.time()
    s, c = run_setting(a, b, args.steps, args.dim, args.mode)
    summary += s
    curves += c
    print(f"a={a} b={b:g}: {time.time() - t0:.1f} s", flush=True)
  tag = "" if args.mode == "compressed" else "_full"
  C.write_csv(os.path.join(args.out, f"fig3_summary{tag}.csv"), summary)
  C.write_csv(os.path.join(args.out, f"fig3_curves{tag}.csv"), curves)
  plot(curves, os.path.join(args.out, f"fig3{tag}.png"))
  print(
    f"{'a':>4} {'b':>5} {'schedule':>11} {'gamma':>5} {'mult':>7} {'offset':>6} {'avg risk':>10} "
    f"{'last risk':>10} {'slope':>6} {'pred':>6}"
  )
  for r in summary:
    print(
      f"{r['capacity']:4.1f} {r['source']:5.2f} {r['schedule']:>11} {r['gamma']:5.2f} "
      f"{r['best_multiplier']:7.4f} {r['offset']:6.0f} {r['final_avg_risk']:10.3e} "
      f"{r['final_last_risk']:10.3e} "
      f"{r['slope_last_decade']:6.3f} {r['predicted_exponent']:6.3f}"
    )
