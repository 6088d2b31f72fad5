"""Coordinate check (Yang et al. 2022, Tensor Programs V, section 5 / appendix D.1).

Trains a few Adam steps (constant LR, no warmup, no clipping) at several
widths (fixed depth, fixed number of heads: the head width K grows with the
width) and records the mean |coordinate| of every layer's output on a fixed
batch (the first training batch): the embedding, each block's attention
output, MLP output and residual stream, and the readout logits. Under muP every layer's size is
width-independent after training steps; under the standard parameterization
(constant init std, 1/sqrt(K) attention, no output multiplier) the updates
grow the activations with the width. The slope of log mean|act| vs log width
is fitted per layer (seeds averaged first).

    python -m experiments.coord_check --out=results/mup

writes coord_check.csv (every measurement), coord_check.json (slopes) and
coord_check.png.
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

from anytime import optim
from experiments import mup_common

PARAMETERIZATIONS = ("standard", "mup")


def measure(setup, widths, parameterization, *, steps, lr, seeds) -> dict[str, dict]:
  """{"init"|"trained": {layer: mean|act| [len(widths)]}} (means over seeds).

  "trained" is after ``steps`` updates. Both are measured on the first training
  batch: the updates' own inputs (tokens never trained on keep independent
  random embeddings, whose overlap with the updates vanishes like
  1/sqrt(width) in any parameterization). The seeds (init and data order) run
  as one vmapped computation per width.
  """
  opt = mup_common.opt_config(lr, schedule="constant", warmup_steps=0, clip=0.0)
  out: dict[str, dict[str, list[float]]] = {"init": {}, "trained": {}}
  for width in widths:
    mcfg = mup_common.model_config(width, parameterization, setup)
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
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.2), sharey=True)
  for ax, (par, res) in zip(np.atleast_1d(axes), results.items(), strict=True):
    layers = list(res["sizes"])
    colors = plt.cm.tab20(np.linspace(0, 1, len(layers)))
    for layer, color in zip(layers, colors, strict=True):
      label = f"{layer} ({res['slopes'][layer]:+.2f})"
      ax.plot(widths, res["sizes"][layer], "o-", color=color, label=label, ms=3)
    ax.set(xscale="log", yscale="log", xlabel="width d_model", title=f"{par}, slope in ()")
    ax.legend(fontsize=7)
  np.atleast_1d(axes)[0].set_ylabel("mean |coordinate| after the updates")
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="results/mup")
  parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512])
  parser.add_argument("--steps", type=int, default=4)
  parser.add_argument("--lr", type=float, default=1e-2)
  parser.add_argument("--seeds", type=int, default=4)
  parser.add_argument("--layers", type=int, default=2)
  parser.add_argument("--heads", type=int, default=4)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--seq_len", type=int, default=16)
  parser.add_argument("--source", default="stdlib", choices=("stdlib", "synthetic"))
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
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
  results = {}
  rows = []
  for par in PARAMETERIZATIONS:
    sizes = measure(setup, args.widths, par, steps=args.steps, lr=args.lr, seeds=range(args.seeds))
    results[par] = {
      "sizes": sizes["trained"],
      "slopes": slopes(args.widths, sizes["trained"]),
      "init_slopes": slopes(args.widths, sizes["init"]),
    }
    for kind, per_layer in sizes.items():
      for layer, values in per_layer.items():
        for width, value in zip(args.widths, values, strict=True):
          rows.append(
            {
              "parameterization": par,
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
    "lr": args.lr,
    "seeds": args.seeds,
    "setup": dataclasses.asdict(setup),
    "slopes": {par: res["slopes"] for par, res in results.items()},
    "init_slopes": {par: res["init_slopes"] for par, res in results.items()},
    "seconds": round(time.time() - start, 1),
  }
  with open(os.path.join(args.out, "coord_check.json"), "w") as f:
    json.dump(summary, f, indent=1)
  plot(args.widths, results, os.path.join(args.out, "coord_check.png"))
  for par, res in results.items():
    print(f"{par}: slope of log mean|act| vs log width, at init and after {args.steps} steps")
    for layer, slope in res["slopes"].items():
      print(f"  {layer:20s} {res['init_slopes'][layer]:+.3f} {slope:+.3f}")
  print(f"wall time {summary['seconds']} s")


if __name__ == "__main__":
  main()
