"""Orbax checkpoints of a run: train state, data-iterator state and run metadata.

One step directory per checkpoint holds three items: ``state`` (params and the
whole optimizer state, averages included, restored with the shardings of the
current mesh), ``data`` (the iterator's JSON state) and ``meta`` (step, tokens,
...). Saves are asynchronous (the device-to-host copy happens in ``save``, the
writes in the background) and atomic: a save killed half-way leaves a
temporary directory that is ignored and cleaned up on the next start, so the
latest finished checkpoint is what a restart resumes from. Horizon checkpoints
are kept permanently; the rolling ones beyond the ``keep`` latest are pruned.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as cm


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
    self._manager = ocp.CheckpointManager(
      self.directory, options=options, item_names=("state", "data", "meta")
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: dict, meta: dict) -> None:
    """Starts saving (returns once the arrays are copied off the devices)."""
    args = ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=ocp.args.JsonSave(data_state),
      meta=ocp.args.JsonSave(meta),
    )
    self._manager.save(int(step), args=args, force=True)

  def restore(self, step: int | None, like: Any, shardings: Any) -> tuple[Any, dict, dict]:
    """(state, data_state, meta) of ``step`` (latest if None), placed like ``shardings``.

    ``like`` is a tree (arrays or ShapeDtypeStructs) with the state's structure.
    """
    step = self.latest_step() if step is None or step < 0 else int(step)
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    args = ocp.args.Composite(
      state=ocp.args.StandardRestore(_abstract(like, shardings)),
      data=ocp.args.JsonRestore(),
      meta=ocp.args.JsonRestore(),
    )
    out = self._manager.restore(step, args=args)
    return out.state, out.data, out.meta

  def wait(self) -> None:
    """Blocks until the pending save is on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
