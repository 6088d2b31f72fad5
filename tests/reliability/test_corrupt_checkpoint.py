"""Corrupted state: a damaged latest checkpoint is skipped (with a warning naming it).

The run resumes from the previous good one, bitwise as if nothing happened; a
checkpoint of another model shape is refused.
"""

import os
import shutil

import jax
import numpy as np
import pytest

from anytime.lm import checkpoint as checkpoint_lib
from anytime.lm import train
from anytime.lm import workdir as workdir_lib
from tests.lm import util

STEPS = 6  # checkpoints at 2, 4, 6 (checkpoint_every=2) plus horizon 1


def _cfg(**overrides):
  return util.tiny_config(
    horizon=STEPS, mesh=(1, 1, 1), checkpoint_every=2, keep_checkpoints=3, **overrides
  )


def _assert_bitwise_equal(a, b):
  leaves_a, tree_a = jax.tree.flatten(jax.device_get(a))
  leaves_b, tree_b = jax.tree.flatten(jax.device_get(b))
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b, strict=True):
    assert x.dtype == y.dtype and np.array_equal(x, y)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
  """A finished run (its workdir) and its final state."""
  workdir = str(tmp_path_factory.mktemp("base"))
  out = train.run(_cfg(), workdir, log=lambda _: None)
  steps = sorted(int(n) for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit())
  assert steps[-2:] == [4, STEPS]
  return workdir, jax.device_get(out["state"])


def _files(step_dir, under=""):
  root = os.path.join(step_dir, under)
  return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]


