"""The trainer's code before each performance change, for before/after rows in one process.

``experiments.bench_trainer`` builds a "before" variant of the train step under one of these
context managers: while it is active (the step is traced and compiled inside it), the model
runs the old code; the compiled step keeps it afterwards.
"""

from __future__ import annotations

import contextlib
import math

import jax
import jax.numpy as jnp
import numpy as np

from anytime.lm import model as model_lib


def _einsum_attention_sequence_major(self, x_BxLxD):
  """Attention.__call__ before head-major operands: the einsums on B x L x H x K directly."""
  b, length, d = x_BxLxD.shape
  h, k = self.cfg.num_heads, self.cfg.head_dim
  q_BxLxHxK = self.q_norm(self.query(x_BxLxD)).reshape(b, length, h, k)
  k_BxLxHxK = self.k_norm(self.key(x_BxLxD)).reshape(b, length, h, k)
  v_BxLxHxK = self.value(x_BxLxD).reshape(b, length, h, k)
  q_BxLxHxK = model_lib.rope(q_BxLxHxK, self.cfg.rope_base)
  k_BxLxHxK = model_lib.rope(k_BxLxHxK, self.cfg.rope_base)
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


@contextlib.contextmanager
def sequence_major_attention():
  """The einsum attention as it was before the head-major change."""
  current = model_lib.Attention.__call__
  model_lib.Attention.__call__ = _einsum_attention_sequence_major
  try:
    yield
  finally:
    model_lib.Attention.__call__ = current
