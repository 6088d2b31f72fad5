"""The train loop end to end on the tiny preset: learning, evals, failures, branching."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from anytime import averaging
from anytime.lm import checkpoint as checkpoint_lib
from anytime.lm import data as data_lib
from anytime.lm import metrics as metrics_lib
from anytime.lm import model as model_lib
from anytime.lm import sharding as sharding_lib
from anytime.lm import train
from tests.lm import util


def _records(workdir, kind):
  return metrics_lib.read_jsonl(os.path.join(workdir, f"{kind}.jsonl"))


@pytest.fixture(scope="module")
def constant_run(tmp_path_factory):
  """A 12-step constant-LR run with horizons at 6 and 12 steps."""
  workdir = str(tmp_path_factory.mktemp("constant"))
  cfg = util.tiny_config(horizon=12, horizons=(6, 9), mesh=(2, 1, 1))
  cfg.opt.lr = 3e-3
  out = train.run(cfg, workdir, log=lambda _: None)
  return cfg, workdir, out


def test_loss_decreases_and_eval_log_is_self_describing(constant_run):
  _, workdir, out = constant_run
  assert out["step"] == 12
  train_records = _records(workdir, "train")
  assert train_records[-1]["loss"] < train_records[0]["loss"] - 0.3
  assert {"step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "mfu"} <= set(
    train_records[0]
  )
  header, *evals = _records(workdir, "eval")
  assert header["kind"] == "header" and header["tokens_per_step"] == 8 * 16
  assert header["horizon_steps"] == {"6": 6.0, "9": 9.0, "12": 12.0}
  steps = [r["step"] for r in evals]
  assert steps == sorted(steps) and {1, 6, 9, 12} <= set(steps)
  for r in evals:
    assert set(r["loss"]) == {"raw", "pema25", "polyak"}
    assert r["is_horizon"] == (r["step"] in (6, 9, 12))
    assert r["tokens"] == r["step"] * 128
    assert r["run"]["schedule"] == "constant" and r["run"]["total_steps"] == 12
  # The averages lag the raw iterate early in training (they are not copies of it).
  assert evals[-1]["loss"]["polyak"] > evals[-1]["loss"]["raw"]
  events = os.listdir(os.path.join(workdir, "tensorboard"))
  assert any(name.startswith("events.out.tfevents") for name in events)
  # Horizon checkpoints kept; the end is checkpointed too.
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  assert {6, 9, 12} <= set(ckpt.all_steps())


def test_eval_loss_matches_direct_computation(constant_run):
  cfg, workdir, out = constant_run
  state = out["state"]
  mcfg = train.model_config(cfg)
  graphdef, _ = model_lib.abstract(mcfg)
  batches = data_lib.make_eval_batches(
    cfg.data, seq_len=mcfg.seq_len, batch_size=8, num_batches=cfg.eval_batches
  )
  params = jax.device_get(state["params"])
  avg = jax.device_get(averaging.averaged_params(state["opt_state"])["polyak"])
  last = _records(workdir, "eval")[-1]["loss"]
  for name, p in (("raw", params), ("polyak", avg)):
    direct = np.mean([float(model_lib.loss_fn(graphdef, p, b)) for b in batches])
    assert abs(direct - last[name]) < 1e-5


def test_wsd_branch_from_constant_run(constant_run, tmp_path):
  _, workdir, out = constant_run
  wsd = util.tiny_config(horizon=12, horizons=(6, 9), mesh=(2, 1, 1), init_from=workdir)
  wsd.opt.lr = 3e-3
  wsd.opt.schedule = "wsd"
  wsd.opt.wsd_decay_fraction = 0.25  # decay over steps 9..12: branch at the 9-step checkpoint
  wsd.init_from_step = 9
  branch = train.run(wsd, str(tmp_path), log=lambda _: None)
  assert branch["step"] == 12
  lrs = {r["step"]: r["lr"] for r in _records(str(tmp_path), "train")}
  assert min(lrs) > 9  # started at the branch point, not from scratch
  assert lrs[12] < 0.5 * 3e-3  # the cooldown ran
  const = jax.device_get(out["state"]["params"])
  branched = jax.device_get(branch["state"]["params"])
  assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, const, branched)))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_both_compute_dtypes_train(dtype):
  cfg = util.tiny_config(**{"model.dtype": dtype, "horizon": 12, "mesh": (1, 1, 1)})
  cfg.opt.lr = 3e-3
  losses, state, _ = util.train_steps(cfg, 12)
  assert np.all(np.isfinite(losses))
  assert losses[-3:].mean() < losses[:3].mean() - 0.15
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(state["params"]))


def test_grad_accumulation_counts_optimizer_steps():
  cfg = util.tiny_config(grad_accum=2, mesh=(1, 1, 1))
  losses, state, _ = util.train_steps(cfg, 3)  # 6 micro-batches
  is_avg = lambda x: isinstance(x, averaging.AveragingState)
  avg_state = next(s for s in jax.tree.leaves(state["opt_state"], is_leaf=is_avg) if is_avg(s))
  assert int(avg_state.count) == 3
  assert np.all(np.isfinite(losses))


def test_nan_loss_stops_with_clear_message_and_keeps_last_checkpoint(tmp_path):
  cfg = util.tiny_config(checkpoint_every=1, mesh=(1, 1, 1))
  cfg.opt.lr = 1e38  # blows up on the second update
  cfg.opt.init_lr_fraction = 0.0  # the first update has lr 0: step 1 is good
  cfg.opt.warmup_steps = 3
  cfg.log_every = 1
  with pytest.raises(train.NonFiniteLossError, match=r"at step \d.*last good checkpoint is step"):
    train.run(cfg, str(tmp_path), log=lambda _: None)
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path / "checkpoints"), read_only=True)
  assert ckpt.all_steps()
  mcfg, plan, mesh_shape = train.validate(cfg)
  trainer = train.Trainer(cfg, mcfg, plan, mesh_shape)
  state, _, _ = ckpt.restore(None, trainer.abstract, trainer.shardings)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(jax.device_get(state)))


@pytest.mark.parametrize(
  "overrides, field",
  [
    ({"mesh": (16, 1, 1)}, "mesh"),
    ({"mesh": (8, 1, 1), "batch_size": 4}, "batch_size"),
    ({"opt.schedule": "cosin"}, "opt.schedule"),
    ({"opt.warmup_steps": 50}, "opt.warmup_steps"),
    ({"unit": "tokens"}, "unit"),
    ({"horizons": (100,)}, "horizons"),
    ({"data.source": "tokens", "data.path": ""}, "path"),
    ({"init_from": "/nonexistent"}, "init_from"),
    ({"opt.averages": ("pema",)}, "opt.averages"),
    ({"model.attention": "cudnn"}, "model.attention"),
    ({"eval_every": -5}, "eval_every"),
  ],
)
def test_bad_config_fails_before_any_write(tmp_path, overrides, field):
  cfg = util.tiny_config(**overrides)
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=field.replace(".", r"\.")):
    train.run(cfg, str(workdir), log=lambda _: None)
  assert not workdir.exists()


def test_eval_every_adds_regular_steps_to_the_log_spaced_ones():
  cfg = util.tiny_config(horizon=100, eval_points=3, eval_every=30, horizons=(50,))
  _, plan, _ = train.validate(cfg)
  # geomspace(1, 100, 3) = 1, 10, 100; every 30 steps: 30, 60, 90; the horizons 50 and 100.
  assert plan.eval_steps == (1, 10, 30, 50, 60, 90, 100)
  _, plain, _ = train.validate(util.tiny_config(horizon=100, eval_points=3, horizons=(50,)))
  assert plain.eval_steps == (1, 10, 50, 100)


def test_unknown_preset_names_the_allowed_ones():
  from anytime.configs import lm as lm_config

  with pytest.raises(ValueError, match=r"model='2b'.*allowed"):
    lm_config.get_config("model=2b")


def test_mesh_batch_is_split_over_data_and_fsdp():
  mesh = sharding_lib.make_mesh((2, 2, 2))
  batch = {"inputs": np.arange(8 * 4, dtype=np.int32).reshape(8, 4)}
  arr = sharding_lib.global_batch(batch, mesh)["inputs"]
  assert arr.addressable_shards[0].data.shape == (2, 4)
  np.testing.assert_array_equal(np.asarray(arr), batch["inputs"])


def test_dry_run_reports_and_writes_nothing(tmp_path):
  lines = []
  out = train.run(
    util.tiny_config(mesh=(2, 2, 1)), str(tmp_path / "run"), dry_run=True, log=lines.append
  )
  report = "\n".join(lines)
  for text in ("non-embedding", "FLOPs/token", "'data': 2, 'fsdp': 2", "per-device memory", "MFU"):
    assert text in report
  assert (
    out["counts"]["non_embedding"]
    == model_lib.param_counts(train.model_config(util.tiny_config()))["non_embedding"]
  )
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_dry_run_150m_without_data_or_allocation(tmp_path):
  from anytime.configs import lm as lm_config

  lines = []
  cfg = lm_config.get_config("model=150m,horizon=32")
  out = train.run(cfg, str(tmp_path / "run"), dry_run=True, log=lines.append)
  assert out["plan"].steps_per_chinchilla == 12_500 and out["plan"].total_steps == 400_000
  assert "151.0M" in "\n".join(lines) and "data.path" in "\n".join(lines)
  assert not (tmp_path / "run").exists()


def test_optimizer_multipliers_schedule_and_lr_readout():
  import jax.numpy as jnp

  from anytime import optim

  cfg = util.tiny_config()
  opt = cfg.opt
  opt.schedule, opt.lr, opt.warmup_steps, opt.init_lr_fraction = "cosine", 1.0, 2, 0.5
  opt.lr_multipliers = ("embed=0", "blocks/.*/mlp=0.5")
  tx = optim.make_optimizer(opt, total_steps=10)
  params = {"embed": jnp.ones(3), "blocks": {0: {"mlp": jnp.ones(3), "attn": jnp.ones(3)}}}
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  lrs = []
  for _ in range(3):
    updates, state = tx.update(grads, state, params)
    lrs.append(float(optim.current_lr(state)))
  np.testing.assert_allclose(lrs, [0.5, 0.75, 1.0])  # warmup from 0.5 x peak
  np.testing.assert_array_equal(updates["embed"], 0.0)
  np.testing.assert_allclose(updates["blocks"][0]["mlp"], 0.5 * updates["blocks"][0]["attn"])
  with pytest.raises(ValueError, match="lr_multipliers"):
    opt.lr_multipliers = ("embed",)
    optim.make_optimizer(opt, total_steps=10)


_CORES = sorted(os.sched_getaffinity(0))[:2]  # the subprocesses run on at most two cores
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_ENV = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
# The child pins itself (a preexec_fn would fork this multithreaded JAX process).
_PINNED_TRAINER = (
  f"import os, runpy, sys; os.sched_setaffinity(0, {_CORES}); sys.argv[0] = 'anytime.lm'; "
  "runpy.run_module('anytime.lm', run_name='__main__', alter_sys=True)"
)


def _dry_run(flags):
  command = [sys.executable, "-c", _PINNED_TRAINER, "--config=configs/lm.py:model=tiny"]
  return subprocess.run([*command, *flags, "--dry_run"], cwd=_ROOT, env=_ENV, capture_output=True)


@pytest.mark.parametrize(
  "flags, devices",
  [
    (["--cpu_devices=2"], 2),
    (["--cpu_devices=-1"], len(_CORES)),
    # Unset: one device per core when each gets >= 1,024 tokens of the batch.
    ([], 1),  # tiny: 8 x 16 tokens
    (["--config.batch_size=64", "--config.model.seq_len=64"], len(_CORES)),  # 2,048 per core
    (["--config.batch_size=63", "--config.model.seq_len=64"], 1),  # 63 does not split
    (["--config.batch_size=64", "--config.model.seq_len=64", "--cpu_devices=0"], 1),
  ],
)
def test_cpu_devices_flag_splits_the_host_into_a_data_mesh(flags, devices):
  out = _dry_run(flags)
  assert out.returncode == 0, out.stderr.decode()
  assert f"'data': {devices}, 'fsdp': 1" in out.stdout.decode()
  assert f"over {devices} cpu device(s)" in out.stdout.decode()


def test_cpu_devices_flag_refuses_what_it_cannot_do():
  bad = _dry_run(["--cpu_devices=-2"])
  assert bad.returncode != 0 and b"--cpu_devices=-2 must be" in bad.stderr


def test_mfu_peak_counts_cpu_hosts_not_devices():
  # On CPU the measured matmul already uses every core of the host: a host split into 8 XLA
  # devices has one host's peak, not 8 (the MFU line was 8x too low). Chips count one by one.
  import types

  from anytime.lm import metrics

  def devices(platform, hosts, per_host):
    return [
      types.SimpleNamespace(platform=platform, process_index=h)
      for h in range(hosts)
      for _ in range(per_host)
    ]

  assert metrics.total_peak_flops(5e10, devices("cpu", 1, 8)) == 5e10
  assert metrics.total_peak_flops(5e10, devices("cpu", 2, 4)) == 1e11
  assert metrics.total_peak_flops(197e12, devices("tpu", 4, 4)) == 16 * 197e12
  # And the meter's MFU is flops / that peak: 1000 tokens/s x 1e6 FLOPs/token on 1e10 FLOP/s.
  plan = types.SimpleNamespace(tokens_per_step=1000, total_steps=10)
  meter = metrics.Meter(plan, 10**6, 1e10, 0)
  meter.last_time -= 1.0
  _, record = meter.update(1, {"loss": 1.0, "lr": 0.1, "grad_norm": 1.0})
  assert abs(record["mfu"] - record["tokens_per_s"] * 1e6 / 1e10) < 1e-12
  assert 0.09 < record["mfu"] <= 0.1
