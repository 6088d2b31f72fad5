"""Does the optimal learning rate transfer across width? muP vs standard (docs/mup.md).

For each parameterization and width (32 ... 256; 2 layers, 4 heads, MLP 4x,
stdlib BPE-1024, batch 8 x 64 tokens, cosine to 0.1x after a 10% warmup, a
fixed number of steps = a fixed token budget) the final validation loss,
averaged over ``--seeds`` (init and data order), is measured on a half-octave
LR grid. The grid adapts: it starts around the previous width's best point and
extends by half an octave on a side while the best point sits within one step
of that edge (at most ``--max_points``). The optimum is the quadratic fit of
``anytime.laws.optimal_lr.fit_lr_optimum`` over the best point and its two
neighbours on each side (5 points); diverged runs are dropped. The drift is
log2(lr*(largest) / lr*(smallest)) in octaves.

    python -m experiments.mup lr_transfer --out=results/mup

Every finished point is appended to ``<out>/lr_transfer.jsonl`` and skipped
on a rerun (resumable per point); ``--report_only`` rebuilds the CSV, JSON
summary and figure from that log.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import time

import numpy as np

from anytime import cli
from anytime.laws import optimal_lr
from anytime.lm.metrics import read_jsonl
from experiments.mup import common as mup_common

PARAMETERIZATIONS = ("standard", "mup")


def grid_lr(k: int) -> float:
  """The half-octave grid: lr_k = 2 ** (k / 2) * 1e-3 (k = 0 is 1e-3)."""
  return 1e-3 * 2.0 ** (k / 2)


def load_log(path: str) -> dict[tuple[str, int, int, int], dict]:
  """{(parameterization, width, k, seed): record} of the finished points (no seed field: 0)."""
  done = {}
  for r in read_jsonl(path):
    r.setdefault("seed", 0)
    done[(r["parameterization"], r["width"], r["k"], r["seed"])] = r
  return done


def mean_points(done: dict, seeds) -> list[dict]:
  """One point per (parameterization, width, k) finished for every seed: val_loss averaged."""
  groups: dict[tuple, list[dict]] = {}
  for (par, width, k, seed), r in done.items():
    if seed in seeds:
      groups.setdefault((par, width, k), []).append(r)
  out = []
  for (par, width, k), rs in sorted(groups.items()):
    if len(rs) == len(seeds):
      losses = [r["val_loss"] for r in rs]
      out.append(
        {
          "parameterization": par,
          "width": width,
          "k": k,
          "lr": grid_lr(k),
          "val_loss": float(np.mean(losses)),  # nan if any seed diverged
          "val_loss_seed_spread": float(np.ptp(losses)),
        }
      )
  return out


def run_point(setup, args, parameterization, width, k, seed, data, val) -> dict:
  mcfg = mup_common.model_config(width, parameterization, setup)
  opt = mup_common.opt_config(
    grid_lr(k), schedule="cosine", warmup_steps=max(1, args.steps // 10), clip=1.0
  )
  start = time.time()
  losses, params, graphdef = mup_common.train(mcfg, opt, data, seed=seed)
  val_loss = mup_common.eval_loss(graphdef, params, val)
  return {
    "parameterization": parameterization,
    "width": width,
    "k": k,
    "seed": seed,
    "lr": grid_lr(k),
    "val_loss": val_loss,
    "train_loss_last10": float(np.mean(losses[-10:])),
    "steps": args.steps,
    "tokens": args.steps * setup.batch * setup.seq_len,
    "seconds": round(time.time() - start, 1),
  }


def optimum(points: list[dict]):
  """(fit or None, best point) from one (parameterization, width)'s points."""
  ok = sorted((p for p in points if math.isfinite(p["val_loss"])), key=lambda p: p["k"])
  if not ok:
    return None, None
  i = int(np.argmin([p["val_loss"] for p in ok]))
  window = ok[max(0, i - 2) : i + 3]
  try:
    fit = optimal_lr.fit_lr_optimum([p["lr"] for p in window], [p["val_loss"] for p in window])
  except ValueError:
    fit = None
  return fit, ok[i]


def sweep(args, setup) -> None:
  log_path = os.path.join(args.out, "lr_transfer.jsonl")
  done = load_log(log_path)
  data = {seed: mup_common.batches(setup, args.steps, seed=seed) for seed in args.seeds}
  val = mup_common.eval_batches(setup, args.eval_batches)
  centers = dict.fromkeys(PARAMETERIZATIONS, args.start_k)
  for width in args.widths:  # width-major: an interrupted sweep has both parameterizations
    for parameterization in PARAMETERIZATIONS:
      center = centers[parameterization]
      ks = set(range(center - 2, center + 3))
      while True:
        for k, seed in itertools.product(sorted(ks), args.seeds):
          if (parameterization, width, k, seed) in done:
            continue
          record = run_point(setup, args, parameterization, width, k, seed, data[seed], val)
          done[(parameterization, width, k, seed)] = record
          with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
          print(json.dumps(record), flush=True)
        means = {
          p["k"]: p
          for p in mean_points(done, args.seeds)
          if (p["parameterization"], p["width"]) == (parameterization, width)
        }
        pts = [means[k] for k in sorted(ks)]
        finite = [p for p in pts if math.isfinite(p["val_loss"])]
        best = min(finite, key=lambda p: p["val_loss"])["k"] if finite else min(ks)
        grow = set()
        if best - 1 <= min(ks):
          grow.add(min(ks) - 1)
        if best + 1 >= max(ks) and math.isfinite(means[max(ks)]["val_loss"]):
          grow.add(max(ks) + 1)
        if not grow or len(ks) >= args.max_points:
          break
        ks |= grow
      centers[parameterization] = best


