"""Fit a schedule law on some runs' logs and predict the others: fit vs data, CSV + PNG.

    .venv/bin/python -m experiments.laws fit --runs RUNS.jsonl --fit constant,cosine \\
        [--law multipower] [--lr_power 0.35] [--gain reducible] [--gamma_max 1.5] \\
        [--loss_key loss] [--lr_key lr] [--min_step 100] [--out results/laws]
    .venv/bin/python -m experiments.laws fit --lm_workdirs DIR1,DIR2,... --fit NAME1,NAME2 \\
        [--loss_file eval.jsonl --loss_key loss/raw] [--warmup_steps W]
    .venv/bin/python -m experiments.laws fit --demo        # synthetic logs, end to end

Input (``--runs``): JSON Lines or CSV, one record per measurement with fields
``run``, ``step`` (updates done), ``lr`` (the LR of that update) and ``loss``
(names configurable), optional ``model_size``; see :mod:`anytime.laws.curves`.
``--lm_workdirs``: LM trainer workdirs (run name = directory name); the LR is
read from ``train.jsonl`` and the loss from ``--loss_file`` (key ``loss/raw``,
the last iterate, unless ``--loss_key`` names another, e.g. ``loss/ema25``).

Output: ``<out>/fit_<law>.csv`` (per run: role, true and predicted final loss,
relative error of the final value, mean relative error, and whether the
predicted ranking of held-out final losses matches the truth) and
``<out>/fit_<law>.png``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os

import numpy as np

import anytime
from anytime import cli
from anytime.laws import AnnealingLaw, ForwardMomentumLaw, MultiPowerLaw, from_schedule, read_runs
from anytime.laws.curves import curve_from_records, lookup

LAWS = {
  "annealing": AnnealingLaw,
  "multipower": MultiPowerLaw,
  "forward_momentum": ForwardMomentumLaw,
}


def load_lm_workdirs(dirs, loss_file, loss_key, warmup_steps=0):
  """LM trainer workdirs -> {dir name: curve}: LR from train.jsonl, loss from ``loss_file``.

  The model size (non-embedding parameters) comes from the eval log's header.
  """
  from anytime.lm.metrics import read_jsonl

  out = {}
  for d in dirs:
    name = os.path.basename(os.path.normpath(d))
    paths = [os.path.join(d, "train.jsonl"), os.path.join(d, loss_file)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
      raise ValueError(f"--lm_workdirs: {missing} do not exist.")
    train, evals = (read_jsonl(p) for p in paths)
    curve = curve_from_records(
      name, evals, loss_key=loss_key, lr_records=train, warmup_steps=warmup_steps
    )
    sizes = [lookup(r, "params/non_embedding") for r in evals if r.get("kind") == "header"]
    if sizes and sizes[-1]:
      curve = dataclasses.replace(curve, model_size=float(sizes[-1]))
    out[name] = curve
  return out


def demo_runs(path: str, law: MultiPowerLaw | None = None) -> None:
  """Writes synthetic logs from a multi-power law (default the paper's) with 0.2% noise."""
  law = law or MultiPowerLaw()
  true = np.array([2.6, 1.2, 0.4, 0.4, 2.0, 0.6, 0.5])
  t, peak, fin = 3000, 1e-3, 1e-4
  scheds = {
    "constant": anytime.constant(peak),
    "cosine": anytime.cosine(peak, t, final_value=fin),
    "wsd10_linear": anytime.wsd(peak, t, decay_steps=300, shape="linear", final_value=fin),
    "wsd20_linear": anytime.wsd(peak, t, decay_steps=600, shape="linear", final_value=fin),
    "wsd10_1-sqrt": anytime.wsd(peak, t, decay_steps=300, shape="sqrt", final_value=fin),
    "wsd20_1-sqrt": anytime.wsd(peak, t, decay_steps=600, shape="sqrt", final_value=fin),
  }
  steps = np.unique(np.round(np.geomspace(20, t, 80)).astype(int))
  rng = np.random.default_rng(0)
  with open(path, "w") as f:
    for name, s in scheds.items():
      c = from_schedule(name, s, t, steps, np.ones(steps.size))
      loss = law.predict_from(true, law.features(c, peak)) * (
        1 + 2e-3 * rng.standard_normal(steps.size)
      )
      for k, lo in zip(steps, loss, strict=True):
        f.write(f'{{"run": "{name}", "step": {k}, "lr": {float(c.lrs[k - 1])}, "loss": {lo}}}\n')
  print(f"wrote {path}")


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--runs")
  ap.add_argument("--lm_workdirs")
  ap.add_argument("--loss_file", default="eval.jsonl")
  ap.add_argument("--fit", default="constant,cosine")
  ap.add_argument("--law", default="multipower", choices=sorted(LAWS))
  ap.add_argument(
    "--lr_power",
    type=float,
    default=1.0,
    help="multipower only: the clock exponent p, LRs enter as eta**p (1 is the paper's law)",
  )
  ap.add_argument(
    "--gain",
    default="constant",
    help="multipower only: 'constant' (the paper's) or 'reducible' (each LR decrease gains in "
    "proportion to the power-law part of the loss when it is made)",
  )
  ap.add_argument(
    "--gamma_max",
    type=float,
    default=2.0,
    help="multipower only: the upper bound of the fitted gamma (default 2; 1.5 with "
    "--gain reducible passed the pre-registered test of docs/laws.md section 14)",
  )
  ap.add_argument("--loss_key", default="loss")
  ap.add_argument("--lr_key", default="lr")
  ap.add_argument("--warmup_steps", type=int, default=0)
  ap.add_argument("--min_step", type=int, default=1, help="fit only measurements at >= this step")
  ap.add_argument("--out", default=os.path.join("results", "laws"))
  ap.add_argument("--demo", action="store_true")
  args = ap.parse_args(argv)
  for flag in ("lr_power", "gain", "gamma_max"):  # the multi-power law's own options
    value = getattr(args, flag)
    if value != ap.get_default(flag) and args.law != "multipower":
      ap.error(f"--{flag}={value!r} applies to --law multipower only, not {args.law!r}.")
  # built before any log is read, so a bad --lr_power, --gain or --gamma_max fails first
  if args.law == "multipower":
    law = MultiPowerLaw(lr_power=args.lr_power, gain=args.gain, gamma_max=args.gamma_max)
  else:
    law = LAWS[args.law]()
  if not (args.runs or args.lm_workdirs or args.demo):
    raise ValueError("give --runs FILE.jsonl, --lm_workdirs DIR[,DIR...] or --demo (none given).")
  if args.runs and not args.demo:
    cli.input_file("--runs", args.runs)
  for d in filter(None, (args.lm_workdirs or "").split(",")):
    cli.input_dir("--lm_workdirs", d)
  cli.require("--fit", args.fit, all(args.fit.split(",")), "comma-separated run names")
  cli.at_least("--warmup_steps", args.warmup_steps, 0)
  cli.at_least("--min_step", args.min_step, 0)
  cli.output_dir("--out", args.out)
  if args.demo:
    args.runs = os.path.join(args.out, "demo_runs.jsonl")
    demo_runs(args.runs)
  if args.lm_workdirs:
    loss_key = args.loss_key if args.loss_key != "loss" else "loss/raw"
    runs = load_lm_workdirs(
      args.lm_workdirs.split(","), args.loss_file, loss_key, args.warmup_steps
    )
  elif args.runs:
    runs = read_runs(
      args.runs, loss_key=args.loss_key, lr_key=args.lr_key, warmup_steps=args.warmup_steps
    )
  else:
    ap.error("give --runs, --lm_workdirs or --demo")
  fit_names = args.fit.split(",")
  missing = [n for n in fit_names if n not in runs]
  if missing:
    raise ValueError(f"--fit runs {missing} not in the logs; runs are {sorted(runs)}.")

  def cut(c):
    m = c.steps >= args.min_step
    return dataclasses.replace(c, steps=c.steps[m], loss=c.loss[m])

  fitted = law.fit([cut(runs[n]) for n in fit_names])
  clock = f" (lr_power={args.lr_power:g})" if args.lr_power != 1.0 else ""
  clock += f" (gain={args.gain})" if args.gain != "constant" else ""
  clock += f" (gamma_max={args.gamma_max:g})" if args.gamma_max != 2.0 else ""
  print(f"{args.law}{clock} fitted on {fit_names}:")
  for name, v, se in zip(
    fitted.result.names, fitted.result.params, fitted.result.stderr, strict=True
  ):
    print(f"  {name:8s} = {v:.6g} +- {se:.2g}")
  rows, held = [], []
  for name, c in runs.items():
    c = cut(c)
    pred = fitted.predict(c)
    rel = pred / c.loss - 1
    role = "fit" if name in fit_names else "held-out"
    if role == "held-out":
      held.append((name, c.loss[-1], pred[-1]))
    rows.append(
      dict(
        run=name,
        role=role,
        final_true=f"{c.loss[-1]:.6g}",
        final_pred=f"{pred[-1]:.6g}",
        final_rel_err=f"{rel[-1]:+.5f}",
        mean_abs_rel_err=f"{np.mean(np.abs(rel)):.5f}",
      )
    )
  if len(held) > 1:
    true_rank = [n for n, _, _ in sorted(held, key=lambda x: x[1])]
    pred_rank = [n for n, _, _ in sorted(held, key=lambda x: x[2])]
    print(f"held-out ranking (best first): true {true_rank}, predicted {pred_rank}")
    for r in rows:
      r["ranking_matches"] = str(true_rank == pred_rank) if r["role"] == "held-out" else ""
  path = os.path.join(args.out, f"fit_{args.law}.csv")
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
  for r in rows:
    print("  " + "  ".join(f"{k}={v}" for k, v in r.items()))
  print(f"wrote {path}")
  plot(runs, fitted, fit_names, os.path.join(args.out, f"fit_{args.law}.png"), cut)


def plot(runs, fitted, fit_names, path, cut):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 5))
  for (name, c), color in zip(runs.items(), plt.cm.tab10.colors, strict=False):
    c = cut(c)
    ax.plot(c.steps, c.loss, color=color, lw=2, alpha=0.5, label=name)
    ax.plot(c.steps, fitted.predict(c), color=color, lw=1, ls=":" if name in fit_names else "--")
  ax.set_xscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel("loss (thick: data; dotted: fit; dashed: prediction)")
  ax.set_title(f"{fitted.law.label} fitted on {', '.join(fit_names)}")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  print(f"wrote {path}")
