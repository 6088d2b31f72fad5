"""A stand-in for ``python -m anytime.lm`` in the launcher tests (no JAX, milliseconds per run).

Takes the trainer's flags, reads the ``run.json`` the launcher leaves in the
workdir, and writes the trainer's eval-log format (a header, then one record per
horizon step) plus an empty ``checkpoints/<step>`` directory per horizon step.
It resumes after the last evaluation already in the log (appending
``<workdir>/resumes.txt``), and with ``FAKE_CRASH=<run name>:<step>`` exits 3
after that step, as a killed run would.
"""

from __future__ import annotations

import ast
import json
import os
import sys


def _flags(argv) -> dict[str, str]:
  out = {}
  for arg in argv:
    key, _, value = arg.partition("=")
    out[key.lstrip("-")] = value
  return out


def eval_steps(run: dict) -> list[int]:
  overrides = dict(run["overrides"])
  horizons = ast.literal_eval(overrides.get("horizons", "()"))
  steps = {round(h * run["steps_per_chinchilla"]) for h in horizons} | {run["total_steps"]}
  return sorted(s for s in steps if s > run["start_step"])


def main(argv) -> int:
  workdir = _flags(argv)["workdir"]
  if hasattr(os, "sched_getaffinity"):  # the cores the launcher pinned this run to
    with open(os.path.join(workdir, "cores.txt"), "w") as f:
      f.write(",".join(map(str, sorted(os.sched_getaffinity(0)))))
  with open(os.path.join(workdir, "run.json")) as f:
    run = json.load(f)
  path = os.path.join(workdir, "eval.jsonl")
  done = 0
  if os.path.exists(path):
    with open(path) as f:
      done = max([json.loads(line).get("step", 0) for line in f] + [0])
    with open(os.path.join(workdir, "resumes.txt"), "a") as f:
      f.write(f"{done}\n")
  crash = os.environ.get("FAKE_CRASH", "")
  crash_step = int(crash.split(":")[1]) if crash.startswith(run["name"] + ":") else None
  header = {
    "kind": "header",
    "schema": 1,
    "total_steps": run["total_steps"],
    "steps_per_chinchilla": run["steps_per_chinchilla"],
    "tokens_per_step": run["tokens_per_step"],
  }
  with open(path, "a") as f:
    f.write(json.dumps(header) + "\n")
  for step in eval_steps(run):
    if step <= done:
      continue
    if crash_step is not None and step > crash_step:
      return 3
    record = {
      "kind": "eval",
      "step": step,
      "tokens": step * run["tokens_per_step"],
      "is_horizon": True,
      "horizon": step / run["steps_per_chinchilla"],
      "loss": {"raw": 1.0},
    }
    with open(path, "a") as f:
      f.write(json.dumps(record) + "\n")
    os.makedirs(os.path.join(workdir, "checkpoints", str(step)), exist_ok=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
