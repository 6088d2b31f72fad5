"""A sweep's runs on disk: the trainer's eval logs, and where each run stands.

Split from :mod:`anytime.sweeps.common` (which still re-exports every name here): common says
what a sweep *is* (validation, expansion into runs); this module reads what the runs *did*,
from ``<root>/<run name>/``, without importing JAX or the trainer.

- :func:`read_eval_log` is the one reader of the trainer's ``<workdir>/eval.jsonl``
  (a header record, then one record per evaluation; see anytime/lm/train.py).
- :func:`run_state` / :func:`progress_step` / :func:`parent_ready`: the launcher's view.
- :func:`claim` / :func:`record_trainer`: a launcher takes a run before starting it, so
  launchers sharing a root (a second one adding jobs, hosts on one file system) never run the
  same run twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
  from anytime.sweeps.common import Run


@dataclasses.dataclass
class EvalLog:
  """A run's ``eval.jsonl``: its (latest) header and its evaluations by step."""

  header: dict
  evals: dict[int, dict]  # step -> {"tokens", "is_horizon", "horizon", "loss": {key: float}}

  @property
  def total_steps(self) -> int:
    return int(self.header["total_steps"])

  @property
  def done(self) -> bool:
    return self.total_steps in self.evals

  def loss(self, step: int, key: str) -> float | None:
    record = self.evals.get(int(step))
    if record is None or key not in record["loss"]:
      return None
    return record["loss"][key]

  def curve(self, key: str) -> tuple[list[int], list[float]]:
    """(tokens, losses) of every evaluation holding ``key``, in step order."""
    steps = [s for s in sorted(self.evals) if key in self.evals[s]["loss"]]
    return [self.evals[s]["tokens"] for s in steps], [self.evals[s]["loss"][key] for s in steps]


def _float(v) -> float:
  return float(v)  # the trainer writes non-finite losses as "nan" / "inf" strings


def read_eval_log(workdir: str) -> EvalLog | None:
  """The eval log of ``workdir``, or None if it has neither a header nor evaluations.

  A resumed run appends a new header (the last one wins); evaluations of the
  same step are deduplicated, the latest kept. Without a header, the run's
  length and steps per Chinchilla come from the last evaluation's ``run`` and
  ``chinchilla`` fields. Format: anytime/lm/train.py.
  """
  path = os.path.join(workdir, "eval.jsonl")
  if not os.path.exists(path):
    return None
  from anytime.lm.metrics import read_jsonl

  header, evals = None, {}
  for record in read_jsonl(path):
    if record.get("kind") == "header":
      header = record
    elif record.get("kind") == "eval":
      loss = {k: _float(v) for k, v in record["loss"].items()}
      evals[int(record["step"])] = {**record, "loss": loss}
  if header is None and evals:  # eval records are self-contained: rebuild the fields used here
    last = evals[max(evals)]
    spc = round(last["step"] / last["chinchilla"]) if last.get("chinchilla") else None
    if "run" in last and spc:
      header = {"total_steps": last["run"]["total_steps"], "steps_per_chinchilla": spc}
  if header is None:
    return None
  return EvalLog(header=header, evals=evals)


def loss_at_horizon(log: EvalLog, horizon: float, key: str) -> float | None:
  """The loss of ``key`` at ``horizon`` (Chinchilla multiples) of a run, if evaluated."""
  spc = int(log.header["steps_per_chinchilla"])
  return log.loss(round(horizon * spc), key)


def finite(x: float | None) -> bool:
  return x is not None and math.isfinite(x)


# --------------------------------------------------------------------------------------------
# Where a run stands (the launcher's view of <root>/<name>).

LOCK = "launcher.lock"  # {"host", "launcher_pid", "started", then "pid" (the trainer's)}
MUTEX = ".launcher.mutex"  # <root>/.launcher.mutex: held while a launcher checks and takes a lock
STALE_SECONDS = 1800  # a run of another host counts as running if its files moved this recently
STATES = ("done", "running", "partial", "todo", "unsupported")


