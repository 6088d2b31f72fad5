"""Does per-module LR tuning matter on top of a tuned global LR? (muP, docs/mup.md)

At one width (muP, the LR-transfer setup of :mod:`experiments.mup.lr_transfer`:
2 layers, 4 heads, stdlib BPE-1024, batch 8 x 64, cosine, ``--steps`` steps,
losses averaged over ``--seeds``) the global peak LR is fixed at ``--lr`` (the
tuned optimum of the LR-transfer sweep) and one group's multiplier
(``opt.module_lr``: embedding, attention, mlp, norm, readout) is moved to
1/4, 1/2, 2 and 4 while the others stay at 1. For every group it reports the
loss change of each multiplier against multiplier 1, and the best multiplier
from a quadratic fit in log2(multiplier) (clipped to the tried range). Finally
all groups run at once at their best multipliers: the total gain of per-module
tuning over the tuned global LR.

    python -m experiments.mup module_lr --out=results/mup --lr=0.008

Every finished point is appended to ``<out>/module_lr.jsonl`` (resumable);
``module_lr.json`` holds the summary and ``module_lr.png`` the figure; ``--replot`` (with the
run's --width, --lr, --seeds, --groups) redraws the figure from the log alone, no training.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time

import numpy as np

from anytime import cli, optim
from anytime.lm.metrics import read_jsonl
from experiments.mup import common as mup_common

MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)


def _key(multipliers: dict[str, float]) -> str:
  """Canonical name of a multiplier setting ("base" when all are 1)."""
  moved = {g: m for g, m in sorted(multipliers.items()) if m != 1.0}
  return ",".join(f"{g}={m:g}" for g, m in moved.items()) or "base"


def run_point(setup, args, multipliers, seed, data, val) -> dict:
  mcfg = mup_common.model_config(args.width, "mup", setup)
  opt = mup_common.opt_config(
    args.lr,
    schedule="cosine",
    warmup_steps=max(1, args.steps // 10),
    clip=1.0,
    module_lr=multipliers,
  )
  start = time.time()
  losses, params, graphdef = mup_common.train(mcfg, opt, data, seed=seed)
  return {
    "setting": _key(multipliers),
    "multipliers": {g: m for g, m in multipliers.items() if m != 1.0},
    "seed": seed,
    "width": args.width,
    "lr": args.lr,
    "val_loss": mup_common.eval_loss(graphdef, params, val),
    "train_loss_last10": float(np.mean(losses[-10:])),
    "seconds": round(time.time() - start, 1),
  }


def best_multiplier(mults, losses) -> float:
  """argmin of a quadratic in log2(multiplier) through the points, clipped to their range."""
  x = np.log2(np.asarray(mults, float))
  y = np.asarray(losses, float)
  ok = np.isfinite(y)
  x, y = x[ok], y[ok]
  if len(x) < 3:
    return float(2.0 ** x[np.argmin(y)]) if len(x) else 1.0
  a, b, _ = np.polyfit(x, y, 2)
  if a <= 0:  # no interior minimum: the best tried point
    return float(2.0 ** x[np.argmin(y)])
  return float(2.0 ** np.clip(-b / (2 * a), x.min(), x.max()))


def sweep(loss, groups):
  """(base, per_group, best, combined): ``loss(multipliers)`` at multiplier 1, at each group's
  :data:`MULTIPLIERS` ({group: {multiplier: loss}}), each group's best multiplier, and all
  groups at their best, asked in that order."""
  base = loss({})
  per_group = {}
  for group, mult in itertools.product(groups, MULTIPLIERS):
    value = base if mult == 1.0 else loss({group: mult})
    per_group.setdefault(group, {})[mult] = value
  best = {g: best_multiplier(list(v), list(v.values())) for g, v in per_group.items()}
  return base, per_group, best, loss(best)


def replot(args) -> None:
  """Redraws ``--out``/module_lr.png from module_lr.jsonl's points at --width and --lr."""
  path = os.path.join(args.out, "module_lr.jsonl")
  fields = {"setting": str, "seed": int, "width": int, "lr": float, "val_loss": float}
  done = {
    (r["setting"], r["seed"]): r["val_loss"]
    for r in mup_common.read_records(path, fields)
    if (r["width"], r["lr"]) == (args.width, args.lr)
  }

  def loss(multipliers) -> float:
    key = _key(multipliers)
    missing = [seed for seed in args.seeds if (key, seed) not in done]
    if missing:
      raise ValueError(
        f"{path}: no point {key!r} for seed(s) {missing} at --width={args.width} --lr={args.lr:g}"
      )
    return float(np.mean([done[(key, seed)] for seed in args.seeds]))

  base, per_group, _, combined = sweep(loss, args.groups)
  plot(per_group, base, combined, os.path.join(args.out, "module_lr.png"))


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="results/mup")
  parser.add_argument("--width", type=int, default=128)
  parser.add_argument("--lr", type=float, required=True, help="the tuned global peak LR")
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--eval_batches", type=int, default=16)
  parser.add_argument("--groups", nargs="+", default=list(optim.PARAM_GROUPS))
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
  parser.add_argument(
    "--replot", action="store_true", help="redraw module_lr.png from the log in --out, no training"
  )
  args = parser.parse_args(argv)
  cli.one_of("--groups", args.groups, optim.PARAM_GROUPS)
  heads = mup_common.Setup().heads
  cli.require("--width", args.width, args.width >= heads and args.width % heads == 0,
              f"a multiple of the {heads} heads")  # fmt: skip
  cli.positive("--lr", args.lr)
  for flag in ("steps", "eval_batches"):
    cli.at_least(f"--{flag}", getattr(args, flag), 1)
  cli.at_least("--seeds", args.seeds, 0)
  if args.replot:
    replot(args)
    return
  cli.output_dir("--out", args.out)
  setup = mup_common.Setup()
  log_path = os.path.join(args.out, "module_lr.jsonl")
  done = {
    (r["setting"], r["seed"]): r
    for r in read_jsonl(log_path)
    if (r["width"], r["lr"]) == (args.width, args.lr)
  }
  data = {seed: mup_common.batches(setup, args.steps, seed=seed) for seed in args.seeds}
  val = mup_common.eval_batches(setup, args.eval_batches)

  def loss(multipliers) -> float:
    """Mean validation loss over the seeds (runs the missing ones)."""
    values = []
    for seed in args.seeds:
      key = (_key(multipliers), seed)
      if key not in done:
        done[key] = run_point(setup, args, multipliers, seed, data[seed], val)
        with open(log_path, "a") as f:
          f.write(json.dumps(done[key]) + "\n")
        print(json.dumps(done[key]), flush=True)
      values.append(done[key]["val_loss"])
    return float(np.mean(values))

  start = time.time()
  base, per_group, best, combined = sweep(loss, args.groups)
  summary = {
    "width": args.width,
    "lr": args.lr,
    "steps": args.steps,
    "seeds": args.seeds,
    "base_loss": base,
    "delta_vs_base": {
      g: {f"{m:g}": v - base for m, v in vals.items()} for g, vals in per_group.items()
    },
    "best_multiplier": best,
    "combined_loss": combined,
    "combined_gain": base - combined,
    "seed_spread_base": float(
      np.ptp([done[("base", s)]["val_loss"] for s in args.seeds]) if len(args.seeds) > 1 else 0
    ),
    "seconds": round(time.time() - start, 1),
  }
  with open(os.path.join(args.out, "module_lr.json"), "w") as f:
    json.dump(summary, f, indent=1)
  plot(per_group, base, combined, os.path.join(args.out, "module_lr.png"))
  print(f"width {args.width}, global lr {args.lr:g}: base loss {base:.4f}")
  print("loss change vs multiplier 1 (nats):")
  print(f"  {'group':10s} " + " ".join(f"{m:>8g}" for m in MULTIPLIERS) + "   best mult")
  for g, vals in per_group.items():
    cells = " ".join(f"{vals[m] - base:+8.4f}" for m in MULTIPLIERS)
    print(f"  {g:10s} {cells}   {best[g]:.2f}")
  print(f"all groups at their best: {combined:.4f} (gain {base - combined:+.4f} nats)")
  print(f"seed spread of the base point: {summary['seed_spread_base']:.4f}")
  if not math.isfinite(combined):
    print("the combined setting diverged")


def plot(per_group, base, combined, path) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4.2))
  for group, vals in per_group.items():
    ax.plot(list(vals), [v - base for v in vals.values()], "o-", label=group)
  ax.axhline(0, color="k", lw=0.8)
  ax.axhline(combined - base, color="k", ls="--", lw=0.8, label="all at their best")
  ax.set(xscale="log", xlabel="group LR multiplier", ylabel="loss - loss(global optimum)")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
