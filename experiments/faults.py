"""The fault campaign: each fault tried as a user meets it, through the trainer's command line
on a real workdir, and judged by what is on disk afterwards (docs/reliability.md).

    .venv/bin/python -m experiments.faults [--only REGEX] [--workdir DIR]   # ~4 min on 2 cores

A base run (tiny preset, synthetic data, 6 steps, checkpoints at 1, 2, 4, 6) is trained once;
every case copies its workdir, applies the fault, runs ``python -m anytime.lm`` as a user would
and checks the outcome: a refusal in one line that moves nothing, a damaged checkpoint set
aside with the resume exact, or a resume that is allowed. It prints one line per case and the
count of cases that held; the exit code is the number that did not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from anytime import cli

BASE = "model=tiny,data=synthetic,unit=steps,horizon=6"
FLAGS = (
  "--config.checkpoint_every=2",
  "--config.keep_checkpoints=3",
  "--config.peak_flops=1e9",
  "--config.opt.warmup_steps=2",
  "--config.eval_points=3",
  "--config.eval_batches=2",
)


def train(workdir: str, arg: str = BASE, *extra: str, background: bool = False):
  cmd = [sys.executable, "-m", "anytime.lm", f"--config=configs/lm.py:{arg}", *FLAGS, *extra]
  cmd.append(f"--workdir={workdir}")
  if background:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def listing(workdir: str) -> list[str]:
  skip = (".lock", ".torn")
  return sorted(
    os.path.relpath(os.path.join(d, f), workdir)
    for d, _, files in os.walk(workdir)
    for f in files
    if not f.endswith(skip)
  )


def steps(workdir: str) -> list[int]:
  path = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(path) if n.isdigit()) if os.path.isdir(path) else []


def one_line_refusal(proc, pattern: str) -> str:
  lines = proc.stderr.strip().splitlines()
  if proc.returncode != 2 or len(lines) != 1 or not re.search(pattern, lines[0]):
    return f"expected one line matching {pattern!r}, exit 2; got {proc.returncode}: {lines[-3:]}"
  return ""


# --------------------------------------------------------------------------------------------
# The cases: each takes a copy of the base workdir and returns "" when the fault held.


def _refused_config(arg: str, *extra: str, field: str):
  def case(w: str) -> str:
    before = listing(w)
    why = one_line_refusal(train(w, arg, *extra), rf"another config.*{re.escape(field)}")
    if not why and listing(w) != before:
      why = "the workdir changed"
    if not why and os.path.exists(os.path.join(w, "checkpoints.corrupt")):
      why = "a checkpoint was quarantined"
    return why

  return case


def _allowed_resume(arg: str, *extra: str, final_step: int):
  def case(w: str) -> str:
    proc = train(w, arg, *extra)
    if proc.returncode != 0:
      return f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
    if "resumed from" not in proc.stdout:
      return "did not resume"
    return "" if steps(w)[-1] == final_step else f"checkpoints {steps(w)}"

  return case


def _second_trainer(w: str) -> str:
  first = train(w, BASE.replace("horizon=6", "horizon=400"), background=True)
  try:
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.getsize(os.path.join(w, ".lock")):
      time.sleep(0.2)
    before = listing(w)
    return one_line_refusal(train(w), rf"in use by another trainer .*pid {first.pid}") or (
      "" if listing(w) == before else "the workdir changed"
    )
  finally:
    first.kill()
    first.wait()


def _stale_lock(w: str) -> str:
  first = train(w, BASE.replace("horizon=6", "horizon=400"), background=True)
  deadline = time.time() + 120
  while time.time() < deadline and not os.path.getsize(os.path.join(w, ".lock")):
    time.sleep(0.2)
  os.kill(first.pid, signal.SIGKILL)
  first.wait()
  proc = train(w, BASE.replace("horizon=6", "horizon=8"))
  if proc.returncode != 0:
    return f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
  return "" if f"'pid': {first.pid}" in proc.stdout else "the stale holder was not reported"


def _edit_json(item: str, edit: Callable[[dict], None]):
  def case(w: str) -> str:
    path = os.path.join(w, "checkpoints", "6", item, "metadata")
    with open(path) as f:
      value = json.load(f)
    edit(value)
    with open(path, "w") as f:
      json.dump(value, f)
    proc = train(w, BASE.replace("horizon=6", "horizon=8"))
    if proc.returncode != 0:
      return f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
    if "skipped damaged checkpoint: checkpoint step 6" not in proc.stdout:
      return "the edited checkpoint was used"
    return "" if "resumed from" in proc.stdout and "at step 4" in proc.stdout else "no resume at 4"

  return case


def _remove_data_item(w: str) -> str:
  shutil.rmtree(os.path.join(w, "checkpoints", "6", "data"))
  proc = train(w, BASE.replace("horizon=6", "horizon=8"))
  ok = proc.returncode == 0 and "skipped damaged checkpoint: checkpoint step 6" in proc.stdout
  return "" if ok else f"exit {proc.returncode}: {proc.stdout.strip().splitlines()[-2:]}"


def _torn_log(name: str, where: str):
  def case(w: str) -> str:
    path = os.path.join(w, name)
    with open(path) as f:
      lines = f.readlines()
    before = [json.loads(line) for line in lines]
    torn = '{"step": 3, "loss": 2.' if where != "binary" else "\x00\x01garbage"
    at = len(lines) if where == "last" else len(lines) // 2
    lines.insert(at, torn + ("\n" if where != "last" else ""))
    with open(path, "w") as f:
      f.writelines(lines)
    proc = train(w, BASE.replace("horizon=6", "horizon=7"))
    if proc.returncode != 0:
      return f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
    with open(path) as f:
      after = [json.loads(line) for line in f]
    if after[: len(before)] != before:
      return "a well-formed record was lost or changed"
    with open(path + ".torn") as f:
      return "" if torn.strip() in f.read() else "the torn line was not set aside"

  return case


def _bad_averages_spec(w: str) -> str:
  shutil.rmtree(w)
  proc = train(w, BASE, "--config.opt.averages=('pema0',)")
  return one_line_refusal(proc, r"opt\.averages has 'pema0'.*gamma") or (
    "" if not os.path.exists(w) else "the workdir was made"
  )


CASES: dict[str, Callable[[str], str]] = {
  "resume: averages dtype changed": _refused_config(
    BASE, "--config.opt.averages_dtype=bfloat16", field="opt.averages_dtype"
  ),
  "resume: averages list changed": _refused_config(
    BASE, "--config.opt.averages=('polyak',)", field="opt.averages"
  ),
  "resume: seed changed": _refused_config(BASE + ",seed=1", field="seed"),
  "resume: schedule changed": _refused_config(BASE + ",schedule=cosine", field="opt.schedule"),
  "resume: peak LR changed": _refused_config(BASE + ",lr=0.01", field="opt.lr"),
  "resume: model width changed": _refused_config(
    BASE, "--config.model.d_model=48", field="d_model"
  ),
  "resume: data source changed": _refused_config(
    BASE, "--config.data.synthetic_seed=1", field="data.synthetic_seed"
  ),
  "resume: batch changed": _refused_config(BASE + ",batch=16", field="batch_size"),
  "resume: constant run extended (allowed)": _allowed_resume(
    BASE.replace("horizon=6", "horizon=8"), final_step=8
  ),
  "resume: eval and logging changed (allowed)": _allowed_resume(
    BASE.replace("horizon=6", "horizon=7"),
    "--config.log_every=1",
    "--config.eval_every=3",
    final_step=7,
  ),
  "lock: second trainer on a running workdir": _second_trainer,
  "lock: holder SIGKILLed, stale lock taken": _stale_lock,
  "integrity: data-iterator step edited": _edit_json(
    "data", lambda d: d.update(step=d["step"] + 1)
  ),
  "integrity: meta tokens edited": _edit_json("meta", lambda m: m.update(tokens=m["tokens"] + 1)),
  "integrity: an array checksum edited": _edit_json(
    "meta", lambda m: m["_checksums"][0].__setitem__(0, m["_checksums"][0][0] ^ 1)
  ),
  "integrity: data item deleted": _remove_data_item,
  "logs: torn last line of eval.jsonl": _torn_log("eval.jsonl", "last"),
  "logs: torn line mid train.jsonl": _torn_log("train.jsonl", "middle"),
  "logs: binary garbage mid eval.jsonl": _torn_log("eval.jsonl", "binary"),
  "input: bad averages spec on a fresh workdir": _bad_averages_spec,
}


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(
    description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
  )
  ap.add_argument("--only", default="", help="run only the cases whose name matches this regex")
  ap.add_argument("--workdir", default="", help="where to keep the base run (default: a temp dir)")
  args = ap.parse_args(argv)
  try:
    selected = {k: v for k, v in CASES.items() if re.search(args.only, k)}
  except re.error as e:
    raise ValueError(f"--only={args.only!r} is not a regular expression ({e}).") from None
  if not selected:
    raise ValueError(f"--only={args.only!r} matches no case; cases: {', '.join(CASES)}.")
  root = cli.output_dir("--workdir", args.workdir) if args.workdir else tempfile.mkdtemp()
  base = os.path.join(root, "base")
  if not steps(base):
    proc = train(base)
    if proc.returncode != 0:
      raise RuntimeError(f"the base run failed: {proc.stderr[-500:]}")
  held = 0
  for i, (name, case) in enumerate(selected.items()):
    workdir = os.path.join(root, f"case{i}")
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(base, workdir)
    start = time.time()
    why = case(workdir)
    held += not why
    print(
      f"{'held' if not why else 'FAILED':6} {name} ({time.time() - start:.0f} s){why and ': '}{why}"
    )
  print(f"{held} of {len(selected)} cases held")
  return len(selected) - held


if __name__ == "__main__":
  cli.run(main)
