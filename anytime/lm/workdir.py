"""One run per workdir: an exclusive lock, and the config a resume may and may not change.

**The lock.** :class:`WorkdirLock` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on
``<workdir>/.lock`` and writes its holder (host, pid, start time) into the file. A second
trainer on the same workdir is refused with :class:`WorkdirLockedError` naming the holder.
The kernel drops a flock when its process ends, however it ends (exit, exception,
SIGKILL, a crash), so a lock file whose holder is gone is stale by construction: the next
start takes it and says whose it was. On a local filesystem this is exact. On NFS, Linux
emulates flock with NFSv4 byte-range locks held by the server, so it holds across hosts
as long as the client's lease is alive (a host that vanishes holds the lock until the
server's lease expires, typically 90 s); on NFSv3 without lockd, or filesystems without
lock support (some FUSE mounts), flock succeeds locally only and two hosts can both run:
use one workdir per host there. In a multi-process run only process 0 locks.

**Resume.** A workdir remembers the config it was started with (``config.json``). A
resume whose config differs in a field that shapes the run (model, optimizer, schedule,
data, seed, batch) would restore a different optimizer structure or silently continue
another experiment; :func:`config_differences` lists those fields and the trainer refuses
before touching a checkpoint. Fields in :data:`RESUME_MAY_CHANGE` (evaluation cadence,
logging, checkpoint cadence, W&B, the mesh, performance switches that compute the same
function) may change. ``horizon``/``horizons`` may change for horizon-free schedules
(extending a constant or t^-gamma run is the point of anytime schedules), not for
cosine/WSD/linear-decay, whose every LR depends on the horizon.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
from typing import Any

LOCK_NAME = ".lock"

# Dotted config fields (or prefixes ending in ".") a resume may change: they do not change
# the trajectory of the parameters, only what is measured, logged or how it is computed.
RESUME_MAY_CHANGE = (
  "eval_points",
  "eval_every",
  "eval_batches",
  "eval_batch_size",
  "log_every",
  "checkpoint_every",
  "keep_checkpoints",
  "async_checkpoints",
  "peak_flops",
  "debug_nan_step",
  "init_from",
  "init_from_step",
  "mesh",
  "model.remat",
  "model.remat_policy",
  "model.causal_blocks",
  "model.loss_chunk",
  "data.num_threads",
  "data.prefetch",
  "data.path",  # the same dataset may move; its content is checked by the data pipeline
  "wandb.",
)
HORIZON_FIELDS = ("horizon", "horizons")
HORIZON_FREE = ("constant", "inverse_sqrt", "polynomial")


class WorkdirLockedError(RuntimeError):
  """Another live process holds the workdir's lock."""


class ResumeConfigError(ValueError):
  """A resume's config differs from the workdir's in fields that shape the run."""


def _holder_text() -> str:
  now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": now})


class WorkdirLock:
  """``with WorkdirLock(workdir) as lock:`` holds ``<workdir>/.lock`` for the block.

  ``lock.stale_holder`` is the previous holder's record when the file was left by a
  process that is gone (None if the lock was free and clean).
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_NAME)
    self.stale_holder: dict | None = None
    self._fd: int | None = None

  def acquire(self) -> WorkdirLock:
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_holder(fd)
      os.close(fd)
      who = (
        f"host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')}"
        if holder
        else "a process that has not written its name yet"
      )
      raise WorkdirLockedError(
        f"workdir {os.path.dirname(self.path)!r} is in use by another trainer ({who}); "
        "wait for it to finish or stop it, or use another --workdir."
      ) from None
    self.stale_holder = _read_holder(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, _holder_text().encode(), 0)
    os.fsync(fd)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is None:
      return
    os.ftruncate(self._fd, 0)  # a clean exit leaves no holder behind
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    self._fd = None

  def __enter__(self) -> WorkdirLock:
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


def _read_holder(fd: int) -> dict | None:
  raw = os.pread(fd, 4096, 0)
  if not raw.strip():
    return None
  try:
    out = json.loads(raw)
  except ValueError:
    return {"host": "?", "pid": "?", "started": f"unreadable lock file {raw[:40]!r}"}
  return out if isinstance(out, dict) else None


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  if isinstance(tree, tuple):
    tree = list(tree)
  return {prefix[:-1]: tree}


def _may_change(field: str) -> bool:
  return any(field == f or (f.endswith(".") and field.startswith(f)) for f in RESUME_MAY_CHANGE)


def config_differences(saved: dict, given: dict) -> list[tuple[str, Any, Any]]:
  """(field, saved value, given value) for every field a resume must not change.

  ``saved`` and ``given`` are config dicts (``ConfigDict.to_dict()``, or config.json read
  back: tuples and lists compare equal). A field present on one side only (the workdir was
  started by another version of the code, which had not yet, or no longer has, that field)
  is not a difference: :func:`check_resume_config` reports it instead.
  """
  a = json.loads(json.dumps(_flatten(saved), default=str))
  b = json.loads(json.dumps(_flatten(given), default=str))
  schedule = b.get("opt.schedule")
  out = []
  for field in sorted(set(a) | set(b)):
    if _may_change(field):
      continue
    if field in HORIZON_FIELDS and schedule in HORIZON_FREE and a.get("opt.schedule") == schedule:
      continue
    if field in a and field in b and a[field] != b[field]:
      out.append((field, a[field], b[field]))
  return out


def one_sided_fields(saved: dict, given: dict) -> tuple[list[str], list[str]]:
  """(fields only the given config has, fields only the saved config has)."""
  a, b = set(_flatten(saved)), set(_flatten(given))
  return sorted(b - a), sorted(a - b)


def check_resume_config(workdir: str, given: dict) -> list[str]:
  """Raises ResumeConfigError naming each field that differs from ``<workdir>/config.json``;
  returns notes on the fields only one side has (a workdir of another code version).

  A workdir without config.json (a fresh run) passes; so does an unreadable one, which the
  trainer rewrites (a torn config.json cannot have been a finished save of a run's config).
  """
  path = os.path.join(workdir, "config.json")
  try:
    with open(path) as f:
      saved = json.load(f)
  except (FileNotFoundError, ValueError):
    return []
  diffs = config_differences(saved, given)
  if diffs:
    shown = "; ".join(f"{k}: saved {v!r}, given {w!r}" for k, v, w in diffs[:6])
    more = f" (and {len(diffs) - 6} more)" if len(diffs) > 6 else ""
    raise ResumeConfigError(
      f"workdir {workdir!r} holds a run started with another config, which its checkpoints "
      f"need: {shown}{more}. Rerun with the saved config ({path}), or use a fresh --workdir; "
      f"fields a resume may change: {', '.join(RESUME_MAY_CHANGE)}."
    )
  new, gone = one_sided_fields(saved, given)
  notes = []
  if new:
    notes.append(f"config.json predates the fields {', '.join(new)}: the given values apply")
  if gone:
    notes.append(f"config.json has fields this code no longer has: {', '.join(gone)}")
  return notes
