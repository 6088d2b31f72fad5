"""Checkpoints: retention, and SIGKILL at any step (also mid async save) then resume == no kill."""

import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anytime.lm import checkpoint as checkpoint_lib
from anytime.lm import sharding as sharding_lib
from anytime.lm import train
from tests.lm import util

_CACHE = ""  # set per module by the fixture below
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 24


def test_rolling_checkpoints_pruned_horizons_kept(tmp_path):
  mesh = sharding_lib.make_mesh((1, 1, 1))
  rep = sharding_lib.replicated(mesh)
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path), keep=2, permanent_steps=[2, 3], async_save=True)
  for step in range(1, 8):
    ckpt.save(step, {"w": jnp.full((3,), float(step))}, {"pos": step}, {"step": step})
  ckpt.wait()
  assert ckpt.all_steps() == [2, 3, 6, 7]
  state, data_state, meta = ckpt.restore(3, {"w": jnp.zeros(3)}, {"w": rep})
  np.testing.assert_array_equal(state["w"], [3.0, 3.0, 3.0])
  assert data_state == {"pos": 3} and meta == {"step": 3}
  ckpt.close()


def _command(workdir):
  args = f"model=tiny,data=synthetic,unit=steps,horizon={STEPS}"
  return [
    sys.executable,
    "-m",
    "anytime.lm",
    f"--config=configs/lm.py:{args}",
    f"--workdir={workdir}",
    "--config.checkpoint_every=2",
    "--config.keep_checkpoints=2",
    "--config.log_every=1",
    "--config.eval_points=4",
    "--config.eval_batches=2",
    "--config.opt.warmup_steps=3",
    "--config.peak_flops=1e9",
  ]


@pytest.fixture(autouse=True, scope="module")
def _compilation_cache(tmp_path_factory):
  global _CACHE
  _CACHE = str(tmp_path_factory.mktemp("jax-cache"))


def _env():
  env = dict(os.environ)
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
  env["JAX_PLATFORMS"] = "cpu"
  # Identical programs in the subprocesses compile once (JAX's persistent cache).
  env["JAX_COMPILATION_CACHE_DIR"] = _CACHE
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  return env


def _run(workdir):
  out = subprocess.run(_command(workdir), cwd=ROOT, env=_env(), capture_output=True, text=True)
  assert out.returncode == 0, out.stderr[-3000:]


def _kill_when(workdir, ready, timeout=120.0):
  """Starts a run and SIGKILLs it as soon as ``ready(checkpoint dir names)`` holds."""
  proc = subprocess.Popen(
    _command(workdir), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
  )
  ckpt_dir = os.path.join(workdir, "checkpoints")
  deadline = time.time() + timeout
  names = []
  while time.time() < deadline and proc.poll() is None:
    names = os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []
    if ready(names):
      proc.send_signal(signal.SIGKILL)
      break
    time.sleep(0.005)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, f"run ended before the kill: {names}"
  return names


def _final(workdir):
  cfg = util.tiny_config(horizon=STEPS, mesh=(1, 1, 1))
  cfg.opt.averages = util.lm_config.get_config("").opt.averages
  cfg.opt.warmup_steps = 3
  mcfg, plan, mesh_shape = train.validate(cfg)
  trainer = train.Trainer(cfg, mcfg, plan, mesh_shape)
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  assert ckpt.latest_step() == STEPS
  state, data_state, meta = ckpt.restore(STEPS, trainer.abstract, trainer.shardings)
  return jax.device_get(state), data_state, meta


def _assert_bitwise_equal(a, b):
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b, strict=True):
    assert x.dtype == y.dtype and np.array_equal(x, y), "resumed run differs"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("reference"))
  _run(workdir)
  return _final(workdir)


def _is_saving(names):
  return any("tmp" in n for n in names)


def test_kill_during_async_save_then_resume_is_bitwise_identical(reference, tmp_path):
  workdir = str(tmp_path)
  # Kill while the save of a step >= 6 is in flight (its temporary directory exists).
  names = _kill_when(
    workdir, lambda ns: _is_saving(ns) and any(n.startswith(("6", "8")) for n in ns)
  )
  assert _is_saving(names)
  _run(workdir)  # resumes from the last finished checkpoint
  state, data_state, meta = _final(workdir)
  ref_state, ref_data, ref_meta = reference
  _assert_bitwise_equal(state, ref_state)  # params, Adam moments, averages, counts
  assert data_state == ref_data and meta == ref_meta
  assert not [n for n in os.listdir(os.path.join(workdir, "checkpoints")) if "tmp" in n]


@pytest.mark.slow
@pytest.mark.parametrize("after", [3, 11, 17])
def test_kill_at_other_steps_then_resume_is_bitwise_identical(reference, tmp_path, after):
  workdir = str(tmp_path)
  log = os.path.join(workdir, "train.jsonl")

  def ready(_):
    return os.path.exists(log) and sum(1 for _ in open(log)) >= after

  _kill_when(workdir, ready)
  _run(workdir)
  state, data_state, _ = _final(workdir)
  _assert_bitwise_equal(state, reference[0])
  assert data_state == reference[1]
