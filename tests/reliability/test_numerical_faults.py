"""Numerical faults: a NaN injected at a chosen step (cfg.debug_nan_step) stops the run naming the
step; with opt.skip_nonfinite_updates the bad update is skipped, counted and logged, and neither
the params nor the averages move (bitwise)."""

import json
import os

import jax
import numpy as np
import pytest

from anytime import averaging
from anytime.lm import checkpoint as checkpoint_lib
from anytime.lm import sharding as sharding_lib
from anytime.lm import train
from tests.lm import util


def _cfg(**overrides):
  return util.tiny_config(**{"mesh": (1, 1, 1), "horizon": 6, "checkpoint_every": 2, **overrides})


def test_nan_at_chosen_step_stops_naming_it(tmp_path):
  workdir = str(tmp_path)
  logs = []
  with pytest.raises(
    train.NonFiniteLossError, match=r"is nan at step 5 .*last good checkpoint is step 4"
  ):
    train.run(_cfg(debug_nan_step=5), workdir, log=logs.append)
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  assert ckpt.latest_step() == 4  # the last good checkpoint is intact and restorable
  cfg = _cfg()
  mcfg, plan, mesh_shape = train.validate(cfg)
  trainer = train.Trainer(cfg, mcfg, plan, mesh_shape)
  state, _, meta = ckpt.restore(4, trainer.abstract, trainer.shardings)
  assert meta["step"] == 4
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state)))


@pytest.mark.slow
def test_skip_guard_skips_counts_and_logs(tmp_path):
  workdir = str(tmp_path)
  logs = []
  cfg = _cfg(debug_nan_step=3, **{"opt.skip_nonfinite_updates": 2})
  out = train.run(cfg, workdir, log=logs.append)
  assert out["step"] == 6
  skipped = [m for m in logs if m.startswith("WARNING: skipped the non-finite update")]
  assert len(skipped) == 1 and "step 3 " in skipped[0] and "1 skipped so far" in skipped[0]
  with open(os.path.join(workdir, "train.jsonl")) as f:
    records = [json.loads(line) for line in f]
  assert [r["step"] for r in records if r.get("kind") == "skip"] == [3]
  state = jax.device_get(out["state"])
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state))
  # 6 steps, one skipped: the averages saw 5 updates.
  assert int(state["opt_state"].count) == 5


def test_skipped_update_leaves_params_and_averages_bitwise_unchanged():
  cfg = util.tiny_config(**{"mesh": (1, 1, 1), "opt.skip_nonfinite_updates": 3})
  cfg.debug_nan_step = 3
  _, state, trainer = util.train_steps(cfg, 2)
  before = jax.device_get(state)
  batch = {
    "inputs": np.zeros((8, 16), np.int32),
    "targets": np.ones((8, 16), np.int32),
  }
  batch = sharding_lib.global_batch(batch, trainer.mesh)
  state, metrics = trainer.poisoned_step(state, batch)
  after = jax.device_get(state)
  assert (
    not np.isfinite(metrics["loss"]) and bool(metrics["skipped"]) and int(metrics["skips"]) == 1
  )
  for name in ("params",):
    for x, y in zip(jax.tree.leaves(before[name]), jax.tree.leaves(after[name]), strict=True):
      assert np.array_equal(x, y)
  avg_before = averaging.averaged_params(before["opt_state"])
  avg_after = averaging.averaged_params(after["opt_state"])
  assert set(avg_before) == {"pema25", "polyak"}
  for x, y in zip(jax.tree.leaves(avg_before), jax.tree.leaves(avg_after), strict=True):
    assert x.dtype == y.dtype and np.array_equal(x, y)
  assert int(after["opt_state"].count) == int(before["opt_state"].count) == 2
  # The next finite step moves them again (the guard does not freeze training).
  state, metrics = trainer.train_step(state, batch)
  assert np.isfinite(metrics["loss"]) and not bool(metrics["skipped"])
  moved = jax.device_get(averaging.averaged_params(state["opt_state"]))
  assert not np.array_equal(jax.tree.leaves(moved)[0], jax.tree.leaves(avg_after)[0])
