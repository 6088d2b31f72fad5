"""Next-token cross-entropy of the output projection, without materialising the full logits.

``mean_cross_entropy(x_NxD, w_DxV, targets_N, chunk=C)`` equals
``cross_entropy(x_NxD @ w_DxV, targets_N).mean()`` in value and in gradient, but computes the
logits C tokens at a time: the forward pass of each chunk also produces that chunk's share of
both gradients (dL/dx and dL/dW), which the backward pass only scales by the incoming cotangent.
Nothing of size N x V is ever kept, and the logits are not recomputed in the backward pass (the
usual custom-VJP recompute would cost a fourth N x D x V matmul). This works because the output
is a scalar mean: its cotangent is one number, so the per-chunk gradients can be formed before it
is known.

Shapes in names: N tokens, D model width, V vocabulary, C tokens per chunk.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def cross_entropy(logits_NxV: jax.Array, targets_N: jax.Array) -> jax.Array:
  """Per-token cross-entropy in float32 (log-sum-exp minus the target logit)."""
  logits_NxV = logits_NxV.astype(jnp.float32)
  lse_N = jax.nn.logsumexp(logits_NxV, axis=-1)
  target_N = jnp.take_along_axis(logits_NxV, targets_N[..., None], axis=-1)[..., 0]
  return lse_N - target_N


def _padded(x_NxD, targets_N, chunk):
  """(x, targets, valid, K): N padded up to K * C rows; padding rows are invalid."""
  n = x_NxD.shape[0]
  k = -(-n // chunk)
  pad = k * chunk - n
  valid_N = jnp.ones((n,), jnp.bool_)
  if pad:
    x_NxD = jnp.pad(x_NxD, ((0, pad), (0, 0)))
    targets_N = jnp.pad(targets_N, (0, pad))
    valid_N = jnp.pad(valid_N, (0, pad))
  return x_NxD, targets_N, valid_N, k


def _chunks(x_NxD, targets_N, chunk):
  """(x_KxCxD, targets_KxC, valid_KxC) of the rows padded by ``_padded``.

  Chunk k holds the strided rows k, K + k, 2K + k, ... (row n = c K + k), not C consecutive
  rows: when N is sharded over the data axes of a mesh, the C axis then carries the sharding
  and every device works on every scan step (consecutive chunks would put the scanned axis K
  on the mesh, and XLA gathers it onto every device before the loop).
  """
  *padded, k = _padded(x_NxD, targets_N, chunk)

  def strided(a):
    return jnp.swapaxes(a.reshape(chunk, k, *a.shape[1:]), 0, 1)

  return tuple(strided(a) for a in padded)


def _unchunk(a_KxCxD, n):
  """Inverse of ``_chunks`` for one [K, C, D] array: back to [N, D]."""
  return jnp.swapaxes(a_KxCxD, 0, 1).reshape(-1, a_KxCxD.shape[-1])[:n]


def _logits(x_CxD, w_DxV, compute_dtype):
  # Operands in the compute dtype (bf16 on accelerators), accumulation and result in float32.
  return jnp.dot(
    x_CxD.astype(compute_dtype), w_DxV.astype(compute_dtype), preferred_element_type=jnp.float32
  )


def _forward_and_grads(x_NxD, w_DxV, targets_N, chunk, compute_dtype, with_grads):
  """(mean loss, dmean/dx_NxD, dmean/dw_DxV) by a scan over chunks of C tokens."""
  n = x_NxD.shape[0]
  x_KxCxD, targets_KxC, valid_KxC = _chunks(x_NxD, targets_N, chunk)
  scale = 1.0 / n

  def body(dw_DxV, inputs):
    x_CxD, targets_C, valid_C = inputs
    logits_CxV = _logits(x_CxD, w_DxV, compute_dtype)
    lse_C = jax.nn.logsumexp(logits_CxV, axis=-1)
    target_C = jnp.take_along_axis(logits_CxV, targets_C[:, None], axis=-1)[:, 0]
    loss = jnp.sum(jnp.where(valid_C, lse_C - target_C, 0.0))
    if not with_grads:
      return dw_DxV, (loss, None)
    # d(mean)/d(logits) = (softmax - onehot(target)) / N on valid rows.
    probs_CxV = jnp.exp(logits_CxV - lse_C[:, None])
    onehot_CxV = jax.nn.one_hot(targets_C, logits_CxV.shape[-1], dtype=jnp.float32)
    dlogits_CxV = jnp.where(valid_C[:, None], (probs_CxV - onehot_CxV) * scale, 0.0)
    dlogits_CxV = dlogits_CxV.astype(compute_dtype)
    dx_CxD = jnp.dot(dlogits_CxV, w_DxV.astype(compute_dtype).T, preferred_element_type=jnp.float32)
    dw_DxV = dw_DxV + jnp.dot(
      x_CxD.astype(compute_dtype).T, dlogits_CxV, preferred_element_type=jnp.float32
    )
    return dw_DxV, (loss, dx_CxD.astype(x_NxD.dtype))

  dw0 = jnp.zeros(w_DxV.shape, jnp.float32)
  dw_DxV, (losses_K, dx_KxCxD) = jax.lax.scan(body, dw0, (x_KxCxD, targets_KxC, valid_KxC))
  mean = jnp.sum(losses_K) * scale
  if not with_grads:
    return mean, None, None
  dx_NxD = _unchunk(dx_KxCxD, n)
  return mean, dx_NxD, dw_DxV.astype(w_DxV.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _mean_ce(x_NxD, w_DxV, targets_N, chunk, compute_dtype):
  return _forward_and_grads(x_NxD, w_DxV, targets_N, chunk, compute_dtype, False)[0]


def _mean_ce_fwd(x_NxD, w_DxV, targets_N, chunk, compute_dtype):
  mean, dx_NxD, dw_DxV = _forward_and_grads(x_NxD, w_DxV, targets_N, chunk, compute_dtype, True)
  return mean, (dx_NxD, dw_DxV, targets_N)


def _mean_ce_bwd(chunk, compute_dtype, residuals, g):
  del chunk, compute_dtype
  dx_NxD, dw_DxV, targets_N = residuals
  # Integer targets take a float0 cotangent (they are not differentiable).
  dtargets = jnp.zeros(targets_N.shape, jax.dtypes.float0)
  return (g * dx_NxD).astype(dx_NxD.dtype), (g * dw_DxV).astype(dw_DxV.dtype), dtargets


_mean_ce.defvjp(_mean_ce_fwd, _mean_ce_bwd)


def mean_cross_entropy(
  x_NxD: jax.Array,
  w_DxV: jax.Array,
  targets_N: jax.Array,
  *,
  chunk: int = 1024,
  compute_dtype=None,
) -> jax.Array:
  """Mean over N of cross_entropy(x @ w, targets), computed ``chunk`` tokens at a time.

  ``compute_dtype`` (default: x's dtype) is the matmul operand dtype; logits, log-sum-exp and
  accumulations are float32. Gradients flow to ``x`` and ``w``; ``targets`` are integers.
  """
  if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
    raise ValueError(f"chunk={chunk!r} must be a positive integer (tokens per chunk).")
  dtype = jnp.dtype(compute_dtype or x_NxD.dtype)
  return _mean_ce(x_NxD, w_DxV, targets_N.astype(jnp.int32), min(chunk, x_NxD.shape[0]), dtype)
