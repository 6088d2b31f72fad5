"""Width growth (anytime/lm/growth.py): exact function, gradients and AdamW trajectory."""

import jax
import numpy as np
import pytest

from anytime.lm import data as data_lib
from anytime.lm import growth, train
from anytime.lm import sharding as sharding_lib
from tests.lm.util import tiny_config


def _config(parameterization):
  cfg = tiny_config(**{"model.parameterization": parameterization, "horizon": 64})
  if parameterization == "mup":
    cfg.model.base_width = 16
  cfg.opt.per_group = True
  cfg.opt.clip = 0.0  # global-norm clipping is not growth-invariant (see the module docstring)
  cfg.opt.lr = 3e-3
  cfg.opt.eps = 1e-4  # large enough that a wrong eps shows
  cfg.opt.weight_decay = 0.3  # and a wrong weight decay
  return cfg


def _trainer(cfg):
  mcfg, plan, mesh = train.validate(cfg)
  return train.Trainer(cfg, mcfg, plan, mesh)


def _batches(cfg, n):
  it = data_lib.make_train_iterator(
    cfg.data, seq_len=int(cfg.model.seq_len), global_batch_size=cfg.batch_size, seed=0
  )
  out = [next(it) for _ in range(n)]
  it.close()
  return out


def _losses(trainer, state, batches):
  losses = []
  for b in batches:
    state, metrics = trainer.train_step(state, sharding_lib.global_batch(b, trainer.mesh))
    losses.append(float(metrics["loss"]))
  return np.array(losses), state


@pytest.mark.parametrize(
  "parameterization", ["mup", pytest.param("standard", marks=pytest.mark.slow)]
)
def test_grown_model_follows_the_small_models_trajectory(parameterization):
  factor = 2
  cfg = _config(parameterization)
  big_cfg = growth.grown_config(cfg, factor)
  assert big_cfg.model.d_model == 2 * cfg.model.d_model
  small, big = _trainer(cfg), _trainer(big_cfg)
  batches = _batches(cfg, 55)
  _, state = _losses(small, small.init(), batches[:5])  # a trained state: nonzero moments
  host = jax.device_get(state)
  grown = jax.device_put(
    growth.grow_state(host, big.abstract, factor, parameterization), big.shardings
  )
  small_loss, small_state = _losses(small, jax.device_put(host, small.shardings), batches[5:])
  big_loss, big_state = _losses(big, grown, batches[5:])
  np.testing.assert_allclose(big_loss[0], small_loss[0], rtol=0, atol=1e-6)
  assert np.max(np.abs(big_loss - small_loss)) < 1e-5
  assert small_loss[-1] < small_loss[0] - 0.05  # the runs really trained
  # The trajectory stays in the image of the growth map (averages included).
  for kind in ("params", "opt_state"):
    mapped = growth.grow_state(jax.device_get(small_state), big.abstract, factor, parameterization)
    for a, b in zip(
      jax.tree.leaves(mapped[kind]), jax.tree.leaves(jax.device_get(big_state[kind])), strict=True
    ):
      np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-6)
  # Copying the moments, eps and weight decay unscaled leaves the small trajectory.
  naive = jax.device_put(
    growth.grow_state(host, big.abstract, factor, parameterization, naive=True), big.shardings
  )
  naive_loss, _ = _losses(big, naive, batches[5:])
  assert np.max(np.abs(naive_loss - small_loss)) > 100 * np.max(np.abs(big_loss - small_loss))
