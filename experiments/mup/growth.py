"""Width growth in practice: the grown model's loss against the small model's, step by step.

A small model trains ``--pre`` steps; its state is grown ``--factor`` x in width
(:func:`anytime.lm.growth.grow_state`) and both continue on the same batches for
``--steps`` steps, in fp32, without gradient clipping (which is not
growth-invariant). Three grown copies run beside the small model:

* ``exact``: moments, eps and weight decay rescaled (the module's map): the
  trajectory should equal the small model's up to rounding;
* ``naive``: parameters grown the same way, but Adam's moments, eps and weight
  decay copied unscaled: the usual shortcut, whose error this measures;
* ``noise``: exact, plus ``--noise`` x RMS Gaussian noise on the hidden kernels
  to break the copy symmetry (what a user does to let the copies diverge).

For each parameterization it writes per-step losses and |loss - small loss| to
``growth.csv``, the maxima to ``growth.json`` and the figure ``growth.png``.

    python -m experiments.mup growth --out=results/mup

``--replot`` redraws ``growth.png`` from ``growth.csv`` in ``--out`` (seconds, no training).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time

import jax
import numpy as np

from anytime import cli
from anytime.configs import lm as lm_config
from anytime.lm import data as data_lib
from anytime.lm import growth, train
from anytime.lm import sharding as sharding_lib
from experiments.mup import common as mup_common

KINDS = ("exact", "naive", "noise")


def base_config(parameterization: str, args) -> object:
  """The small run: the ``nano`` preset on the stdlib corpus, AdamW with decay, no clipping."""
  cfg = lm_config.get_config(f"model=nano,data=stdlib,unit=steps,horizon={args.pre + args.steps}")
  cfg.batch_size = args.batch
  cfg.model.parameterization = parameterization
  if parameterization == "mup":
    cfg.model.base_width = int(cfg.model.d_model)
  cfg.opt.schedule = "constant"
  cfg.opt.warmup_steps = 10
  cfg.opt.lr = args.lr
  cfg.opt.clip = 0.0  # global-norm clipping is not growth-invariant
  cfg.opt.eps = args.eps
  cfg.opt.weight_decay = args.weight_decay
  cfg.opt.per_group = True  # eps and weight decay per group: the state growth rewrites
  cfg.opt.averages = ()
  cfg.checkpoint_every = 0
  cfg.peak_flops = 1e9  # no start-up matmul measurement
  return cfg


def _trainer(cfg) -> train.Trainer:
  mcfg, plan, mesh = train.validate(cfg)
  return train.Trainer(cfg, mcfg, plan, mesh)


def _batches(cfg, n: int) -> list[dict]:
  it = data_lib.make_train_iterator(
    cfg.data, seq_len=int(cfg.model.seq_len), global_batch_size=cfg.batch_size, seed=0
  )
  out = [next(it) for _ in range(n)]
  it.close()
  return out


def _run(trainer, state, batches) -> tuple[np.ndarray, dict]:
  losses = []
  for b in batches:
    state, metrics = trainer.train_step(state, sharding_lib.global_batch(b, trainer.mesh))
    losses.append(float(metrics["loss"]))
  return np.asarray(losses), state


def compare(parameterization: str, args) -> dict[str, np.ndarray]:
  """{"small": losses, kind: losses for kind in KINDS} over the ``--steps`` steps after growth."""
  cfg = base_config(parameterization, args)
  big_cfg = growth.grown_config(cfg, args.factor)
  small, big = _trainer(cfg), _trainer(big_cfg)
  batches = _batches(cfg, args.pre + args.steps)
  _, state = _run(small, small.init(), batches[: args.pre])
  host = jax.device_get(state)
  out = {"small": _run(small, jax.device_put(host, small.shardings), batches[args.pre :])[0]}
  for kind in KINDS:
    grown = growth.grow_state(
      host, big.abstract, args.factor, parameterization, naive=kind == "naive"
    )
    if kind == "noise":
      grown = growth.add_noise(grown, args.noise, seed=1)
    out[kind] = _run(big, jax.device_put(grown, big.shardings), batches[args.pre :])[0]
  return out


def plot(results: dict, path: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
  for ax, (par, losses) in zip(axes[0], results.items(), strict=True):
    steps = np.arange(1, len(losses["small"]) + 1)
    for kind in KINDS:
      gap = np.maximum(np.abs(losses[kind] - losses["small"]), 1e-9)  # log axis: floor at 1e-9
      ax.plot(steps, gap, label=kind)
    ax.set(yscale="log", xlabel="steps after growth", title=par)
    ax.set_ylabel("|loss(grown) - loss(small)|")
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def _float32(text: str) -> float:
  """A loss as the run had it: the float32 that ``growth.csv``'s 7 decimals round (the nearest
  float32 is the logged one for losses >= 1, where float32's spacing exceeds 1e-7)."""
  return float(np.float32(text))


