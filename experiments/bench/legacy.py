"""The trainer's code before each performance change, for before/after rows in one process.

``experiments.bench.trainer`` builds a "before" variant of the train step under one of these
context managers: while it is active (the step is traced and compiled inside it), the model
runs the old code; the compiled step keeps it afterwards.
"""

from __future__ import annotations

import contextlib
import math

import jax
import jax.numpy as jnp
import numpy as np

from anytime.lm import losses as losses_lib
from anytime.lm import model as model_lib


@contextlib.contextmanager
def _patched(owner, **attrs):
  """Sets ``owner``'s attributes for the duration of the block, then restores them."""
  saved = {name: getattr(owner, name) for name in attrs}
  for name, value in attrs.items():
    setattr(owner, name, value)
  try:
    yield
  finally:
    for name, value in saved.items():
      setattr(owner, name, value)


def _qkv_3d(self, x_BxLxD):
  """q, k, v as B x L x H x K (projections on B x L x D, QK-norm, RoPE), as before both changes."""
  b, length, _ = x_BxLxD.shape
  h, k = self.cfg.num_heads, self.cfg.head_dim
  q_BxLxHxK = self.q_norm(self.query(x_BxLxD)).reshape(b, length, h, k)
  k_BxLxHxK = self.k_norm(self.key(x_BxLxD)).reshape(b, length, h, k)
  v_BxLxHxK = self.value(x_BxLxD).reshape(b, length, h, k)
  q_BxLxHxK = model_lib.rope(q_BxLxHxK, self.cfg.rope_base)
  k_BxLxHxK = model_lib.rope(k_BxLxHxK, self.cfg.rope_base)
  return q_BxLxHxK, k_BxLxHxK, v_BxLxHxK


def _einsum_attention_sequence_major(self, x_BxLxD):
  """Attention.__call__ before head-major operands: the einsums on B x L x H x K directly."""
  b, length, d = x_BxLxD.shape
  k = self.cfg.head_dim
  q_BxLxHxK, k_BxLxHxK, v_BxLxHxK = _qkv_3d(self, x_BxLxD)
  scores_BxHxLxL = jnp.einsum("bqhk,bshk->bhqs", q_BxLxHxK, k_BxLxHxK).astype(jnp.float32)
  if self.cfg.parameterization == "standard":
    scores_BxHxLxL = scores_BxHxLxL / math.sqrt(k)
  else:
    scores_BxHxLxL = scores_BxHxLxL * self.cfg.attention_scale
  causal_LxL = np.tril(np.ones((length, length), dtype=bool))
  scores_BxHxLxL = jnp.where(causal_LxL, scores_BxHxLxL, jnp.finfo(jnp.float32).min)
  probs_BxHxLxL = jax.nn.softmax(scores_BxHxLxL, axis=-1).astype(v_BxLxHxK.dtype)
  y_BxLxHxK = jnp.einsum("bhqs,bshk->bqhk", probs_BxHxLxL, v_BxLxHxK)
  return self.out(y_BxLxHxK.reshape(b, length, d))


def sequence_major_attention():
  """The einsum attention as it was before the head-major change."""
  return _patched(model_lib.Attention, __call__=_einsum_attention_sequence_major)


def _attention_3d(self, x_BxLxD):
  """Attention.__call__ before the 2-D projections: q, k, v and out applied on B x L x D."""
  b, length, d = x_BxLxD.shape
  q_BxHxLxK, k_BxHxLxK, v_BxHxLxK = (x.transpose(0, 2, 1, 3) for x in _qkv_3d(self, x_BxLxD))
  y_BxHxLxK = model_lib.causal_attention(
    q_BxHxLxK, k_BxHxLxK, v_BxHxLxK, self.cfg.attention_scale, self.cfg.causal_blocks
  )
  return self.out(y_BxHxLxK.transpose(0, 2, 1, 3).reshape(b, length, d))


def _mlp_3d(self, x_BxLxD):
  """Mlp.__call__ before the 2-D projections."""
  return self.down(jax.nn.gelu(self.up(x_BxLxD)))


@contextlib.contextmanager
def three_d_projections():
  """Every projection (q, k, v, out, up, down) on B x L x D, as before the 2-D change."""
  with (
    _patched(model_lib.Attention, __call__=_attention_3d),
    _patched(model_lib.Mlp, __call__=_mlp_3d),
  ):
    yield


def _consecutive_chunks(x_NxD, targets_N, chunk):
  """losses._chunks before the strided layout: chunk k = rows k C .. (k + 1) C - 1."""
  x_NxD, targets_N, valid_N, k = losses_lib._padded(x_NxD, targets_N, chunk)
  return x_NxD.reshape(k, chunk, -1), targets_N.reshape(k, chunk), valid_N.reshape(k, chunk)


def _consecutive_unchunk(a_KxCxD, n):
  return a_KxCxD.reshape(-1, a_KxCxD.shape[-1])[:n]


def consecutive_loss_chunks():
  """The chunked loss head before the strided layout (its scan axis lands on a data mesh)."""
  return _patched(losses_lib, _chunks=_consecutive_chunks, _unchunk=_consecutive_unchunk)
