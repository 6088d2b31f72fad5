"""A write failure during a (synchronous) save: a clear error, and the previous checkpoint stays
restorable."""

import errno

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from anytime.lm import checkpoint as checkpoint_lib
from anytime.lm import sharding as sharding_lib


def test_disk_full_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path), keep=2, async_save=False)
  ckpt.save(1, {"w": jnp.full((3,), 1.0)}, {"pos": 1}, {"step": 1})

  def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

  async def disk_full_async(*args, **kwargs):  # fails when awaited, as a real write does
    disk_full()

  monkeypatch.setattr(ocp.StandardCheckpointHandler, "save", disk_full)
  monkeypatch.setattr(ocp.StandardCheckpointHandler, "async_save", disk_full_async)
  with pytest.raises(
    checkpoint_lib.CheckpointWriteError,
    match=r"step 2 .*No space left on device.*previous checkpoint \(step 1\) is intact",
  ):
    ckpt.save(2, {"w": jnp.full((3,), 2.0)}, {"pos": 2}, {"step": 2})
  monkeypatch.undo()
  rep = sharding_lib.replicated(sharding_lib.make_mesh((1, 1, 1)))
  fresh = checkpoint_lib.Checkpointer(str(tmp_path), keep=2, async_save=False)
  assert fresh.all_steps() == [1]  # the failed step's temporary directory is not a checkpoint
  state, data_state, meta = fresh.restore_latest({"w": jnp.zeros(3)}, {"w": rep})
  np.testing.assert_array_equal(state["w"], [1.0, 1.0, 1.0])
  assert data_state == {"pos": 1} and meta == {"step": 1}
  fresh.close()


class _FailedWrite:
  """A commit future whose background write fails as a full disk does."""

  def result(self, timeout=None):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("surfaces_at", ["wait", "next_save"])
def test_disk_full_during_async_save_is_a_clear_error(tmp_path, monkeypatch, surfaces_at):
  """The write fails in Orbax's background thread; the error names the step it belongs to."""
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path), keep=2, async_save=True)
  ckpt.save(1, {"w": jnp.full((3,), 1.0)}, {"pos": 1}, {"step": 1})
  ckpt.wait()
  real_async_save = ocp.StandardCheckpointHandler.async_save

  async def failing_async_save(self, *args, **kwargs):
    await real_async_save(self, *args, **kwargs)
    return [_FailedWrite()]

  monkeypatch.setattr(ocp.StandardCheckpointHandler, "async_save", failing_async_save)
  ckpt.save(2, {"w": jnp.full((3,), 2.0)}, {"pos": 2}, {"step": 2})  # returns: the write is queued
  monkeypatch.undo()
  expected = r"step 2 .*No space left on device.*previous checkpoint \(step 1\) is intact"
  with pytest.raises(checkpoint_lib.CheckpointWriteError, match=expected):
    if surfaces_at == "wait":
      ckpt.wait()
    else:
      ckpt.save(3, {"w": jnp.full((3,), 3.0)}, {"pos": 3}, {"step": 3})
  ckpt.close()
  rep = sharding_lib.replicated(sharding_lib.make_mesh((1, 1, 1)))
  fresh = checkpoint_lib.Checkpointer(str(tmp_path), keep=2, async_save=False)
  assert fresh.all_steps() == [1]
  state, data_state, _ = fresh.restore_latest({"w": jnp.zeros(3)}, {"w": rep})
  np.testing.assert_array_equal(state["w"], [1.0, 1.0, 1.0])
  assert data_state == {"pos": 1}
  fresh.close()