def report(args) -> dict:
  log = os.path.join(args.out, "lr_transfer.jsonl")
  done = load_log(log)
  rows = mean_points(done, args.seeds)
  if not rows:
    raise SystemExit(
      f"error: --out={args.out!r} has no finished point in {log} for --seeds {args.seeds}: "
      "run the sweep first (without --report_only)."
    )
  with open(os.path.join(args.out, "lr_transfer.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
  summary = {}
  for par in PARAMETERIZATIONS:
    widths = sorted({r["width"] for r in rows if r["parameterization"] == par})
    per_width = {}
    for width in widths:
      fit, best = optimum([r for r in rows if r["parameterization"] == par and r["width"] == width])
      per_width[width] = {
        "fit_lr": fit.lr if fit else None,
        "fit_log2_se": fit.log_lr_se / math.log(2) if fit else None,
        "fit_min_loss": fit.min_loss if fit else None,
        "best_grid_lr": best["lr"] if best else None,
        "best_grid_loss": best["val_loss"] if best else None,
      }
    fitted = [w for w in widths if per_width[w]["fit_lr"]]
    drift = None
    if len(fitted) >= 2:
      drift = math.log2(per_width[fitted[-1]]["fit_lr"] / per_width[fitted[0]]["fit_lr"])
    summary[par] = {"per_width": per_width, "drift_octaves": drift, "widths": fitted}
  with open(os.path.join(args.out, "lr_transfer.json"), "w") as f:
    json.dump(summary, f, indent=1)
  plot(rows, summary, os.path.join(args.out, "lr_transfer.png"))
  for par in PARAMETERIZATIONS:
    s = summary[par]
    print(f"{par}: optimal lr per width:")
    for width, v in s["per_width"].items():
      fit = f"{v['fit_lr']:.3g} (+-{v['fit_log2_se']:.2f} oct)" if v["fit_lr"] else "no fit"
      print(
        f"  {width:4d}: fit {fit}, best grid {v['best_grid_lr']:.3g} -> {v['best_grid_loss']:.4f}"
      )
    if s["drift_octaves"] is not None:
      print(f"  drift {s['widths'][0]} -> {s['widths'][-1]}: {s['drift_octaves']:+.2f} octaves")
  return summary


def plot(rows, summary, path) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
  for ax, par in zip(axes, PARAMETERIZATIONS, strict=True):
    widths = sorted({r["width"] for r in rows if r["parameterization"] == par})
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(widths), 1)))
    for width, color in zip(widths, colors, strict=True):
      pts = [r for r in rows if r["parameterization"] == par and r["width"] == width]
      pts = [p for p in pts if math.isfinite(p["val_loss"])]
      ax.plot(
        [p["lr"] for p in pts],
        [p["val_loss"] for p in pts],
        "o-",
        color=color,
        label=f"width {width}",
      )
      fit = summary[par]["per_width"][width]["fit_lr"]
      if fit:
        ax.axvline(fit, color=color, ls=":", lw=1)
    drift = summary[par]["drift_octaves"]
    title = par + (f" (optimum drift {drift:+.2f} octaves)" if drift is not None else "")
    ax.set(xscale="log", xlabel="peak LR (global)", title=title)
    ax.legend(fontsize=8)
  axes[0].set_ylabel("validation loss (nats)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="results/mup")
  parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256])
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--eval_batches", type=int, default=16)
  parser.add_argument("--start_k", type=int, default=6, help="first grid centre: lr = 1e-3*2^(k/2)")
  parser.add_argument("--max_points", type=int, default=9)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
  parser.add_argument("--report_only", action="store_true")
  args = parser.parse_args(argv)
  heads = mup_common.Setup().heads
  ok = all(w >= heads and w % heads == 0 for w in args.widths)
  cli.require("--widths", args.widths, ok, f"multiples of the {heads} heads")
  for flag in ("steps", "eval_batches"):
    cli.at_least(f"--{flag}", getattr(args, flag), 1)
  cli.at_least("--max_points", args.max_points, 5)  # the optimum is a 5-point fit
  cli.at_least("--seeds", args.seeds, 0)
  cli.output_dir("--out", args.out)
  setup = mup_common.Setup()
  start = time.time()
  if not args.report_only:
    sweep(args, setup)
    print(f"sweep wall time {time.time() - start:.0f} s")
  report(args)
