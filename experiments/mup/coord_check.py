"""Coordinate check (Yang et al. 2022, Tensor Programs V, section 5 / appendix D.1).

Trains a few Adam steps (constant LR, no warmup, no clipping) at several
widths (fixed depth, fixed number of heads: the head width K grows with the
width) and records the mean |coordinate| of every layer's output on a fixed
batch (the first training batch): the embedding, each block's attention
output, MLP output and residual stream, and the readout logits. Under muP every layer's size is
width-independent after training steps; under the standard parameterization
(constant init std, 1/sqrt(K) attention, no output multiplier) the updates
grow the activations with the width. The slope of log mean|act| vs log width
is fitted per layer (seeds averaged first), for each LR of ``--lrs`` and each
variant: standard, muP, and muP with a zero-initialised readout (TP5 appendix
D.2; it removes the logits' random init term, which under muP vanishes only
like 1/sqrt(width) and so bends the small widths). The defaults (widths
64-1024, batch 8 x 64 tokens, 4 seeds) average out the first steps' noise that
a batch of one sequence leaves (docs/mup.md).

    python -m experiments.mup coord_check --out=results/mup

writes coord_check.csv (every measurement), coord_check.json (slopes) and
coord_check.png; ``--replot`` redraws the figure from the CSV in ``--out`` (seconds, no
training).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from anytime import cli, optim
from experiments.mup import common as mup_common

# name -> (parameterization, readout_zero_init)
VARIANTS = {
  "standard": ("standard", False),
  "mup": ("mup", False),
  "mup_zero_readout": ("mup", True),
}


def measure(setup, widths, variant, *, steps, lr, seeds) -> dict[str, dict]:
  """{"init"|"trained": {layer: mean|act| [len(widths)]}} (means over seeds).

  ``variant`` is a key of :data:`VARIANTS`. "trained" is after ``steps``
  updates. Both are measured on the first training batch: the updates' own
  inputs (tokens never trained on keep independent random embeddings, whose
  overlap with the updates vanishes like 1/sqrt(width) in any
  parameterization). The seeds (init and data order) run as one vmapped
  computation per width.
  """
  parameterization, zero_readout = VARIANTS[variant]
  opt = mup_common.opt_config(lr, schedule="constant", warmup_steps=0, clip=0.0)
  out: dict[str, dict[str, list[float]]] = {"init": {}, "trained": {}}
  for width in widths:
    mcfg = mup_common.model_config(width, parameterization, setup, zero_readout)
    graphdef, _ = mup_common.init(mcfg, 0)
    params = [mup_common.init(mcfg, seed)[1] for seed in seeds]
    data = [mup_common.batches(setup, steps, seed=seed) for seed in seeds]
    params, data = (jax.tree.map(lambda *x: jnp.stack(x), *t) for t in (params, data))
    tx = optim.make_optimizer(opt, steps, model=mcfg)

    def one(p, d, graphdef=graphdef, tx=tx):
      probe_BxL = d["inputs"][0]
      before = nnx.merge(graphdef, p).activations(probe_BxL)
      _, p, _ = mup_common.scan_steps(graphdef, tx, p, tx.init(p), d)
      return before, nnx.merge(graphdef, p).activations(probe_BxL)

    sizes = jax.device_get(jax.jit(jax.vmap(one))(params, data))
    for kind, per_layer in zip(("init", "trained"), sizes, strict=True):
      for layer, per_seed in per_layer.items():
        out[kind].setdefault(layer, []).append(float(np.mean(per_seed)))
  return {kind: {k: np.asarray(v) for k, v in d.items()} for kind, d in out.items()}


def slopes(widths, sizes: dict[str, np.ndarray]) -> dict[str, float]:
  return {layer: mup_common.fit_slope(widths, v) for layer, v in sizes.items()}


def plot(widths, results, path) -> None:
  """One panel per (LR, variant): mean |coordinate| after the updates vs width, log-log."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  lrs = list(results)
  variants = list(results[lrs[0]])
  fig, axes = plt.subplots(
    len(lrs), len(variants), figsize=(5 * len(variants), 3.8 * len(lrs)), squeeze=False
  )
  for row, lr in enumerate(lrs):
    for col, variant in enumerate(variants):
      ax, res = axes[row, col], results[lr][variant]
      layers = list(res["sizes"])
      colors = plt.cm.tab10(np.linspace(0, 1, len(layers)))
      for layer, color in zip(layers, colors, strict=True):
        label = f"{layer} ({res['slopes'][layer]:+.2f})"
        ax.plot(widths, res["sizes"][layer], "o-", color=color, label=label, ms=3)
      ax.set(xscale="log", yscale="log", title=f"{variant}, lr {lr:g} (slope)")
      ax.legend(fontsize=6)
      if row == len(lrs) - 1:
        ax.set_xlabel("width d_model")
      if col == 0:
        ax.set_ylabel("mean |coordinate| after the updates")
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def replot(out: str) -> None:
  """Redraws ``out``/coord_check.png from coord_check.csv: the trained sizes per (lr, variant,
  layer) in the CSV's order, their slopes refitted (coord_check.json's numbers)."""
  path = os.path.join(out, "coord_check.csv")
  fields = {"lr": float, "variant": str, "when": str, "layer": str, "width": int, "mean_abs": float}
  rows = mup_common.read_records(path, fields)
  widths = list(dict.fromkeys(r["width"] for r in rows))
  points: dict[float, dict[str, dict[str, list]]] = {}
  for r in rows:
    if r["when"] == "trained":
      per_layer = points.setdefault(r["lr"], {}).setdefault(r["variant"], {})
      per_layer.setdefault(r["layer"], []).append((r["width"], r["mean_abs"]))
  variants = [list(per) for per in points.values()]
  if not points or any(v != variants[0] for v in variants):
    raise ValueError(f"{path}: no 'trained' rows, or not the same variants at every lr")
  results = {}
  for lr, per in points.items():
    results[lr] = {}
    for variant, per_layer in per.items():
      for layer, pts in per_layer.items():
        if [w for w, _ in pts] != widths:
          raise ValueError(f"{path}: lr {lr:g} {variant} {layer}: not one value per width {widths}")
      sizes = {layer: np.asarray([v for _, v in pts]) for layer, pts in per_layer.items()}
      results[lr][variant] = {"sizes": sizes, "slopes": slopes(widths, sizes)}
  plot(widths, results, os.path.join(out, "coord_check.png"))


