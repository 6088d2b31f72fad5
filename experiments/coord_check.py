"""Coordinate check (Yang et al. 2022, Tensor Programs V, section 5 / appendix D.1).

Trains a few Adam steps (constant LR, no warmup, no clipping) at several
widths (fixed depth, fixed number of heads: the head width K grows with the
width) and records the mean |coordinate| of every layer's output on a fixed
batch: the embedding, each block's attention output, MLP output and residual
stream, and the readout logits. Under muP every layer's size is
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
import json
import os
import time

import jax
import numpy as np
from flax import nnx

from experiments import mup_common

PARAMETERIZATIONS = ("standard", "mup")


def activations(graphdef, params, tokens_BxL) -> dict[str, float]:
  fn = jax.jit(lambda p, t: nnx.merge(graphdef, p).activations(t))
  return {k: float(v) for k, v in fn(params, tokens_BxL).items()}


def measure(setup, widths, parameterization, *, steps, lr, seeds) -> dict[str, np.ndarray]:
  """{layer: mean|act| after ``steps`` updates, shape [len(widths)]} (mean over seeds)."""
  probe = mup_common.eval_batches(setup, 1)["inputs"][0]
  out: dict[str, list[list[float]]] = {}
  for width in widths:
    mcfg = mup_common.model_config(width, parameterization, setup)
    per_seed = []
    for seed in seeds:
      data = mup_common.batches(setup, steps, seed=seed)
      opt = mup_common.opt_config(lr, schedule="constant", warmup_steps=0, clip=0.0)
      if steps:
        _, params, graphdef = mup_common.train(mcfg, opt, data, seed=seed)
      else:
        graphdef, params = mup_common.init(mcfg, seed)
      per_seed.append(activations(graphdef, params, probe))
    for layer in per_seed[0]:
      out.setdefault(layer, []).append([a[layer] for a in per_seed])
  return {layer: np.mean(np.asarray(v), axis=1) for layer, v in out.items()}


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
  parser.add_argument("--seeds", type=int, default=3)
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  setup = mup_common.Setup(base_width=args.widths[0])
  start = time.time()
  results = {}
  rows = []
  for par in PARAMETERIZATIONS:
    sizes = measure(setup, args.widths, par, steps=args.steps, lr=args.lr, seeds=range(args.seeds))
    results[par] = {"sizes": sizes, "slopes": slopes(args.widths, sizes)}
    for layer, values in sizes.items():
      for width, value in zip(args.widths, values, strict=True):
        rows.append({"parameterization": par, "layer": layer, "width": width, "mean_abs": value})
  with open(os.path.join(args.out, "coord_check.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  summary = {
    "widths": args.widths,
    "steps": args.steps,
    "lr": args.lr,
    "seeds": args.seeds,
    "setup": vars(setup) if hasattr(setup, "__dict__") else str(setup),
    "slopes": {par: res["slopes"] for par, res in results.items()},
    "seconds": round(time.time() - start, 1),
  }
  with open(os.path.join(args.out, "coord_check.json"), "w") as f:
    json.dump(summary, f, indent=1)
  plot(args.widths, results, os.path.join(args.out, "coord_check.png"))
  for par, res in results.items():
    print(f"{par}: slope of log mean|act| vs log width after {args.steps} steps")
    for layer, slope in res["slopes"].items():
      print(f"  {layer:20s} {slope:+.3f}")
  print(f"wall time {summary['seconds']} s")


if __name__ == "__main__":
  main()
