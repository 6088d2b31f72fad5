"""Orbax checkpoints of a run: train state, data-iterator state and run metadata.

One step directory per checkpoint holds three items: ``state`` (params and the
whole optimizer state, averages included, restored with the shardings of the
current mesh), ``data`` (the iterator's JSON state) and ``meta`` (step, tokens,
...). Saves are asynchronous (the device-to-host copy happens in ``save``, the
writes in the background) and atomic: a save killed half-way leaves a
temporary directory that is ignored and cleaned up on the next start, so the
latest finished checkpoint is what a restart resumes from. Horizon checkpoints
are kept permanently; the rolling ones beyond the ``keep`` latest are pruned.

Integrity (docs/reliability.md): every save records a checksum of each state
leaf (a wrapping sum of its bit patterns, plain and position-weighted, computed
on the devices) in ``meta``, and the sha256 of the data-iterator state and of
the rest of ``meta`` itself; a restore recomputes all three, so no part of a
checkpoint (params, optimizer state, averages, data state, metadata) can be
changed without the restore noticing. :meth:`restore_latest`
walks back from the newest step: a checkpoint that cannot be read (truncated,
emptied, garbled files) or whose checksums disagree is moved aside to
``<directory>.corrupt/<step>`` with a warning naming it, and the next older one
is tried, so a run never resumes from garbage. A checkpoint whose arrays have
other shapes or another structure or dtypes than the current model's is refused with
:class:`CheckpointMismatchError` (never silently re-initialised, and never
quarantined: the checkpoint is fine, the config is not).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as cm

CHECKSUM_KEY = "_checksums"  # meta key of the per-leaf checksums (removed on restore)
DATA_SHA_KEY = "_data_sha256"  # meta key of the data state's hash (removed on restore)
META_SHA_KEY = "_meta_sha256"  # meta key of the hash of the rest of meta (removed on restore)


def _json_sha256(obj: Any) -> str:
  return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


class CorruptCheckpointError(RuntimeError):
  """A checkpoint's files cannot be read or its contents fail the checksum."""


class CheckpointWriteError(OSError):
  """A save failed (disk full, write error); the previous checkpoints are untouched."""


class CheckpointMismatchError(ValueError):
  """A checkpoint holds a state of another structure or shape than the current model's."""


def _leaf_checksum(x: jax.Array) -> jax.Array:
  """(plain, position-weighted) wrapping uint32 sums of the bit patterns of ``x``."""
  x = jnp.asarray(x)
  size = x.dtype.itemsize
  if x.dtype == jnp.bool_:
    bits = x.astype(jnp.uint32)
  elif size in (1, 2, 4):
    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}[size]
    bits = jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)
  else:  # 8 bytes: two uint32 words per element
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
  bits = bits.reshape(-1)
  pos = jnp.arange(bits.shape[0], dtype=jnp.uint32) * jnp.uint32(2654435761) + jnp.uint32(1)
  return jnp.stack([jnp.sum(bits, dtype=jnp.uint32), jnp.sum(bits * pos, dtype=jnp.uint32)])


@jax.jit
def _checksums(tree: Any) -> list:
  return [_leaf_checksum(x) for x in jax.tree.leaves(tree)]


def checksums(tree: Any) -> list[list[int]]:
  """Per-leaf [plain, weighted] checksums of ``tree`` (JSON-ready ints)."""
  return [[int(v) for v in np.asarray(c)] for c in jax.device_get(_checksums(tree))]