def max_abs_slope(slopes_by_layer: dict[str, float]) -> tuple[str, float]:
  """(layer, slope) of the largest |slope|."""
  layer = max(slopes_by_layer, key=lambda k: abs(slopes_by_layer[k]))
  return layer, slopes_by_layer[layer]


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="results/mup")
  parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
  parser.add_argument("--steps", type=int, default=4)
  parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2])
  parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
  parser.add_argument("--seeds", type=int, default=4)
  parser.add_argument("--layers", type=int, default=2)
  parser.add_argument("--heads", type=int, default=4)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--seq_len", type=int, default=64)
  parser.add_argument("--source", default="stdlib", choices=("stdlib", "synthetic"))
  parser.add_argument(
    "--replot",
    action="store_true",
    help="redraw coord_check.png from the CSV in --out, no training",
  )
  args = parser.parse_args(argv)
  if args.replot:
    replot(args.out)
    return
  for flag in ("steps", "seeds", "layers", "heads", "batch", "seq_len"):
    cli.at_least(f"--{flag}", getattr(args, flag), 1)
  ok = all(w >= args.heads and w % args.heads == 0 for w in args.widths)
  cli.require("--widths", args.widths, ok, f"multiples of --heads={args.heads}")
  cli.positive("--lrs", args.lrs)
  cli.output_dir("--out", args.out)
  setup = mup_common.Setup(
    layers=args.layers,
    heads=args.heads,
    seq_len=args.seq_len,
    batch=args.batch,
    vocab=1024 if args.source == "stdlib" else 256,
    base_width=args.widths[0],
    source=args.source,
  )
  start = time.time()
  results: dict[float, dict[str, dict]] = {}
  rows = []
  for lr in args.lrs:
    results[lr] = {}
    for variant in args.variants:
      sizes = measure(setup, args.widths, variant, steps=args.steps, lr=lr, seeds=range(args.seeds))
      results[lr][variant] = {
        "sizes": sizes["trained"],
        "slopes": slopes(args.widths, sizes["trained"]),
        "init_slopes": slopes(args.widths, sizes["init"]),
      }
      for kind, per_layer in sizes.items():
        for layer, values in per_layer.items():
          for width, value in zip(args.widths, values, strict=True):
            rows.append(
              {
                "lr": lr,
                "variant": variant,
                "when": kind,
                "layer": layer,
                "width": width,
                "mean_abs": value,
              }
            )
  with open(os.path.join(args.out, "coord_check.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  summary = {
    "widths": args.widths,
    "steps": args.steps,
    "seeds": args.seeds,
    "setup": dataclasses.asdict(setup),
    "slopes": {
      f"{lr:g}": {v: res["slopes"] for v, res in per.items()} for lr, per in results.items()
    },
    "init_slopes": {
      f"{lr:g}": {v: res["init_slopes"] for v, res in per.items()} for lr, per in results.items()
    },
    "seconds": round(time.time() - start, 1),
  }
  with open(os.path.join(args.out, "coord_check.json"), "w") as f:
    json.dump(summary, f, indent=1)
  plot(args.widths, results, os.path.join(args.out, "coord_check.png"))
  layers = list(results[args.lrs[0]][args.variants[0]]["slopes"])
  print(f"slope of log mean|act| vs log width after {args.steps} steps (init in brackets)")
  print(f"{'lr':>7s} {'variant':18s} " + " ".join(f"{k[-12:]:>18s}" for k in layers))
  for lr, per in results.items():
    for variant, res in per.items():
      cells = [f"{res['slopes'][k]:+.2f} [{res['init_slopes'][k]:+.2f}]" for k in layers]
      print(f"{lr:7g} {variant:18s} " + " ".join(f"{c:>18s}" for c in cells))
  print("largest |slope| per (lr, variant):")
  for lr, per in results.items():
    for variant, res in per.items():
      layer, slope = max_abs_slope(res["slopes"])
      print(f"  lr {lr:g} {variant:18s} {slope:+.3f} ({layer})")
  print(f"wall time {summary['seconds']} s")
