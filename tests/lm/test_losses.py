"""The chunked loss head: same value and gradient as the plain cross-entropy of full logits."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from anytime.lm import losses, train
from anytime.lm import model as model_lib
from tests.lm import util


def _plain_mean(x_NxD, w_DxV, targets_N):
  return losses.cross_entropy(x_NxD @ w_DxV, targets_N).mean()


@pytest.mark.parametrize(("n", "chunk"), [(64, 16), (64, 64), (50, 16), (7, 1024)])
def test_chunked_matches_plain_value_and_gradient(n, chunk):
  kx, kw, kt = jax.random.split(jax.random.key(0), 3)
  d, v = 24, 97
  x_NxD = jax.random.normal(kx, (n, d), jnp.float32)
  w_DxV = jax.random.normal(kw, (d, v), jnp.float32) * 0.5
  targets_N = jax.random.randint(kt, (n,), 0, v)
  plain, (gx_plain, gw_plain) = jax.value_and_grad(_plain_mean, argnums=(0, 1))(
    x_NxD, w_DxV, targets_N
  )
  chunked_fn = lambda x, w: losses.mean_cross_entropy(x, w, targets_N, chunk=chunk)
  value, (gx, gw) = jax.jit(jax.value_and_grad(chunked_fn, argnums=(0, 1)))(x_NxD, w_DxV)
  np.testing.assert_allclose(value, plain, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(gx, gx_plain, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(gw, gw_plain, rtol=1e-5, atol=1e-6)
  # Without differentiation the primal (no gradient work) gives the same value.
  np.testing.assert_allclose(chunked_fn(x_NxD, w_DxV), plain, rtol=1e-6)
  # A scaled cotangent scales both gradients (the backward pass only rescales).
  gx3 = jax.grad(lambda x: 3.0 * chunked_fn(x, w_DxV))(x_NxD)
  np.testing.assert_allclose(gx3, 3.0 * gx_plain, rtol=1e-5, atol=1e-6)


def test_chunk_must_be_positive():
  x = jnp.zeros((4, 3))
  with pytest.raises(ValueError, match="chunk=0"):
    losses.mean_cross_entropy(x, jnp.zeros((3, 5)), jnp.zeros((4,), jnp.int32), chunk=0)


@pytest.mark.parametrize("parameterization", ["standard", "mup"])
def test_model_loss_chunked_equals_full_logits_with_gradients(parameterization):
  cfg = util.tiny_config()
  mcfg = train.model_config(cfg)
  if parameterization == "mup":  # width 2x the base: the readout multiplier is 0.5, not 1
    mcfg = dataclasses.replace(mcfg, parameterization="mup", base_width=mcfg.d_model // 2)
  model = model_lib.build(mcfg, seed=1)
  graphdef, state = nnx.split(model, nnx.Param)
  params = nnx.to_pure_dict(state)
  tokens = jax.random.randint(jax.random.key(2), (4, mcfg.seq_len + 1), 0, mcfg.vocab_size)
  batch = dict(inputs=tokens[:, :-1], targets=tokens[:, 1:])
  full, g_full = jax.value_and_grad(lambda p: model_lib.loss_fn(graphdef, p, batch))(params)
  chunked, g_chunk = jax.value_and_grad(
    lambda p: model_lib.loss_fn(graphdef, p, batch, chunk=24)  # 64 tokens: a padded last chunk
  )(params)
  np.testing.assert_allclose(chunked, full, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g_chunk), jax.tree.leaves(g_full), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
