"""Sweep throughput on a CPU: two runs pinned one per core vs one run on every core.

    python -m experiments.bench sweep_jobs [--preset micro] [--steps 600] [--rounds 2]
        [--data_path DIR]

A CPU sweep has many runs to do, so what counts is the aggregate tokens/s of the machine, not one
run's. Each round times (a) one trainer run with every core (XLA's thread pool over both) and
(b) two trainer runs at once, each pinned to its own core (``os.sched_setaffinity``, as
``python -m anytime.sweeps --jobs=2 --pin=auto`` does); the rounds alternate and the ratio
(b) / (a) of the medians is printed with each round's numbers, so the load of the machine during
one round shows. Rates are the trainer's own tokens/s records (train.jsonl) after the first
``--skip`` log records (compile and warm-up), so start-up and evaluation are excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from anytime import cli


def _command(args, workdir: str) -> list[str]:
  cmd = [
    sys.executable, "-m", "anytime.lm",
    f"--config=configs/lm.py:model={args.preset},schedule=constant,horizon={args.steps},"
    "unit=steps,lr=0.003",
    f"--workdir={workdir}", "--config.eval_points=0", f"--config.horizons=({args.steps}.0,)",
    "--config.eval_batches=1", "--config.checkpoint_every=0", "--config.log_every=50",
  ]  # fmt: skip
  if args.data_path:
    cmd += ["--config.data.source=tokens", f"--config.data.path={args.data_path}"]
  return cmd


def _rate(workdir: str, skip: int) -> float:
  """Median tokens/s of the run's train records after the first ``skip``."""
  with open(os.path.join(workdir, "train.jsonl")) as f:
    rates = [json.loads(line)["tokens_per_s"] for line in f if '"tokens_per_s"' in line]
  if len(rates) <= skip:
    raise RuntimeError(f"{workdir}: {len(rates)} train records, need more than --skip={skip}")
  return statistics.median(rates[skip:])


def _mesh_line(log_path: str) -> str:
  with open(log_path) as f:
    return next((ln.strip() for ln in f if ln.startswith("mesh:")), "no mesh line in the log")


def _run_jobs(args, tmp: str, tag: str, pins) -> list[float]:
  procs = []
  for i, cores in enumerate(pins):
    workdir = os.path.join(tmp, f"{tag}_{i}")
    pre = (lambda c=cores: os.sched_setaffinity(0, c)) if cores else None
    log = open(os.path.join(tmp, f"{tag}_{i}.log"), "w")  # noqa: SIM115 (closed below)
    procs.append((subprocess.Popen(_command(args, workdir), stdout=log, stderr=log,
                                   preexec_fn=pre), log, workdir))  # fmt: skip
  rates = []
  for proc, log, workdir in procs:
    code = proc.wait()
    log.close()
    if code:
      raise RuntimeError(f"trainer exited {code}; see {log.name}")
    rates.append(_rate(workdir, args.skip))
  return rates


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--preset", default="micro", help="configs/lm.py model preset")
  p.add_argument("--steps", type=int, default=600, help="steps per run")
  p.add_argument("--rounds", type=int, default=2, help="alternating rounds of (a) and (b)")
  p.add_argument("--skip", type=int, default=2, help="train records skipped (warm-up)")
  p.add_argument("--data_path", default="", help="rows directory (default: stdlib corpus)")
  args = p.parse_args(argv)
  cli.at_least("--steps", args.steps, 200)
  cli.at_least("--rounds", args.rounds, 1)
  cli.at_least("--skip", args.skip, 1)
  if args.steps // 50 <= args.skip:
    raise ValueError(
      f"--skip={args.skip} leaves no record of {args.steps // 50} (one per 50 steps)"
    )
  if args.data_path:
    cli.input_dir("--data_path", args.data_path)
  cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
  if len(cores) < 2:
    raise ValueError(f"this process may use {len(cores)} core(s); the comparison needs 2")
  print(f"CPU cores {cores}; load average {os.getloadavg()[0]:.2f}; preset {args.preset}")
  one, two = [], []
  with tempfile.TemporaryDirectory(prefix="bench_sweep_jobs_") as tmp:
    for r in range(args.rounds):
      (a,) = _run_jobs(args, tmp, f"one{r}", [None])
      b = _run_jobs(args, tmp, f"two{r}", [(cores[0],), (cores[1],)])
      if r == 0:  # the trainer picks its devices itself (--cpu_devices unset): say which
        for tag in ("one0_0", "two0_0"):
          print(f"  {tag}: {_mesh_line(os.path.join(tmp, f'{tag}.log'))}")
      one.append(a)
      two.append(sum(b))
      print(f"round {r}: one run on {len(cores)} cores {a:,.0f} tok/s; two pinned runs "
            f"{b[0]:,.0f} + {b[1]:,.0f} = {sum(b):,.0f} tok/s; ratio {sum(b) / a:.3f}")  # fmt: skip
  a, b = statistics.median(one), statistics.median(two)
  print(f"median: one run {a:,.0f} tok/s, two pinned runs {b:,.0f} tok/s in all: "
        f"{b / a:.3f}x (>1: pin one run per core)")  # fmt: skip


if __name__ == "__main__":
  cli.run(main)
