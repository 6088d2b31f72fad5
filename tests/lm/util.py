"""Shared helpers of the LM tests: tiny configs and a few train steps without I/O."""

import jax
import numpy as np

from anytime.configs import lm as lm_config
from anytime.lm import data as data_lib
from anytime.lm import sharding as sharding_lib
from anytime.lm import train


def tiny_config(**overrides):
  """The `tiny` preset on the synthetic source, a few steps, cheap evaluation."""
  cfg = lm_config.get_config("model=tiny,data=synthetic,unit=steps,horizon=8")
  cfg.opt.warmup_steps = 2
  cfg.opt.averages = ("pema25", "polyak")
  cfg.eval_points = 3
  cfg.eval_batches = 2
  cfg.log_every = 4
  cfg.checkpoint_every = 0
  cfg.peak_flops = 1e9  # skip the matmul measurement
  return lm_config.override(cfg, overrides)


def train_steps(cfg, steps):
  """(losses, final state, trainer) of ``steps`` optimizer steps of ``cfg``, no checkpoints."""
  mcfg, plan, mesh_shape = train.validate(cfg)
  trainer = train.Trainer(cfg, mcfg, plan, mesh_shape)
  state = trainer.init()
  it = data_lib.make_train_iterator(
    cfg.data,
    seq_len=mcfg.seq_len,
    global_batch_size=plan.micro_batch,
    seed=cfg.seed,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
  )
  losses = []
  for _ in range(steps):
    for _ in range(cfg.grad_accum):
      state, metrics = trainer.train_step(state, sharding_lib.global_batch(next(it), trainer.mesh))
    losses.append(float(metrics["loss"]))
  it.close()
  return np.array(losses), state, trainer
