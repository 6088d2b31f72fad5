"""Regression guards of the train step that do not time anything.

Over several steps of the trainer's own jitted step: it is compiled exactly once per input shape,
and in steady state nothing crosses between host and device inside it (``jax.transfer_guard``
would raise), so the loop never stalls on a hidden transfer or a recompile.
"""

import jax
import numpy as np

from anytime.lm import data as data_lib
from anytime.lm import sharding as sharding_lib
from anytime.lm import train
from tests.lm import util


def _trainer_and_batches(cfg, steps):
  mcfg, plan, mesh_shape = train.validate(cfg)
  trainer = train.Trainer(cfg, mcfg, plan, mesh_shape)
  it = data_lib.make_train_iterator(
    cfg.data, seq_len=mcfg.seq_len, global_batch_size=plan.micro_batch, seed=cfg.seed
  )
  batches = [sharding_lib.global_batch(next(it), trainer.mesh) for _ in range(steps)]
  it.close()
  return trainer, batches


def test_train_step_compiles_once_per_shape_and_makes_no_host_transfer():
  cfg = util.tiny_config(mesh=(1, 1, 1))
  trainer, batches = _trainer_and_batches(cfg, 6)
  state = trainer.init()
  state, metrics = trainer.train_step(state, batches[0])  # compiles
  jax.block_until_ready(metrics)
  assert trainer.train_step._cache_size() == 1
  history = []
  # Steady state: device-resident state and batches; any implicit transfer raises.
  with jax.transfer_guard("disallow"):
    for batch in batches[1:]:
      state, metrics = trainer.train_step(state, batch)
      history.append(metrics)  # kept on device, fetched after the loop (one fetch, not per step)
  assert trainer.train_step._cache_size() == 1  # no recompilation over the steps
  losses = [float(m["loss"]) for m in jax.device_get(history)]
  assert np.all(np.isfinite(losses))
  # The eval step, too, compiles once for repeated batches and transfers nothing.
  params = state["params"]
  with jax.transfer_guard("disallow"):
    outs = [trainer.eval_step(params, b) for b in batches[:3]]
  assert trainer.eval_step._cache_size() == 1
  assert np.all(np.isfinite(jax.device_get(outs)))
  # The counter does see recompiles: a new batch shape is exactly one more.
  half = {k: v[: v.shape[0] // 2] for k, v in batches[0].items()}
  for _ in range(2):
    state, metrics = trainer.train_step(state, half)
  jax.block_until_ready(metrics)
  assert trainer.train_step._cache_size() == 2
