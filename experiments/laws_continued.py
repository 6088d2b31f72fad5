"""Continued pretraining: fit loss-compute and compute -> LR* laws on proxies, plan a continuation.

    .venv/bin/python -m experiments.laws_continued --proxies PROXIES.csv \\
        --checkpoint_loss 2.41 --extra_compute 5e19 [--out results/laws]
    .venv/bin/python -m experiments.laws_continued --demo     # known laws, checks the estimates

Input: CSV with one row per proxy run (each trained with its tuned LR): ``compute``
(FLOPs or tokens), ``loss`` (final validation loss on the data the checkpoint is
evaluated on), ``lr`` (its optimal peak LR). Output ``<out>/continued.csv``: the
fitted laws (with standard errors), the checkpoint's equivalent compute with a
1-sigma band, the total compute and the predicted optimal LR with its band; in
demo mode also the true values, for several checkpoints.
"""

from __future__ import annotations

import argparse
import csv
import os

import numpy as np

from anytime.laws.continued import fit_loss_compute, fit_power_law, plan_continuation

DEMO = dict(E=1.8, A=1.2, a=0.3, c_ref=1e18, lr_k=3e3, lr_p=-0.2)


def demo_proxies(seed: int = 0):
  rng = np.random.default_rng(seed)
  compute = DEMO["c_ref"] * np.geomspace(1, 100, 8)
  loss = DEMO["E"] + DEMO["A"] * (compute / DEMO["c_ref"]) ** -DEMO["a"]
  loss = loss * (1 + 2e-3 * rng.standard_normal(compute.size))
  lr = DEMO["lr_k"] * compute ** DEMO["lr_p"] * np.exp(0.05 * rng.standard_normal(compute.size))
  return compute, loss, lr


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--proxies")
  ap.add_argument("--checkpoint_loss", type=float, action="append", default=[])
  ap.add_argument("--extra_compute", type=float)
  ap.add_argument("--out", default=os.path.join("results", "laws"))
  ap.add_argument("--demo", action="store_true")
  args = ap.parse_args()
  truth_compute = []
  if args.demo:
    compute, loss, lr = demo_proxies()
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
    if not args.checkpoint_loss or args.extra_compute is None:
      ap.error("--checkpoint_loss and --extra_compute are required with --proxies")
  else:
    ap.error("give --proxies or --demo")
  loss_law = fit_loss_compute(compute, loss)
  lr_law = fit_power_law(compute, lr)
  f = loss_law.fit
  print(
    f"L(C) = {f['E']:.4f}(+-{f.sigma('E'):.3f}) + {f['A']:.4f}(+-{f.sigma('A'):.3f}) "
    f"(C/{loss_law.c_ref:.3g})^-{f['a']:.4f}(+-{f.sigma('a'):.3f})"
  )
  print(f"LR*(C) = exp({lr_law.log_k:.3f}) C^{lr_law.p:.4f} (+-{np.sqrt(lr_law.cov[1, 1]):.4f})")
  rows = []
  for i, ckpt in enumerate(args.checkpoint_loss):
    plan = plan_continuation(loss_law, lr_law, ckpt, args.extra_compute)
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
    if truth_compute:
      c_true = truth_compute[i]
      lr_true = DEMO["lr_k"] * (c_true + args.extra_compute) ** DEMO["lr_p"]
      row.update(
        true_compute=f"{c_true:.4g}",
        compute_rel_err=f"{plan.equivalent_compute / c_true - 1:+.3f}",
        true_lr=f"{lr_true:.4g}",
        lr_octaves_off=f"{np.log2(plan.lr / lr_true):+.3f}",
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


if __name__ == "__main__":
  main()
