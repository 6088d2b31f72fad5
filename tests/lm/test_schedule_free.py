"""Schedule-Free AdamW as a trainer schedule: the optax optimizer, our warmup, its eval point."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from anytime import optim, schedules
from anytime.lm import data as data_lib
from tests.lm.util import tiny_config, train_steps


def test_schedule_free_matches_optax_and_finds_eval_params():
  # No warmup: during warmup optax's schedule_free weights iterate k by lr(k) while
  # its AdamW steps with lr(k - 1); we feed both the lr of the current step.
  overrides = {"opt.schedule": "schedule_free", "opt.averages": (), "opt.clip": 0.0}
  cfg = tiny_config(**overrides, **{"opt.warmup_steps": 0})
  ours = optim.make_optimizer(cfg.opt, total_steps=8)
  schedule = schedules.constant(
    cfg.opt.lr, warmup_steps=cfg.opt.warmup_steps, init_value=cfg.opt.init_lr_fraction * cfg.opt.lr
  )
  reference = optax.contrib.schedule_free_adamw(
    learning_rate=schedule,
    b1=cfg.opt.b1,
    b2=cfg.opt.b2,
    eps=cfg.opt.eps,
    weight_decay=cfg.opt.weight_decay,
  )
  params = {"w": jnp.linspace(-1.0, 1.0, 6), "b": jnp.asarray(0.5)}
  s_ours, s_ref, p_ours, p_ref = ours.init(params), reference.init(params), params, params
  for i in range(6):
    grads = jax.tree.map(lambda p, i=i: p - jnp.cos(p + i), p_ours)
    u, s_ours = ours.update(grads, s_ours, p_ours)
    v, s_ref = reference.update(grads, s_ref, p_ref)
    p_ours, p_ref = optax.apply_updates(p_ours, u), optax.apply_updates(p_ref, v)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), p_ours, p_ref)
  assert float(optim.current_lr(s_ours)) == float(schedule(5))
  x = optim.schedule_free_eval_params(s_ours, p_ours)
  # x = (y - (1 - b1) z) / b1, with z read from the reference optimizer's own state.
  b1 = cfg.opt.b1
  want = jax.tree.map(lambda y, z: (y - (1 - b1) * z) / b1, p_ref, s_ref.z)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), x, want)
  assert optim.schedule_free_eval_params(optax.adam(1e-3).init(params), params) is None


def test_trainer_evaluates_schedule_free_eval_params():
  cfg = tiny_config(**{"opt.schedule": "schedule_free", "opt.averages": ()})
  losses, state, trainer = train_steps(cfg, 8)
  assert np.all(np.isfinite(losses))
  batches = data_lib.make_eval_batches(
    cfg.data, seq_len=trainer.mcfg.seq_len, batch_size=trainer.plan.eval_batch_size, num_batches=2
  )
  out = trainer.evaluate(state, batches)
  assert set(out) == {"raw", "schedule_free"}
  assert np.isfinite(out["schedule_free"]) and out["schedule_free"] != out["raw"]