def _truncate(step_dir):
  for f in _files(step_dir, "state"):
    with open(f, "r+b") as fh:
      fh.truncate(os.path.getsize(f) // 2)


def _empty(step_dir):
  for f in _files(step_dir):
    open(f, "wb").close()


def _garble_data(step_dir):
  # Same size, random bytes in the middle of the largest array file.
  f = max(_files(step_dir, "state"), key=os.path.getsize)
  size = os.path.getsize(f)
  with open(f, "r+b") as fh:
    fh.seek(size // 3)
    fh.write(np.random.default_rng(0).bytes(size // 3))


def _garble_meta(step_dir):
  with open(os.path.join(step_dir, "meta", "metadata"), "wb") as fh:
    fh.write(b"\x00{garbage")


def _edit_data_step(step_dir):
  # A well-formed edit of the data-iterator state (its step): it still parses, so only the
  # checkpoint's hash of the data state can tell. Before, the run resumed on other data.
  import json

  path = os.path.join(step_dir, "data", "metadata")
  with open(path) as f:
    data_state = json.load(f)
  assert "step" in data_state, data_state
  data_state["step"] += 1
  with open(path, "w") as f:
    json.dump(data_state, f)


@pytest.mark.parametrize(
  "corrupt",
  [
    pytest.param(_truncate, marks=pytest.mark.slow),
    _empty,
    _garble_data,
    _edit_data_step,
    pytest.param(_garble_meta, marks=pytest.mark.slow),
  ],
  ids=lambda f: f.__name__[1:],
)
def test_damaged_latest_checkpoint_is_skipped_and_resume_is_exact(base, tmp_path, corrupt):
  base_dir, final_state = base
  workdir = str(tmp_path / "run")
  shutil.copytree(base_dir, workdir)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  corrupt(os.path.join(ckpt_dir, str(STEPS)))
  logs = []
  out = train.run(_cfg(), workdir, log=logs.append)
  text = "\n".join(logs)
  warnings = [m for m in logs if m.startswith("WARNING: skipped damaged checkpoint")]
  assert len(warnings) == 1 and f"step {STEPS} in" in warnings[0], text
  assert f"at step {STEPS - 2}" in text  # resumed from the previous good one
  assert os.listdir(ckpt_dir + ".corrupt")[0].startswith(f"{STEPS}.")
  # The two redone steps reproduce the uninterrupted run exactly (no garbage got in).
  _assert_bitwise_equal(out["state"], final_state)
  ckpt = checkpoint_lib.Checkpointer(ckpt_dir, read_only=True, async_save=False)
  assert ckpt.latest_step() == STEPS


def _edit_meta(base, tmp_path, edit):
  """A copy of the base run whose step-STEPS meta item ``edit`` changed; its (checkpointer,
  trainer) to restore with."""
  import json

  workdir = str(tmp_path / "run")
  shutil.copytree(base[0], workdir)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  meta_file = os.path.join(ckpt_dir, str(STEPS), "meta", "metadata")
  with open(meta_file) as f:
    meta = json.load(f)
  edit(meta)
  with open(meta_file, "w") as f:
    json.dump(meta, f)
  cfg = _cfg()
  mcfg, plan, mesh_shape = train.validate(cfg)
  trainer = train.Trainer(cfg, mcfg, plan, mesh_shape)
  return checkpoint_lib.Checkpointer(ckpt_dir, read_only=True, async_save=False), trainer


def test_silent_array_change_is_caught_by_checksum(base, tmp_path):
  # Array bytes that still decode (e.g. an uncompressed chunk overwritten in place) are simulated
  # by changing one stored checksum: restore must refuse the step, naming the array.
  def flip_one_checksum(meta):
    meta[checkpoint_lib.CHECKSUM_KEY][3][0] ^= 1
    # Re-sign the metadata, so that only the array checksum disagrees (an edit of meta alone is
    # caught by its own hash: test_edited_meta_is_caught).
    meta.pop(checkpoint_lib.META_SHA_KEY)
    meta[checkpoint_lib.META_SHA_KEY] = checkpoint_lib._json_sha256(meta)

  ckpt, trainer = _edit_meta(base, tmp_path, flip_one_checksum)
  with pytest.raises(
    checkpoint_lib.CorruptCheckpointError, match=f"step {STEPS} .*checksum.*1 arr"
  ):
    ckpt.restore(STEPS, trainer.abstract, trainer.shardings)
  _, _, meta = ckpt.restore(STEPS - 2, trainer.abstract, trainer.shardings)
  assert meta["step"] == STEPS - 2 and checkpoint_lib.CHECKSUM_KEY not in meta


def test_edited_meta_is_caught(base, tmp_path):
  ckpt, trainer = _edit_meta(base, tmp_path, lambda meta: meta.update(tokens=meta["tokens"] + 1))
  with pytest.raises(
    checkpoint_lib.CorruptCheckpointError, match=f"step {STEPS} in .*: its metadata"
  ):
    ckpt.restore(STEPS, trainer.abstract, trainer.shardings)


def test_checkpoint_of_other_dtypes_is_refused_not_quarantined(base, tmp_path):
  # Another averages dtype: same shapes, other dtypes. Before, every checkpoint failed its
  # restore, all were moved to checkpoints.corrupt and the run restarted from step 0.
  workdir = str(tmp_path / "run")
  shutil.copytree(base[0], workdir)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  before = sorted(os.listdir(ckpt_dir))
  cfg = _cfg(**{"opt.averages_dtype": "bfloat16"})
  mcfg, plan, mesh_shape = train.validate(cfg)
  trainer = train.Trainer(cfg, mcfg, plan, mesh_shape)
  ckpt = checkpoint_lib.Checkpointer(ckpt_dir, async_save=False)
  with pytest.raises(
    checkpoint_lib.CheckpointMismatchError, match=r"other dtypes.*float32.*bfloat16"
  ):
    ckpt.restore_latest(trainer.abstract, trainer.shardings)
  assert sorted(os.listdir(ckpt_dir)) == before
  assert not os.path.exists(ckpt_dir + ".corrupt")


def test_every_checkpoint_damaged_stops_instead_of_reinitialising(base, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(base[0], workdir)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  for name in os.listdir(ckpt_dir):
    if name.isdigit():
      _empty(os.path.join(ckpt_dir, name))
  logs = []
  with pytest.raises(checkpoint_lib.CorruptCheckpointError, match="every checkpoint"):
    train.run(_cfg(), workdir, log=logs.append)
  assert sum(m.startswith("WARNING: skipped") for m in logs) == 4  # steps 1, 2, 4, 6


def test_checkpoint_of_another_model_shape_is_refused(base, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(base[0], workdir)
  before = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  cfg = _cfg(**{"model.d_model": 48})
  # The trainer refuses from the workdir's config.json, naming the field ...
  with pytest.raises(workdir_lib.ResumeConfigError, match=r"model.d_model: saved 32, given 48"):
    train.run(cfg, workdir, log=lambda _: None)
  # ... and the checkpoint itself from its arrays' shapes, when no config.json tells.
  os.remove(os.path.join(workdir, "config.json"))
  with pytest.raises(checkpoint_lib.CheckpointMismatchError, match=r"another shape"):
    train.run(cfg, workdir, log=lambda _: None)
  # Nothing moved aside or overwritten.
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == before
  assert not os.path.exists(os.path.join(workdir, "checkpoints.corrupt"))
