"""Optimal LR in (N, D): per-sweep quadratic optima, the power law across them, extrapolation.

    .venv/bin/python -m experiments.laws lr --sweeps SWEEPS.csv --predict 1e9,5e10 [--out DIR]
    .venv/bin/python -m experiments.laws lr --demo          # synthetic grid with a known law

Input: CSV (or JSONL) with one row per finished run: ``n`` (model size), ``d``
(tokens), ``lr`` (peak LR), ``loss`` (final eval loss); diverged runs must be
left out. Each (n, d) needs >= 4 distinct LRs bracketing its optimum.

Output: ``<out>/lr_optima.csv`` (per (n, d): LR* with its 1-sigma interval, and
the law's fitted value), ``<out>/lr_law.csv`` (ln C, alpha, beta with standard
errors, scatter; the prediction at each ``--predict`` point with a 1- and
2-sigma band; in demo mode also the truth), and ``<out>/lr_law.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os

import numpy as np

from anytime import cli
from anytime.laws.optimal_lr import fit_lr_law, fit_lr_optimum

DEMO_LAW = (np.log(0.5), -0.30, -0.10)  # ln C, alpha, beta


def demo_rows(seed: int = 0) -> list[dict]:
  """Sweeps from the demo law: asymmetric loss, grids off-centre, 0.1% noise."""
  rng = np.random.default_rng(seed)
  rows = []
  log_c, alpha, beta = DEMO_LAW
  for n in (1e7, 3e7, 1e8, 3e8):
    for d in (1e9, 4e9, 1.6e10):
      x_star = log_c + alpha * np.log(n) + beta * np.log(d)
      x = x_star + rng.uniform(-0.35, 0.35) * np.log(2) + np.log(2) * 0.5 * np.arange(-3, 4)
      u = x - x_star
      loss = (2.0 + 0.05 * u**2 + 0.004 * u**3 + 5.0 * n**-0.1) * (
        1 + 1e-3 * rng.standard_normal(x.size)
      )
      rows += [
        dict(n=n, d=d, lr=float(np.exp(xi)), loss=float(li)) for xi, li in zip(x, loss, strict=True)
      ]
  return rows


def read_rows(path: str) -> list[dict]:
  if not os.path.exists(path):
    raise ValueError(f"--sweeps={path!r} does not exist.")
  with open(path) as f:
    if path.endswith(".csv"):
      rows = list(csv.DictReader(f))
    else:
      rows = [json.loads(line) for line in f if line.strip()]
  for i, r in enumerate(rows):
    for key in ("n", "d", "lr", "loss"):
      if key not in r:
        raise ValueError(f"{path}: row {i} has no field {key!r} (needs n, d, lr, loss).")
  return [{k: float(r[k]) for k in ("n", "d", "lr", "loss")} for r in rows]


def _positive_number(text: str) -> bool:
  try:
    return float(text) > 0
  except ValueError:
    return False


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--sweeps")
  ap.add_argument("--predict", action="append", default=[], help="N,D to extrapolate to")
  ap.add_argument("--out", default=os.path.join("results", "laws"))
  ap.add_argument("--demo", action="store_true")
  args = ap.parse_args(argv)
  for p in args.predict:
    nd = p.split(",")
    ok = len(nd) == 2 and all(_positive_number(v) for v in nd)
    cli.require("--predict", p, ok, "N,D: two numbers > 0, e.g. 1e9,5e10")
  if args.sweeps:
    cli.input_file("--sweeps", args.sweeps)
  elif not args.demo:
    raise ValueError("give --sweeps FILE.csv or --demo (neither given).")
  cli.output_dir("--out", args.out)
  if args.demo:
    rows = demo_rows()
    args.predict = args.predict or ["1e9,5e10", "3e9,2e11"]
  elif args.sweeps:
    rows = read_rows(args.sweeps)
  else:
    ap.error("give --sweeps or --demo")
  os.makedirs(args.out, exist_ok=True)
  groups: dict[tuple[float, float], list[dict]] = {}
  for r in rows:
    groups.setdefault((r["n"], r["d"]), []).append(r)
  optima = {}
  for (n, d), rs in sorted(groups.items()):
    optima[(n, d)] = fit_lr_optimum([r["lr"] for r in rs], [r["loss"] for r in rs])
  keys = list(optima)
  law = fit_lr_law(
    [k[0] for k in keys],
    [k[1] for k in keys],
    [optima[k].log_lr for k in keys],
    [optima[k].log_lr_se for k in keys],
  )
  print(
    f"ln LR* = {law.log_c:.3f} + ({law.alpha:.4f} +- {law.alpha_se:.4f}) ln N "
    f"+ ({law.beta:.4f} +- {law.beta_se:.4f}) ln D   (extra scatter {law.scatter:.3f} in ln LR)"
  )
  with open(os.path.join(args.out, "lr_optima.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["n", "d", "lr_star", "low_1sigma", "high_1sigma", "law_lr_star"])
    for (n, d), o in optima.items():
      w.writerow(
        [
          f"{n:.4g}",
          f"{d:.4g}",
          f"{o.lr:.5g}",
          f"{o.low:.5g}",
          f"{o.high:.5g}",
          f"{float(law.predict(n, d)[0]):.5g}",
        ]
      )
  with open(os.path.join(args.out, "lr_law.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(
      [
        "quantity",
        "value",
        "stderr",
        "low_1sigma",
        "high_1sigma",
        "low_2sigma",
        "high_2sigma",
        "truth",
        "octaves_off",
      ]
    )
    w.writerow(
      [
        "ln_C",
        f"{law.log_c:.5g}",
        f"{np.sqrt(law.cov[0, 0]):.3g}",
        "",
        "",
        "",
        "",
        f"{DEMO_LAW[0]:.5g}" if args.demo else "",
        "",
      ]
    )
    w.writerow(
      [
        "alpha",
        f"{law.alpha:.5g}",
        f"{law.alpha_se:.3g}",
        "",
        "",
        "",
        "",
        f"{DEMO_LAW[1]:.5g}" if args.demo else "",
        "",
      ]
    )
    w.writerow(
      [
        "beta",
        f"{law.beta:.5g}",
        f"{law.beta_se:.3g}",
        "",
        "",
        "",
        "",
        f"{DEMO_LAW[2]:.5g}" if args.demo else "",
        "",
      ]
    )
    for p in args.predict:
      n, d = (float(v) for v in p.split(","))
      lr, lo1, hi1 = (float(v) for v in law.predict(n, d, z=1.0))
      _, lo2, hi2 = (float(v) for v in law.predict(n, d, z=2.0))
      truth = off = ""
      if args.demo:
        t = float(np.exp(DEMO_LAW[0] + DEMO_LAW[1] * np.log(n) + DEMO_LAW[2] * np.log(d)))
        truth, off = f"{t:.5g}", f"{np.log2(lr / t):+.3f}"
      w.writerow(
        [
          f"lr_star(N={n:.3g},D={d:.3g})",
          f"{lr:.5g}",
          "",
          f"{lo1:.5g}",
          f"{hi1:.5g}",
          f"{lo2:.5g}",
          f"{hi2:.5g}",
          truth,
          off,
        ]
      )
      print(
        f"LR*(N={n:.3g}, D={d:.3g}) = {lr:.4g}  [1 sigma {lo1:.4g}, {hi1:.4g}]  "
        f"[2 sigma {lo2:.4g}, {hi2:.4g}]" + (f"  truth {truth} ({off} octaves)" if truth else "")
      )
  print(f"wrote {args.out}/lr_optima.csv, {args.out}/lr_law.csv")
  plot(groups, optima, law, args, os.path.join(args.out, "lr_law.png"))


def plot(groups, optima, law, args, path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.5))
  for ((n, d), rs), color in zip(
    sorted(groups.items()), plt.cm.viridis(np.linspace(0, 1, len(groups))), strict=True
  ):
    lrs = np.array([r["lr"] for r in rs])
    ax0.plot(lrs, [r["loss"] for r in rs], "o", color=color, ms=3)
    ax0.axvline(optima[(n, d)].lr, color=color, lw=0.5)
  ax0.set_xscale("log")
  ax0.set_xlabel("peak LR")
  ax0.set_ylabel("final loss")
  ax0.set_title("sweeps (points) and fitted optima (lines)")
  ns = sorted({k[0] for k in optima})
  ds = sorted({k[1] for k in optima})
  n_grid = np.geomspace(min(ns), max(ns) * 30, 50)
  for d, color in zip(ds, plt.cm.plasma(np.linspace(0, 0.8, len(ds))), strict=True):
    pts = [(n, optima[(n, d)]) for n in ns if (n, d) in optima]
    ax1.errorbar(
      [p[0] for p in pts],
      [p[1].lr for p in pts],
      yerr=[[p[1].lr - p[1].low for p in pts], [p[1].high - p[1].lr for p in pts]],
      fmt="o",
      color=color,
      label=f"D={d:.2g}",
    )
    lr, lo, hi = law.predict(n_grid, d, z=2.0)
    ax1.plot(n_grid, lr, color=color, lw=1)
    ax1.fill_between(n_grid, lo, hi, color=color, alpha=0.15)
  ax1.set_xscale("log")
  ax1.set_yscale("log")
  ax1.set_xlabel("N")
  ax1.set_ylabel("LR*")
  ax1.set_title(f"LR* = C N^{law.alpha:.3f} D^{law.beta:.3f} (2-sigma band)")
  ax1.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  print(f"wrote {path}")