def replot(out: str) -> None:
  """Redraws ``out``/growth.png from growth.csv: per parameterization, steps 1, 2, ... in order."""
  path = os.path.join(out, "growth.csv")
  columns = ("small", *KINDS)
  rows = mup_common.read_records(
    path, {"parameterization": str, "step": int, **dict.fromkeys(columns, _float32)}
  )
  losses: dict[str, dict[str, list[float]]] = {}
  for r in rows:
    per = losses.setdefault(r["parameterization"], {k: [] for k in columns})
    if r["step"] != len(per["small"]) + 1:
      raise ValueError(f"{path}: {r['parameterization']} step {r['step']} is out of order")
    for k in columns:
      per[k].append(r[k])
  plot(
    {par: {k: np.asarray(v) for k, v in per.items()} for par, per in losses.items()},
    os.path.join(out, "growth.png"),
  )


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="results/mup")
  parser.add_argument("--factor", type=int, default=2)
  parser.add_argument("--pre", type=int, default=100, help="steps of the small model first")
  parser.add_argument("--steps", type=int, default=50, help="steps compared after growth")
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument("--eps", type=float, default=1e-8)
  parser.add_argument("--weight_decay", type=float, default=0.1)
  parser.add_argument("--noise", type=float, default=1e-3, help="x RMS, hidden kernels")
  parser.add_argument("--parameterizations", nargs="+", default=["standard", "mup"])
  parser.add_argument(
    "--replot", action="store_true", help="redraw growth.png from the CSV in --out, no training"
  )
  args = parser.parse_args(argv)
  if args.replot:
    replot(args.out)
    return
  for flag in ("factor", "pre", "steps", "batch"):
    cli.at_least(f"--{flag}", getattr(args, flag), 1)
  for flag in ("lr", "eps"):
    cli.positive(f"--{flag}", getattr(args, flag))
  for flag in ("weight_decay", "noise"):
    cli.at_least(f"--{flag}", getattr(args, flag), 0)
  cli.one_of("--parameterizations", args.parameterizations, ("standard", "mup"))
  cli.output_dir("--out", args.out)
  start = time.time()
  results = {par: compare(par, args) for par in args.parameterizations}
  with open(os.path.join(args.out, "growth.csv"), "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["parameterization", "step", "small", *KINDS])
    for par, losses in results.items():
      for i in range(args.steps):
        writer.writerow([par, i + 1, *(f"{losses[k][i]:.7f}" for k in ("small", *KINDS))])
  summary = {
    "args": vars(args),
    "max_abs_gap": {
      par: {k: float(np.max(np.abs(losses[k] - losses["small"]))) for k in KINDS}
      for par, losses in results.items()
    },
    "seconds": round(time.time() - start, 1),
  }
  with open(os.path.join(args.out, "growth.json"), "w") as f:
    json.dump(summary, f, indent=1)
  plot(results, os.path.join(args.out, "growth.png"))
  print(f"max |loss(grown) - loss(small)| over {args.steps} steps after growth:")
  for par, gaps in summary["max_abs_gap"].items():
    print(f"  {par:9s} " + "  ".join(f"{k} {v:.2e}" for k, v in gaps.items()))
  print(f"wall time {summary['seconds']} s")
