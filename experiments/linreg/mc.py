"""Recursion vs Monte Carlo: z-scores at every recorded step (20k seeds, d = 8).

Same cases as tests/theory/test_montecarlo.py: Gaussian and Rademacher features, constant +
Polyak, 1/sqrt(t) + EMA(0.9), cosine + proportional EMA(4), batch 4; step = half the
stability limit; sigma^2 = 0.5; capacity 1.5, source 2. z = (MC mean - exact) / MC stderr.

  python -m experiments.linreg mc          # ~1 min

Writes results/theory/mc_check.csv.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import anytime
import theory
from anytime import cli
from experiments.linreg import common as C

SEEDS, STEPS, RECORD = 20_000, 300, [1, 2, 5, 10, 30, 100, 300]


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(
    description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
  )
  ap.add_argument("--out", default=C.RESULTS, help="directory of mc_check.csv")
  args = ap.parse_args(argv)
  out_csv = os.path.join(cli.output_dir("--out", args.out), "mc_check.csv")
  cases = [
    (3.0, 1, "constant", "polyak"),
    (3.0, 1, "inv_sqrt", "ema0.9"),
    (3.0, 1, "cosine", "pema4"),
    (1.0, 1, "constant", "polyak"),
    (1.0, 1, "inv_sqrt", "ema0.9"),
    (3.0, 4, "constant", "polyak"),
  ]
  rows = []
  for kappa, batch, sname, rname in cases:
    p = theory.Problem(
      capacity=1.5, source=2.0, dim=8, noise_variance=0.5, kurtosis=kappa, batch_size=batch
    )
    eta = 0.5 * theory.rates.stability_limit(p)
    s = {
      "constant": anytime.constant(eta),
      "inv_sqrt": anytime.inverse_sqrt(eta, offset=5.0),
      "cosine": anytime.cosine(eta, STEPS, final_value=0.1 * eta),
    }[sname]
    rule = {
      "polyak": anytime.polyak(),
      "ema0.9": anytime.ema(0.9),
      "pema4": anytime.proportional_ema(4.0),
    }[rname]
    mc = theory.simulate_sgd(p, s, steps=STEPS, averaging=rule, seeds=SEEDS, record_steps=RECORD)
    last = theory.risk_curve(p, s, steps=STEPS, record_steps=RECORD)
    avg = theory.risk_curve(p, s, steps=STEPS, averaging=rule, record_steps=RECORD)
    for k, t in enumerate(RECORD):
      rows.append(
        dict(
          kurtosis=kappa,
          batch=batch,
          schedule=sname,
          averaging=rname,
          step=t,
          exact_last=float(last[k]),
          mc_last=float(mc.last_mean[k]),
          z_last=float((mc.last_mean[k] - last[k]) / mc.last_stderr[k]),
          exact_avg=float(avg[k]),
          mc_avg=float(mc.avg_mean[k]),
          z_avg=float((mc.avg_mean[k] - avg[k]) / mc.avg_stderr[k]),
        )
      )
    z = [max(abs(r["z_last"]), abs(r["z_avg"])) for r in rows[-len(RECORD) :]]
    print(
      f"kappa={kappa} B={batch} {sname}+{rname}: max |z| = {max(z):.2f} over "
      f"{2 * len(RECORD)} comparisons",
      flush=True,
    )
  C.write_csv(out_csv, rows)
  allz = np.array([[r["z_last"], r["z_avg"]] for r in rows])
  print(
    f"overall max |z| = {np.abs(allz).max():.2f} over {allz.size} comparisons; "
    f"rms z = {np.sqrt(np.mean(allz**2)):.2f}"
  )
