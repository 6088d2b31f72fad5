"""Continued pretraining: fit loss-compute and compute -> LR* laws on proxies, plan a continuation.

    .venv/bin/python -m experiments.laws continued --proxies PROXIES.csv \\
        --checkpoint_loss 2.41 --extra_compute 5e19 [--out results/laws]
    .venv/bin/python -m experiments.laws continued --demo     # known laws, checks the estimates

Input: CSV with one row per proxy run (each trained with its tuned LR): ``compute``
(FLOPs or tokens), ``loss`` (final validation loss on the data the checkpoint is
evaluated on), ``lr`` (its optimal peak LR) and, optionally, ``batch_size`` (its optimal
batch size, any unit: the prediction is in the same unit). Output
``<out>/continued.csv``: per checkpoint the equivalent compute with a 1-sigma band, the
total compute and the predicted optimal LR (and batch size) with their bands; in demo
mode also the true values, for several checkpoints. The fitted laws (with standard
errors) are printed.
"""

from __future__ import annotations

import argparse
import csv
import os

import numpy as np

from anytime import cli
from anytime.laws.continued import fit_loss_compute, fit_power_law, plan_continuation

# Known laws of the demo: loss-compute, LR*(C) = lr_k C^lr_p, B*(C) = b_k C^b_p (B* = 128 at
# c_ref, growing as C^0.3 as the batch-size laws of the literature do, roughly).
DEMO = dict(E=1.8, A=1.2, a=0.3, c_ref=1e18, lr_k=3e3, lr_p=-0.2, b_k=128 / 1e18**0.3, b_p=0.3)


def demo_proxies(seed: int = 0):
  """8 proxies: losses with 0.2% noise, tuned LRs and batch sizes with 5% and 10% (ln) noise."""
  rng = np.random.default_rng(seed)
  compute = DEMO["c_ref"] * np.geomspace(1, 100, 8)
  loss = DEMO["E"] + DEMO["A"] * (compute / DEMO["c_ref"]) ** -DEMO["a"]
  loss = loss * (1 + 2e-3 * rng.standard_normal(compute.size))
  lr = DEMO["lr_k"] * compute ** DEMO["lr_p"] * np.exp(0.05 * rng.standard_normal(compute.size))
  batch = DEMO["b_k"] * compute ** DEMO["b_p"] * np.exp(0.1 * rng.standard_normal(compute.size))
  return compute, loss, lr, batch


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--proxies")
  ap.add_argument("--checkpoint_loss", type=float, action="append", default=[])
  ap.add_argument("--extra_compute", type=float)
  ap.add_argument("--out", default=os.path.join("results", "laws"))
  ap.add_argument("--demo", action="store_true")
  args = ap.parse_args(argv)
  if args.proxies:
    cli.input_file("--proxies", args.proxies)
  cli.positive("--checkpoint_loss", args.checkpoint_loss)
  if args.extra_compute is not None:
    cli.positive("--extra_compute", args.extra_compute)
  if not args.demo and not args.proxies:
    raise ValueError("give --proxies FILE.csv or --demo (neither given).")
  if args.proxies and (not args.checkpoint_loss or args.extra_compute is None):
    raise ValueError("--checkpoint_loss and --extra_compute are required with --proxies.")
  cli.output_dir("--out", args.out)
  truth_compute = []
  if args.demo:
    compute, loss, lr, batch = demo_proxies()
    truth_compute = [3e18, 2e19, 3e20]
    args.checkpoint_loss = [
      DEMO["E"] + DEMO["A"] * (c / DEMO["c_ref"]) ** -DEMO["a"] for c in truth_compute
    ]
    args.extra_compute = args.extra_compute or 5e19
  elif args.proxies:
    with open(args.proxies) as f:
      rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
      missing = [k for k in ("compute", "loss", "lr") if k not in r]
      if missing:
        raise ValueError(f"{args.proxies}: row {i} lacks {missing} (needs compute, loss, lr).")
    compute, loss, lr = (np.array([float(r[k]) for r in rows]) for k in ("compute", "loss", "lr"))
    batch = None
    if rows and "batch_size" in rows[0]:
      for i, r in enumerate(rows):
        try:
          ok = float(r["batch_size"]) > 0
        except (TypeError, ValueError):
          ok = False
        if not ok:
          raise ValueError(
            f"{args.proxies}: row {i} has batch_size={r['batch_size']!r}; a number > 0 is needed "
            "in every row (or no batch_size column)."
          )
      batch = np.array([float(r["batch_size"]) for r in rows])
    if not args.checkpoint_loss or args.extra_compute is None:
      ap.error("--checkpoint_loss and --extra_compute are required with --proxies")
  else:
    ap.error("give --proxies or --demo")
  loss_law = fit_loss_compute(compute, loss)
  lr_law = fit_power_law(compute, lr)
  batch_law = fit_power_law(compute, batch) if batch is not None else None
  f = loss_law.fit
  print(
    f"L(C) = {f['E']:.4f}(+-{f.sigma('E'):.3f}) + {f['A']:.4f}(+-{f.sigma('A'):.3f}) "
    f"(C/{loss_law.c_ref:.3g})^-{f['a']:.4f}(+-{f.sigma('a'):.3f})"
  )
  print(f"LR*(C) = exp({lr_law.log_k:.3f}) C^{lr_law.p:.4f} (+-{np.sqrt(lr_law.cov[1, 1]):.4f})")
  if batch_law is not None:
    b_se = np.sqrt(batch_law.cov[1, 1])
    print(f"B*(C) = exp({batch_law.log_k:.3f}) C^{batch_law.p:.4f} (+-{b_se:.4f})")
  rows = []
  for i, ckpt in enumerate(args.checkpoint_loss):
    plan = plan_continuation(loss_law, lr_law, ckpt, args.extra_compute, batch_law=batch_law)
    row = dict(
      checkpoint_loss=f"{ckpt:.5g}",
      equivalent_compute=f"{plan.equivalent_compute:.4g}",
      eq_low=f"{plan.equivalent_compute_band[0]:.4g}",
      eq_high=f"{plan.equivalent_compute_band[1]:.4g}",
      extra_compute=f"{args.extra_compute:.4g}",
      total_compute=f"{plan.total_compute:.4g}",
      lr=f"{plan.lr:.4g}",
      lr_low=f"{plan.lr_band[0]:.4g}",
      lr_high=f"{plan.lr_band[1]:.4g}",
    )
    if plan.batch_size is not None:
      row.update(
        batch_size=f"{plan.batch_size:.4g}",
        batch_low=f"{plan.batch_size_band[0]:.4g}",
        batch_high=f"{plan.batch_size_band[1]:.4g}",
      )
    if truth_compute:
      c_true = truth_compute[i]
      lr_true = DEMO["lr_k"] * (c_true + args.extra_compute) ** DEMO["lr_p"]
      row.update(
        true_compute=f"{c_true:.4g}",
        compute_rel_err=f"{plan.equivalent_compute / c_true - 1:+.3f}",
        true_lr=f"{lr_true:.4g}",
        lr_octaves_off=f"{np.log2(plan.lr / lr_true):+.3f}",
      )
      batch_true = DEMO["b_k"] * (c_true + args.extra_compute) ** DEMO["b_p"]
      row.update(
        true_batch=f"{batch_true:.4g}",
        batch_octaves_off=f"{np.log2(plan.batch_size / batch_true):+.3f}",
      )
    rows.append(row)
    print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "continued.csv")
  with open(path, "w", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
  print(f"wrote {path}")