def _path_str(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _flat(tree: Any) -> dict[str, Any]:
  return {_path_str(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _abstract(tree: Any, shardings: Any) -> Any:
  return jax.tree.map(
    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
  )


class Checkpointer:
  """Saves and restores a run's checkpoints in ``directory``."""

  def __init__(
    self,
    directory: str,
    *,
    keep: int = 2,
    permanent_steps: Sequence[int] = (),
    async_save: bool = True,
    read_only: bool = False,
  ):
    policy = cm.AnyPreservationPolicy(
      [cm.LatestN(max(1, int(keep))), cm.CustomSteps([int(s) for s in permanent_steps])]
    )
    options = ocp.CheckpointManagerOptions(
      preservation_policy=policy,
      enable_async_checkpointing=async_save,
      create=not read_only,
      read_only=read_only,
      cleanup_tmp_directories=not read_only,
    )
    self.directory = os.path.abspath(directory)
    # Handlers registered up front, so item_metadata can read a step before any restore.
    handlers = {
      "state": ocp.StandardCheckpointHandler(),
      "data": ocp.JsonCheckpointHandler(),
      "meta": ocp.JsonCheckpointHandler(),
    }
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)
    self._pending_step: int | None = None  # an asynchronous save still in flight

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: dict, meta: dict) -> None:
    """Starts saving (returns once the arrays are copied off the devices).

    ``meta`` is stored with the state's checksums (see the module docstring).
    """
    meta = {**meta, CHECKSUM_KEY: checksums(state), DATA_SHA_KEY: _json_sha256(data_state)}
    meta[META_SHA_KEY] = _json_sha256(meta)
    args = ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=ocp.args.JsonSave(data_state),
      meta=ocp.args.JsonSave(meta),
    )
    # A failure of the previous asynchronous save surfaces here, named after its own step.
    self.wait()
    try:
      self._manager.save(int(step), args=args, force=True)
    except Exception as err:  # e.g. OSError ENOSPC: disk full
      raise self._write_error(step, err) from err
    self._pending_step = int(step)

  def _write_error(self, step: int | None, err: Exception) -> CheckpointWriteError:
    return CheckpointWriteError(
      f"saving checkpoint step {step} to {self.directory} failed ({type(err).__name__}: "
      f"{str(err)[:200]}); the previous checkpoint (step {self.latest_step()}) is intact and a "
      "restart resumes from it. Free space or fix the directory, then rerun."
    )

  def check_compatible(self, step: int, like: Any) -> None:
    """Raises CheckpointMismatchError if ``step`` holds another structure or shapes than ``like``.

    Raises CorruptCheckpointError if its metadata cannot be read.
    """
    try:
      tree = self._manager.item_metadata(int(step)).state.tree
      saved_meta = _flat(tree)
      saved = {k: tuple(v.shape) for k, v in saved_meta.items()}
      saved_dtypes = {k: str(getattr(v, "dtype", "")) for k, v in saved_meta.items()}
    except Exception as err:  # any read failure means a damaged checkpoint
      raise CorruptCheckpointError(
        f"checkpoint step {step} in {self.directory}: metadata unreadable ({type(err).__name__}: "
        f"{str(err)[:200]})"
      ) from err
    wanted = {k: tuple(v.shape) for k, v in _flat(like).items()}
    where = f"checkpoint step {step} in {self.directory}"
    missing, extra = sorted(set(wanted) - set(saved)), sorted(set(saved) - set(wanted))
    if missing or extra:
      raise CheckpointMismatchError(
        f"{where} holds another state structure than the configured model/optimizer: "
        f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}, unexpected "
        f"{extra[:4]}{' ...' if len(extra) > 4 else ''}. Use the config the run was started "
        "with, or a fresh workdir."
      )
    diff = [(k, saved[k], wanted[k]) for k in wanted if saved[k] != wanted[k]]
    if diff:
      shown = ", ".join(f"{k}: saved {a}, model {b}" for k, a, b in diff[:4])
      raise CheckpointMismatchError(
        f"{where} was written by a model of another shape ({len(diff)} arrays differ: {shown}"
        f"{' ...' if len(diff) > 4 else ''}). Use the config the run was started with "
        "(model.* fields), or a fresh workdir."
      )
    wanted_dtypes = {k: str(v.dtype) for k, v in _flat(like).items()}
    diff = [
      (k, saved_dtypes[k], wanted_dtypes[k])
      for k in wanted
      if saved_dtypes[k] and saved_dtypes[k] != wanted_dtypes[k]
    ]
    if diff:
      shown = ", ".join(f"{k}: saved {a}, config {b}" for k, a, b in diff[:4])
      raise CheckpointMismatchError(
        f"{where} holds arrays of other dtypes than the configured model/optimizer ({len(diff)} "
        f"arrays differ: {shown}{' ...' if len(diff) > 4 else ''}). Use the config the run was "
        "started with (e.g. opt.averages_dtype, model.dtype), or a fresh workdir."
      )

  def restore(self, step: int | None, like: Any, shardings: Any) -> tuple[Any, dict, dict]:
    """(state, data_state, meta) of ``step`` (latest if None), placed like ``shardings``.

    ``like`` is a tree (arrays or ShapeDtypeStructs) with the state's structure.
    """
    step = self.latest_step() if step is None or step < 0 else int(step)
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    self.check_compatible(step, like)
    args = ocp.args.Composite(
      state=ocp.args.StandardRestore(_abstract(like, shardings)),
      data=ocp.args.JsonRestore(),
      meta=ocp.args.JsonRestore(),
    )
    where = f"checkpoint step {step} in {self.directory}"
    try:
      out = self._manager.restore(step, args=args)
      meta = dict(out.meta)
      data_state = out.data
    except Exception as err:  # any read failure means a damaged checkpoint
      raise CorruptCheckpointError(
        f"{where}: unreadable ({type(err).__name__}: {str(err)[:200]})"
      ) from err
    if not isinstance(data_state, dict):
      raise CorruptCheckpointError(f"{where}: data or meta item damaged")
    meta_sha = meta.pop(META_SHA_KEY, None)  # absent in checkpoints of older versions
    if meta_sha is not None and _json_sha256(meta) != meta_sha:
      raise CorruptCheckpointError(f"{where}: its metadata (meta item) was changed after saving")
    data_sha = meta.pop(DATA_SHA_KEY, None)
    if data_sha is not None and _json_sha256(data_state) != data_sha:
      raise CorruptCheckpointError(f"{where}: its data-iterator state was changed after saving")
    expected = meta.pop(CHECKSUM_KEY, None)
    if expected is not None:
      got = checksums(out.state)
      if got != expected:
        names = list(_flat(out.state))
        bad = [n for n, a, b in zip(names, got, expected, strict=False) if a != b]
        raise CorruptCheckpointError(
          f"{where}: checksum mismatch in {len(bad) or 'the number of'} arrays "
          f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''})"
        )
    return out.state, data_state, meta

  def restore_latest(
    self, like: Any, shardings: Any, warn: Callable[[str], None] = print
  ) -> tuple[Any, dict, dict] | None:
    """(state, data_state, meta) of the newest good checkpoint, or None if there is none.

    Damaged checkpoints (CorruptCheckpointError) are moved aside to
    ``<directory>.corrupt/<step>`` with a ``warn`` naming each; a checkpoint of
    another model shape raises CheckpointMismatchError.
    """
    for step in sorted(self.all_steps(), reverse=True):
      try:
        return self.restore(step, like, shardings)
      except CorruptCheckpointError as err:
        moved = self._quarantine(step)
        warn(f"WARNING: skipped damaged checkpoint: {err}; moved it to {moved}")
    return None

  def _quarantine(self, step: int) -> str:
    """Moves step's directory out of the managed directory (kept for inspection)."""
    target = os.path.join(self.directory + ".corrupt", f"{step}.{int(time.time() * 1000)}")
    if jax.process_index() == 0:
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.move(os.path.join(self.directory, str(step)), target)
    self._manager.reload()
    return target

  def wait(self) -> None:
    """Blocks until the pending save is on disk; CheckpointWriteError if it failed."""
    step, self._pending_step = self._pending_step, None
    try:
      self._manager.wait_until_finished()
    except Exception as err:  # the background write's error (e.g. ENOSPC), re-raised by Orbax
      raise self._write_error(step, err) from err

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self._manager.close()
