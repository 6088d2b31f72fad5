"""Launch a sweep of anytime/configs/sweeps.py: list it, print its commands, or run it here.

    python -m anytime.sweeps --sweep=150m --dry                 # runs, tokens, accelerator-hours
    python -m anytime.sweeps --sweep=150m --root=R --print      # one command per run
    python -m anytime.sweeps --sweep=150m --root=R --array_file=jobs.txt   # job-array files
    python -m anytime.sweeps --sweep=mini --root=R --jobs=2     # run here, 2 at once
    python -m anytime.sweeps --sweep=mini --root=R --status     # done/running/left + ETA
    python -m anytime.sweeps --sweep=150m --root=R --bracket    # best LRs at a grid edge?
    python -m anytime.sweeps --sweep=mini --root=R --bracket --jobs=2   # run until interior
    python -m anytime.sweeps --sweep=fig2 --root=R --headline --jobs=2  # headline seeds
    python -m anytime.sweeps --sweep=fig2 --root=R --collect=results/fig2/runs  # logs to commit

Every run is ``python -m anytime.lm --config=configs/lm.py:ARGS --workdir=<root>/<name>``
(see ``Run.command``). Finished runs (their eval log reaches the last step) are
skipped; interrupted ones are started again with the same command and the
trainer resumes from its workdir. WSD branches start once their constant run
has written the checkpoint they branch from. The whole sweep is validated
(ValueError naming the field) before anything is run or written. The grid points
``--bracket`` added (``<root>/bracket.json``, anytime.sweeps.bracket) are part of
the sweep in every mode, and so are the headline seed runs once ``--headline`` has recorded
their configurations (``<root>/headline.json``, anytime.sweeps.headline).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time

from anytime import cli
from anytime.sweeps import bracket, collect, headline, runlogs
from anytime.sweeps import common as sc
from anytime.sweeps import listing as ls

# --------------------------------------------------------------------------------------------
# Running here.


def core_slots(jobs: int, pin: str) -> list[tuple[int, ...]] | None:
  """The cores each of ``jobs`` concurrent runs is pinned to, or None (not pinned).

  ``pin``: on | off | auto. auto pins when 2 <= jobs <= the cores this process may use: on
  2-core CPUs two runs pinned one per core train 1.11x the tokens/s of one run using both
  cores (docs/performance.md, "Sweep throughput"), and pinning keeps two XLA thread pools
  from preempting each other.
  """
  if pin == "off" or not hasattr(os, "sched_getaffinity"):
    return None
  cores = sorted(os.sched_getaffinity(0))
  if pin == "auto" and not 2 <= jobs <= len(cores):
    return None
  if jobs > len(cores):
    raise ValueError(f"--pin=on with --jobs={jobs}: only {len(cores)} core(s) to pin to.")
  per = len(cores) // jobs
  return [tuple(cores[i * per : (i + 1) * per]) for i in range(jobs)]


def _start(
  run, root: str, python: str, module: str, env, cores=None
) -> tuple[subprocess.Popen, object] | None:
  """Start ``run``'s trainer under this launcher's lock; None if the run is done or held."""
  if not runlogs.claim(root, run):
    return None
  path = sc.workdir(root, run)
  try:
    with open(os.path.join(path, "run.json"), "w") as f:
      json.dump({**run.__dict__, "overrides": [list(o) for o in run.overrides]}, f, indent=1)
    log = open(os.path.join(path, "launcher.log"), "a")  # noqa: SIM115 (closed when reaped)
    log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(run.command(root, python))}\n")
    if cores:
      log.write(f"# pinned to cores {','.join(map(str, cores))}\n")
    log.flush()
    cmd = run.command(root, python, module)
    if cores:  # pinned by a tiny exec wrapper: no preexec_fn fork of this JAX-loaded process
      cmd = [python, "-m", "anytime.sweeps.pin", ",".join(map(str, cores)), *cmd]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
  except BaseException:
    runlogs.release(root, run)  # nothing started: the run stays free for the next launcher
    raise
  runlogs.record_trainer(root, run, proc.pid)
  return proc, log


def _tail(path: str, n: int = 3) -> str:
  try:
    with open(path) as f:
      return " | ".join(line.strip() for line in f.readlines()[-n:])
  except OSError:
    return ""


def run_local(
  runs,
  root: str,
  *,
  jobs: int = 1,
  python: str = sys.executable,
  module: str = "anytime.lm",
  env=None,
  poll: float = 1.0,
  log=print,
  pin: str = "off",
  refill=None,
) -> dict[str, list[str]]:
  """Runs every unfinished runnable run, ``jobs`` at once; returns names by outcome.

  A branch starts as soon as its parent's checkpoint exists, before any other run; the
  other runs start longest first. ``pin``: see
  :func:`core_slots` (each running job keeps its own cores). ``refill()``, if given, is asked
  for more runs whenever a run ends and a job slot would otherwise stay idle (nothing left to
  start; not after a failure); the runs it returns are run like the others (auto-bracketing's
  next points).
  """
  slots = core_slots(jobs, pin)
  outcome = {"done": [], "skipped": [], "failed": [], "unsupported": []}
  pending, elsewhere = [], set()
  # Branches first (each starts once its parent's checkpoint exists: checkpoints need not
  # outlive this machine, the committed logs do), then the longest runs.
  order = lambda r: (r.parent is None, -r.trained_tokens, r.method not in sc.ANYTIME_METHODS)
  for r in sorted(runs, key=order):
    state = sc.run_state(root, r)
    if state in ("done", "unsupported"):
      outcome["skipped" if state == "done" else "unsupported"].append(r.name)
    elif state == "running":
      log(f"skip {r.name}: running in another launcher")
      outcome["skipped"].append(r.name)
      elsewhere.add(r.name)
    else:
      pending.append(r)
  active: dict[str, tuple] = {}
  cores_of: dict[str, tuple[int, ...]] = {}
  while pending or active:
    for name, (proc, handle, run) in list(active.items()):
      if proc.poll() is None:
        continue
      handle.close()
      del active[name]
      if slots is not None:
        slots.append(cores_of.pop(name))
      runlogs.release(root, run)
      path = sc.workdir(root, run)
      if sc.run_state(root, run) == "done":
        outcome["done"].append(name)
        log(f"done   {name}")
      else:
        outcome["failed"].append(name)
        log(f"FAILED {name} (exit {proc.returncode}): {_tail(os.path.join(path, 'launcher.log'))}")
      if refill is not None and not pending and len(active) < jobs and not outcome["failed"]:
        extra = [r for r in refill() if sc.run_state(root, r) not in ("done", "unsupported")]
        pending += sorted(extra, key=order)
        runs = [*runs, *extra]
      log(ls.progress(root, runs, jobs=jobs, peak=ls.H100_BF16_PEAK, mfu=ls.DEFAULT_MFU))
    started = False
    for run in list(pending):
      if len(active) >= jobs:
        break
      if run.parent is not None and not sc.parent_ready(root, run):
        waiting_on = run.parent in active or any(p.name == run.parent for p in pending)
        if run.parent in elsewhere:
          pending.remove(run)
          outcome["skipped"].append(run.name)
          log(f"skip {run.name}: its parent {run.parent} runs elsewhere; launch again later")
        elif not waiting_on:
          pending.remove(run)
          outcome["failed"].append(run.name)
          log(f"FAILED {run.name}: {run.parent} has no checkpoint at step {run.parent_step}")
        continue
      pending.remove(run)
      cores = slots[0] if slots is not None else None
      started_here = _start(run, root, python, module, env, cores)
      if started_here is None:  # another launcher took or finished it since the list was made
        log(f"skip {run.name}: {sc.run_state(root, run)} in another launcher")
        outcome["skipped"].append(run.name)
        elsewhere.add(run.name)
        continue
      if cores is not None:
        cores_of[run.name] = slots.pop(0)
      proc, handle = started_here
      active[run.name] = (proc, handle, run)
      started = True
      log(f"start  {run.name} ({run.trained_steps} steps) -> {sc.workdir(root, run)}")
    if not started and (pending or active):
      time.sleep(poll)
  return outcome


# --------------------------------------------------------------------------------------------
# Command line.


# Flags --bracket replaces or ignores: refused rather than silently dropped.
_NOT_WITH_BRACKET = ("dry", "print", "array_file", "status", "collect", "only", "summary_only",
                     "tokens_per_s")  # fmt: skip


def _check_bracket(args) -> None:
  if not args.bracket:
    if args.max_bracket_rounds is not None:
      raise ValueError("--max_bracket_rounds is invalid without --bracket.")
    return
  does = "it prints its status and extra commands, or runs them with --jobs=N."
  headline.refuse(args, "bracket", _NOT_WITH_BRACKET, does)
  if args.max_bracket_rounds is not None and args.max_bracket_rounds < 1:
    raise ValueError(f"--max_bracket_rounds={args.max_bracket_rounds} is invalid: expected >= 1.")


def _check_args(args) -> None:
  _check_bracket(args)
  headline.check_args(args)
  if args.jobs < 1:
    raise ValueError(f"--jobs={args.jobs} is invalid: expected an integer >= 1.")
  if not 0 < args.mfu <= 1:
    raise ValueError(f"--mfu={args.mfu} is invalid: expected a fraction in (0, 1].")
  if args.tokens_per_s < 0:
    raise ValueError(f"--tokens_per_s={args.tokens_per_s} is invalid: expected >= 0.")
  if args.peak_tflops <= 0:
    raise ValueError(f"--peak_tflops={args.peak_tflops} is invalid: expected > 0.")
  if os.path.exists(args.root) and not os.path.isdir(args.root):
    raise ValueError(f"--root={args.root!r} is invalid: it exists and is not a directory.")
  if args.only:
    try:
      re.compile(args.only)
    except re.error as e:
      raise ValueError(f"--only={args.only!r} is invalid: not a regular expression ({e}).") from e


def _check_data(runs) -> None:
  cfg = sc.lm_config(runs[0].lm_arg, runs[0].overrides)
  if cfg.data.source == "tokens" and not cfg.data.path:
    raise ValueError(
      "data.path='' is invalid: the sweep trains on pre-tokenized rows (data.source='tokens'); "
      "pass --set data.path=DIR (the rows directory of anytime.lm.prepare or natural_corpus)."
    )


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--sweep", required=True, help="NAME or FILE.py:NAME (anytime/configs/sweeps.py)")
  p.add_argument("--root", default="", help="directory of the runs (default runs/<sweep name>)")
  mode = p.add_mutually_exclusive_group()
  mode.add_argument("--dry", action="store_true", help="list runs, tokens, accelerator-hours")
  mode.add_argument("--print", action="store_true", help="print one command per unfinished run")
  mode.add_argument("--array_file", default="", help="write job-array files (PATH, PATH.wsd)")
  mode.add_argument("--status", action="store_true", help="progress of the sweep under --root")
  mode.add_argument("--collect", default="", help="copy the finished runs' logs to DIR (commit it)")
  p.add_argument("--jobs", type=int, default=None, help="runs at once (local), ETA concurrency")
  p.add_argument(
    "--bracket",
    action="store_true",
    help="status of the best LRs vs the grid's ends and the runs that bracket them;\n"
    "with --jobs=N, run rounds of them until every selected LR is interior",
  )
  p.add_argument("--max_bracket_rounds", type=int, default=None, help="--bracket --jobs: 5/method")
  p.add_argument(
    "--headline",
    action="store_true",
    help="record (headline.json) and print the headline configurations and the commands of\n"
    "their headline-seed runs; with --jobs=N, run them (the grid must be finished)",
  )
  p.add_argument("--only", default="", help="regular expression: only runs whose name matches")
  p.add_argument(
    "--set",
    action="append",
    default=[],
    metavar="FIELD=VALUE",
    help="trainer config field for every run, after the sweep's lm_overrides\n"
    "(e.g. --set data.path=/data/c4_rows); repeatable",
  )
  p.add_argument(
    "--pin",
    default="auto",
    choices=("auto", "on", "off"),
    help="pin each of --jobs runs to its own cores (auto: when 2 <= jobs <= cores)",
  )
  p.add_argument("--python", default=sys.executable, help="interpreter of the runs")
  p.add_argument("--mfu", type=float, default=ls.DEFAULT_MFU, help="assumed MFU for hours / ETA")
  p.add_argument("--peak_tflops", type=float, default=ls.H100_BF16_PEAK / 1e12, help="per device")
  p.add_argument("--summary_only", action="store_true", help="--dry: no per-run lines")
  p.add_argument("--tokens_per_s", type=float, default=0.0, help="--dry: wall time at this rate")
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  run_bracket = args.bracket and args.jobs is not None  # --bracket alone only prints
  run_headline = args.headline and args.jobs is not None  # so does --headline
  args.jobs = 1 if args.jobs is None else args.jobs
  sweep = sc.load_sweep(args.sweep)
  sweep.lm_overrides = (*tuple(sweep.lm_overrides), *args.set)  # checked by expand, named
  args.root = os.path.abspath(args.root or os.path.join("runs", sweep.name))
  _check_args(args)
  base, sweep = sweep, bracket.load(sweep, args.root)  # + the points --bracket added
  runs = sc.expand(sweep)
  listing = args.dry or args.print or args.array_file or args.status or args.collect
  if run_bracket or run_headline or not (listing or args.bracket or args.headline):
    _check_data(runs)  # runs start here: their data must be named before anything starts
  run_fn = lambda rs, root, refill=None: run_local(
    rs, root, jobs=args.jobs, python=args.python, pin=args.pin, refill=refill
  )
  if args.headline:
    commands = lambda rs: ls.print_commands(rs, args.root, args.python)
    fn = run_fn if run_headline else None
    return headline.main(sweep, runs, args.root, run_fn=fn, commands=commands)
  if run_bracket:
    os.makedirs(args.root, exist_ok=True)
    rounds = args.max_bracket_rounds or 5
    return bracket.run_rounds(base, args.root, run_fn=run_fn, max_rounds=rounds)
  if args.bracket:
    rows = bracket.status(sweep, runs, args.root)
    points = bracket.proposals(rows, sweep)
    print(bracket.table(rows))
    extra = bracket.extra_runs(sweep, points)
    print(f"# {len(extra)} run(s) to add (--bracket --jobs=N runs them and records the points):")
    if extra:
      print(ls.print_commands(extra, args.root, args.python))
    return 0
  runs += headline.load(sweep, args.root, runs)  # the headline seed runs, once recorded
  if args.only:
    runs = [r for r in runs if re.search(args.only, r.name)]
    if not runs:
      raise ValueError(f"--only={args.only!r} matches none of the sweep's run names.")
  peak = args.peak_tflops * 1e12
  if args.dry:
    kw = dict(per_run=not args.summary_only, tokens_per_s=args.tokens_per_s)
    print(ls.dry_listing(sweep, runs, peak=peak, mfu=args.mfu, **kw))
  elif args.print:
    print(ls.print_commands(runs, args.root, args.python))
  elif args.array_file:
    print("\n".join(ls.write_array_files(runs, args.root, args.python, args.array_file)))
  elif args.status:
    print(ls.progress(args.root, runs, jobs=args.jobs, peak=peak, mfu=args.mfu))
  elif args.collect:
    n = collect.collect(runs, args.root, args.collect, sets=args.set)
    print(f"{n['runs']} finished runs and {n['records']} sweep records -> {args.collect}; "
          f"{n['unfinished']} unfinished left out")  # fmt: skip
  else:
    os.makedirs(args.root, exist_ok=True)
    outcome = run_local(runs, args.root, jobs=args.jobs, python=args.python, pin=args.pin)
    print(", ".join(f"{k}: {len(v)}" for k, v in outcome.items()))
    return 1 if outcome["failed"] else 0
  return 0


if __name__ == "__main__":
  cli.run(main)