def workdir(root: str, run: Run) -> str:
  return os.path.join(root, run.name)


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _lock_alive(path: str) -> bool:
  try:
    with open(os.path.join(path, LOCK)) as f:
      lock = json.load(f)
  except (OSError, ValueError):
    return False
  if lock.get("host") == socket.gethostname():
    # Either process keeps the run: a trainer outliving a killed launcher still writes there.
    pids = [lock[k] for k in ("pid", "launcher_pid") if lock.get(k) is not None]
    return any(_pid_alive(int(p)) for p in pids)
  files = [os.path.join(path, n) for n in (LOCK, "train.jsonl", "eval.jsonl")]
  times = [os.path.getmtime(p) for p in files if os.path.exists(p)]
  return bool(times) and time.time() - max(times) < STALE_SECONDS


def write_atomic(path: str, text: str) -> None:
  """Write ``text`` to ``path`` so a reader sees the old file or the new one, never a part.

  The temporary name carries the pid: two launchers writing the same file (a shared
  headline.json or bracket.json) never write into, or rename away, each other's temporary.
  fsync before the rename, so a crash of the machine cannot leave an empty file behind.
  """
  tmp = f"{path}.{os.getpid()}.tmp"
  try:
    with open(tmp, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def _write_lock(path: str, lock: dict) -> None:
  write_atomic(os.path.join(path, LOCK), json.dumps(lock))


def claim(root: str, run: Run) -> bool:
  """Take ``run`` for this launcher (its lock, before the trainer starts): False if it is done
  or a live launcher or trainer holds it. A stale lock (both processes gone, or another host's
  run whose files have not moved for STALE_SECONDS) is taken over. The check and the write
  happen under an exclusive ``flock`` of ``<root>/.launcher.mutex``, so two launchers never
  both take a run."""
  path = workdir(root, run)
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(root, MUTEX), "a") as mutex:
    fcntl.flock(mutex, fcntl.LOCK_EX)  # released when the file closes
    if run_state(root, run) in ("done", "running"):
      return False
    lock = {"host": socket.gethostname(), "launcher_pid": os.getpid(), "started": time.time()}
    _write_lock(path, lock)
  return True


def record_trainer(root: str, run: Run, pid: int) -> None:
  """Add the trainer's pid to the lock this launcher holds (:func:`claim`)."""
  path = workdir(root, run)
  with open(os.path.join(path, LOCK)) as f:
    lock = json.load(f)
  _write_lock(path, {**lock, "pid": pid})


def release(root: str, run: Run) -> None:
  with contextlib.suppress(FileNotFoundError):
    os.remove(os.path.join(workdir(root, run), LOCK))


def run_state(root: str, run: Run) -> str:
  """One of STATES for ``run`` under ``root``."""
  if not run.supported:
    return "unsupported"
  path = workdir(root, run)
  log = read_eval_log(path)
  if log is not None and log.done and log.total_steps == run.total_steps:
    return "done"
  if _lock_alive(path):
    return "running"
  if log is not None or os.path.isdir(os.path.join(path, "checkpoints")):
    return "partial"
  return "todo"


def progress_step(root: str, run: Run) -> int:
  """The latest step a run has logged (its start step if none)."""
  from anytime.lm.metrics import read_jsonl

  path = workdir(root, run)
  steps = [run.start_step]
  for kind in ("train", "eval"):
    steps += [
      int(r["step"]) for r in read_jsonl(os.path.join(path, f"{kind}.jsonl")) if "step" in r
    ]
  return min(max(steps), run.total_steps)


def parent_ready(root: str, run: Run) -> bool:
  """A branch can start: its parent's checkpoint at the branch step is complete on disk."""
  if run.parent is None:
    return True
  return os.path.isdir(os.path.join(root, run.parent, "checkpoints", str(run.parent_step)))
