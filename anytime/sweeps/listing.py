"""What a sweep costs and where it stands: the launcher's listings, cluster commands and progress.

    python -m anytime.sweeps --sweep=150m --dry                 # dry_listing
    python -m anytime.sweeps --sweep=150m --root=R --print      # print_commands
    python -m anytime.sweeps --sweep=150m --root=R --array_file=jobs.txt   # write_array_files
    python -m anytime.sweeps --sweep=mini --root=R --status     # progress

Pure functions of the expanded sweep (``anytime.sweeps.common.expand``) and the run folders under
the root; :mod:`anytime.sweeps.launch` parses the flags and calls them.
"""

from __future__ import annotations

import os
import shlex
import statistics

from anytime.sweeps import common as sc

H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s of an H100 SXM
DEFAULT_MFU = 0.4

# --------------------------------------------------------------------------------------------
# Listing.


def _human(n: float) -> str:
  for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
    if abs(n) >= scale:
      return f"{n / scale:.3g}{unit}"
  return f"{n:.0f}"


def accelerator_hours(flops: float, peak: float, mfu: float) -> float:
  return flops / (peak * mfu) / 3600


def dry_listing(
  sweep, runs, *, peak: float, mfu: float, per_run: bool = True, tokens_per_s: float = 0.0
) -> str:
  """Per-run lines, then runs / tokens / FLOPs / accelerator-hours per method and in total."""
  lines = []
  if per_run:
    lines.append(f"{'run':<46} {'steps':>17} {'tokens':>9} {'FLOPs':>9}")
    for r in runs:
      steps = f"{r.start_step}->{r.total_steps}" if r.start_step else f"{r.total_steps}"
      flag = "" if r.supported else "  (trainer cannot run it yet)"
      lines.append(
        f"{r.name:<46} {steps:>17} {_human(r.trained_tokens):>9} {r.train_flops:>9.3g}{flag}"
      )
    lines.append("")
  first = runs[0]
  lines.append(
    f"sweep {sweep.name}: model {sweep.model}, {_human(first.params)} non-embedding params, "
    f"{first.flops_per_token / 1e9:.3g} GFLOP/token (train, 6N + attention), "
    f"{first.tokens_per_step:,} tokens/step, 1x Chinchilla = {first.steps_per_chinchilla:,} "
    f"steps, horizons {', '.join(f'{h:g}' for h in sweep.horizons)}x"
  )
  head = f"{'method':<14} {'runs':>5} {'tokens':>10} {'train FLOPs':>12} {'accel-hours':>12}"
  lines.append(head)
  total = [0, 0, 0.0]
  for method in sc.RUN_METHODS:
    group = [r for r in runs if r.method == method]
    if not group:
      continue
    tokens = sum(r.trained_tokens for r in group)
    flops = sum(r.train_flops for r in group)
    note = "" if all(r.supported for r in group) else "  (not runnable yet)"
    lines.append(
      f"{method:<14} {len(group):>5} {_human(tokens):>10} {flops:>12.3e} "
      f"{accelerator_hours(flops, peak, mfu):>12,.0f}{note}"
    )
    total = [total[0] + len(group), total[1] + tokens, total[2] + flops]
  lines.append(
    f"{'total':<14} {total[0]:>5} {_human(total[1]):>10} {total[2]:>12.3e} "
    f"{accelerator_hours(total[2], peak, mfu):>12,.0f}"
  )
  lines.append(
    f"accelerator-hours = training FLOPs / ({mfu:.0%} MFU x {peak / 1e12:g} TFLOP/s peak) / "
    "3600 s; evaluation excluded. WSD counts only its branch steps."
  )
  if tokens_per_s:
    runnable = sum(r.trained_tokens for r in runs if r.supported)
    lines.append(
      f"at {tokens_per_s:,.0f} tokens/s (one job): {runnable / tokens_per_s / 3600:.2f} h of "
      f"training for the {sum(r.supported for r in runs)} runnable runs "
      f"({_human(runnable)} tokens), start-up and evaluation excluded"
    )
  return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Commands for a cluster.


def _shell(run, root: str, python: str) -> str:
  return shlex.join(run.command(root, python))


def print_commands(runs, root: str, python: str) -> str:
  """Phase 1 (independent runs), then phase 2 (WSD branches); done runs left out."""
  lines = []
  todo = [r for r in runs if sc.run_state(root, r) != "done"]
  for r in todo:
    if not r.supported:
      lines.append(f"# not runnable by the trainer yet ({r.method}): {r.name}")
  lines += [_shell(r, root, python) for r in todo if r.supported and r.parent is None]
  branches = [_shell(r, root, python) for r in todo if r.supported and r.parent is not None]
  if branches:
    lines.append("# phase 2, after the constant runs have passed their branch steps:")
    lines += branches
  return "\n".join(lines)


def write_array_files(runs, root: str, python: str, path: str) -> list[str]:
  """``path`` (phase 1) and ``path``.wsd (phase 2): line i is task i's command."""
  todo = [r for r in runs if r.supported and sc.run_state(root, r) != "done"]
  phases = [(path, [r for r in todo if r.parent is None])]
  phases.append((path + ".wsd", [r for r in todo if r.parent is not None]))
  written = []
  for file, group in phases:
    if group:
      with open(file, "w") as f:
        f.writelines(_shell(r, root, python) + "\n" for r in group)
      written.append(f"{file}: {len(group)} tasks")
  return written


# --------------------------------------------------------------------------------------------
# Progress.


def measured_flops_per_s(root: str, runs) -> float | None:
  """Median model FLOP/s per job over the train logs of this sweep's runs."""
  from anytime.lm.metrics import read_jsonl

  rates = []
  for r in runs:
    records = read_jsonl(os.path.join(sc.workdir(root, r), "train.jsonl"))
    rates += [float(x["flops_per_s"]) for x in records[1:] if x.get("flops_per_s", 0) > 0]
  return statistics.median(rates) if rates else None


def _duration(seconds: float) -> str:
  return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def progress(root: str, runs, *, jobs: int, peak: float, mfu: float) -> str:
  """done / running / partial / left counts, tokens done and the time left."""
  states = {r.name: sc.run_state(root, r) for r in runs}
  counts = {s: sum(v == s for v in states.values()) for s in sc.STATES}
  remaining = done_flops = 0.0
  for r in runs:
    if states[r.name] == "unsupported":
      continue
    step = r.total_steps if states[r.name] == "done" else sc.progress_step(root, r)
    remaining += (r.total_steps - step) * r.tokens_per_step * r.flops_per_token
    done_flops += (step - r.start_step) * r.tokens_per_step * r.flops_per_token
  total = remaining + done_flops
  rate = measured_flops_per_s(root, runs)
  if rate:
    eta = f"ETA {_duration(remaining / (rate * jobs))} at the measured {rate / 1e9:.3g} GFLOP/s "
    eta += f"per job x {jobs} job(s)"
  else:
    eta = f"ETA {_duration(accelerator_hours(remaining, peak, mfu) * 3600 / jobs)} at {mfu:.0%} "
    eta += f"MFU of {peak / 1e12:g} TFLOP/s x {jobs} job(s) (no throughput measured yet)"
  left = counts["partial"] + counts["todo"]
  return (
    f"progress: {counts['done']} done, {counts['running']} running, {left} left "
    f"({counts['partial']} partial), {counts['unsupported']} not runnable; "
    f"{done_flops / max(total, 1):.1%} of the FLOPs done; {eta}"
  )
