"""Decoder-only Transformer in Flax NNX, as in the reference (OLMo-style).

Pre-norm blocks, rotary position embeddings (RoPE), layer norm on queries and
keys (QK-norm), a GELU MLP, no biases anywhere, untied input and output
embeddings and causal self-attention. Parameters are float32; the compute
dtype (``bfloat16`` or ``float32``) is separate. Every parameter carries
logical axis names (``vocab``, ``embed``, ``heads``, ``mlp``, ``norm``) that
:mod:`anytime.lm.sharding` maps to mesh axes.

Two parameterizations (``ModelConfig.parameterization``):

* ``standard``: attention logits q.k / sqrt(K), logits = h W_U, and the
  weights drawn by ``init`` (below).
* ``mup``: the maximal-update parameterization for Adam (Yang et al. 2022,
  "Tensor Programs V", arXiv 2203.03466, Table 3 written with the output
  multiplier of their Table 9). With the width ratio ``r = d_model / base_width``:
  hidden (matrix-like) weights are initialised with std ``init_std / sqrt(r)``
  (variance ~ 1/fan_in), attention logits are ``q.k * sqrt(K0) / K`` (1/K
  instead of 1/sqrt(K); ``K0 = base_head_dim`` makes it the standard scale at
  the base), and the readout logits are multiplied by ``1 / r``. The embedding,
  the readout weights and the norm scales keep their width-independent init.
  ``readout_zero_init`` (either parameterization) starts the readout at 0, as
  Tensor Programs V (appendix D.2) recommends for muP. The learning-rate and
  weight-decay side (hidden LR ~ 1/r) is in :mod:`anytime.optim`. At
  ``d_model == base_width`` (r = 1) and ``K == K0`` both parameterizations give
  the same function.

Two initialisations (``ModelConfig.init``; norm scales always start at 1):

* ``normal``: every weight N(0, init_std^2), the output projections (attention
  out, MLP down) N(0, init_std^2 / (2 layers)) (GPT-2 / Megatron), untruncated.
* ``mitchell``: OLMo's ``init_fn: mitchell``, the reference paper's init
  (its ``olmo/model.py``). Every std is set by the fan-in, not by a constant:
  1/sqrt(D) for q, k, v, the MLP's up projection, the embedding and the readout;
  the output projections of block l (0-based) get 1/sqrt(2 fan_in (l + 1)), i.e.
  1/sqrt(2 D (l + 1)) for attention out and 1/sqrt(2 F (l + 1)) for MLP down, so
  the residual stream's variance grows like sum_l 1/(l + 1) ~ ln(layers) instead
  of linearly. Every draw is truncated at 3 std WITHOUT rescaling (PyTorch's
  ``trunc_normal_(std=s, a=-3s, b=3s)``), so the realised std is
  s sqrt(1 - 6 phi(3) / (2 Phi(3) - 1)) = 0.98658 s (:data:`TRUNC3_STD`).

``gelu_approximate`` picks the tanh GELU (False: the exact erf form, the
paper's ``GELU(approximate="none")``) and ``norm_eps`` the layer-norm epsilon
(OLMo's default 1e-5).

Shapes in names: B batch, L sequence, D model width, H heads, K head width,
F MLP width, V vocabulary.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from anytime.lm import losses
from anytime.lm.model_config import (  # noqa: F401 (re-exported: model.ModelConfig, ...)
  ATTENTION,
  EMBEDDING_PARAMS,
  INITS,
  PARAMETERIZATIONS,
  REMAT_POLICIES,
  TRUNC3_STD,
  TRUNCATION,
  ModelConfig,
)
from anytime.lm.sharding import constrain

# Logical axes of the activations (anytime.lm.sharding.RULES maps them to mesh axes).
STREAM = ("batch", None, None)  # the residual stream B x L x D: rows split, D whole
TOKENS = ("batch", None)  # N x D token rows


def _truncated(std: float):
  """N(0, std^2) cut at +-3 std, not rescaled (PyTorch's trunc_normal_, OLMo's mitchell init)."""

  def init(key, shape, dtype=jnp.float32):
    return std * jax.random.truncated_normal(key, -TRUNCATION, TRUNCATION, shape, dtype)

  return init


def _init(std: float, axes: tuple[str, ...], truncated: bool = False):
  fn = _truncated(std) if truncated else nnx.initializers.normal(std)
  return nnx.with_partitioning(fn, axes)


def _norm(dim: int, dtype: Any, rngs: nnx.Rngs, eps: float = 1e-6) -> nnx.LayerNorm:
  return nnx.LayerNorm(
    dim,
    epsilon=eps,
    use_bias=False,
    dtype=dtype,
    param_dtype=jnp.float32,
    scale_init=nnx.with_partitioning(nnx.initializers.ones, ("norm",)),
    rngs=rngs,
  )


def _dense(
  din: int, dout: int, axes, std: float, dtype: Any, rngs: nnx.Rngs, truncated: bool = False
) -> nnx.Linear:
  return nnx.Linear(
    din,
    dout,
    use_bias=False,
    dtype=dtype,
    param_dtype=jnp.float32,
    kernel_init=_init(std, axes, truncated),
    rngs=rngs,
  )


def rope(x_BxLxHxK: jax.Array, base: float) -> jax.Array:
  """Rotary position embedding (rotate-half form), computed in float32."""
  _, length, _, k = x_BxLxHxK.shape
  inv_freq = 1.0 / (base ** (np.arange(0, k, 2, dtype=np.float32) / k))
  angles_LxK2 = np.arange(length, dtype=np.float32)[:, None] * inv_freq[None, :]
  cos = jnp.asarray(np.cos(angles_LxK2))[None, :, None, :]
  sin = jnp.asarray(np.sin(angles_LxK2))[None, :, None, :]
  x = x_BxLxHxK.astype(jnp.float32)
  x1, x2 = x[..., : k // 2], x[..., k // 2 :]
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x_BxLxHxK.dtype)


class Attention(nnx.Module):
  """Causal multi-head self-attention with QK layer norm and RoPE."""

  def __init__(self, cfg: ModelConfig, dtype: Any, rngs: nnx.Rngs, layer: int = 0):
    d, stds, cut = cfg.d_model, cfg.init_stds(layer), cfg.init == "mitchell"
    self.cfg = cfg
    self.query = _dense(d, d, ("embed", "heads"), stds["qkv"], dtype, rngs, cut)
    self.key = _dense(d, d, ("embed", "heads"), stds["qkv"], dtype, rngs, cut)
    self.value = _dense(d, d, ("embed", "heads"), stds["qkv"], dtype, rngs, cut)
    self.out = _dense(d, d, ("heads", "embed"), stds["attn_out"], dtype, rngs, cut)
    self.q_norm = _norm(d, dtype, rngs, cfg.norm_eps)
    self.k_norm = _norm(d, dtype, rngs, cfg.norm_eps)

  def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
    b, length, d = x_BxLxD.shape
    h, k = self.cfg.num_heads, self.cfg.head_dim
    x_NxD = constrain(x_BxLxD.reshape(b * length, d), TOKENS)  # 2-D projections: Mlp.__call__
    q_BxLxHxK = self.q_norm(self.query(x_NxD)).reshape(b, length, h, k)
    k_BxLxHxK = self.k_norm(self.key(x_NxD)).reshape(b, length, h, k)
    v_BxLxHxK = self.value(x_NxD).reshape(b, length, h, k)
    q_BxLxHxK = rope(q_BxLxHxK, self.cfg.rope_base)
    k_BxLxHxK = rope(k_BxLxHxK, self.cfg.rope_base)
    if self.cfg.attention != "einsum":
      # jax.nn's fused attention; "cudnn" is the flash kernel (GPU), no L x L buffer.
      impl = "cudnn" if self.cfg.attention == "cudnn" else None
      y_BxLxHxK = jax.nn.dot_product_attention(
        q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, is_causal=True, implementation=impl
      )
      return self.out(y_BxLxHxK.reshape(b * length, d)).reshape(b, length, d)
    # Head-major operands: XLA:CPU then runs both products as plain batched matmuls (on the
    # B x L x H x K layout it transposes inside them; the train step is ~1.04x faster this way,
    # docs/performance.md).
    q_BxHxLxK, k_BxHxLxK, v_BxHxLxK = (
      x.transpose(0, 2, 1, 3) for x in (q_BxLxHxK, k_BxLxHxK, v_BxLxHxK)
    )
    y_BxHxLxK = causal_attention(
      q_BxHxLxK, k_BxHxLxK, v_BxHxLxK, self.cfg.attention_scale, self.cfg.causal_blocks
    )
    y_BxLxHxK = y_BxHxLxK.transpose(0, 2, 1, 3)
    return self.out(y_BxLxHxK.reshape(b * length, d)).reshape(b, length, d)


def causal_attention(
  q_BxHxLxK: jax.Array, k_BxHxLxK: jax.Array, v_BxHxLxK: jax.Array, scale: float, blocks: int = 1
) -> jax.Array:
  """softmax(scale q k^T + causal mask) v, with fp32 scores, in ``blocks`` query blocks.

  Query block i (rows r_i .. r_{i+1} - 1, r_i = round(i L / blocks)) attends to keys
  0 .. r_{i+1} - 1 only: the key blocks above the diagonal, which the mask would zero, are
  never computed, so the two products and the softmax cost about (blocks + 1) / (2 blocks) of
  the full L x L version (3/4 at 2 blocks) in the forward and the backward pass. Same
  function as ``blocks=1`` up to float rounding.
  """
  length = q_BxHxLxK.shape[2]
  bounds = [round(i * length / blocks) for i in range(blocks + 1)]
  outs = []
  for start, stop in itertools.pairwise(bounds):
    q_BxHxCxK = q_BxHxLxK[:, :, start:stop]
    scores_BxHxCxS = jnp.einsum("bhqk,bhsk->bhqs", q_BxHxCxK, k_BxHxLxK[:, :, :stop])
    scores_BxHxCxS = scores_BxHxCxS.astype(jnp.float32) * scale
    causal_CxS = np.arange(stop)[None, :] <= np.arange(start, stop)[:, None]
    scores_BxHxCxS = jnp.where(causal_CxS, scores_BxHxCxS, jnp.finfo(jnp.float32).min)
    probs_BxHxCxS = jax.nn.softmax(scores_BxHxCxS, axis=-1).astype(v_BxHxLxK.dtype)
    outs.append(jnp.einsum("bhqs,bhsk->bhqk", probs_BxHxCxS, v_BxHxLxK[:, :, :stop]))
  return outs[0] if blocks == 1 else jnp.concatenate(outs, axis=2)


class Mlp(nnx.Module):
  """GELU MLP without biases: D -> F -> D."""

  def __init__(self, cfg: ModelConfig, dtype: Any, rngs: nnx.Rngs, layer: int = 0):
    stds, cut = cfg.init_stds(layer), cfg.init == "mitchell"
    self.approximate = cfg.gelu_approximate
    self.up = _dense(cfg.d_model, cfg.mlp_dim, ("embed", "mlp"), stds["mlp_up"], dtype, rngs, cut)
    self.down = _dense(
      cfg.mlp_dim, cfg.d_model, ("mlp", "embed"), stds["mlp_down"], dtype, rngs, cut
    )

  def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
    # On [N, D] rather than [B, L, D]: the weight gradient then contracts one token axis, and
    # XLA:CPU runs it without first transposing both activations (two contracting axes made it
    # copy them; the MLP's backward was 1.6x slower, docs/performance.md).
    b, length, d = x_BxLxD.shape
    x_NxD = constrain(x_BxLxD.reshape(b * length, d), TOKENS)
    h_NxF = constrain(self.up(x_NxD), ("batch", "mlp"))
    h_NxF = jax.nn.gelu(h_NxF, approximate=self.approximate)
    return self.down(h_NxF).reshape(b, length, d)


def _record(record: dict | None, name: str, x: jax.Array) -> None:
  """Mean |x| per coordinate into ``record`` (the coordinate check); no-op for None."""
  if record is not None:
    record[name] = jnp.mean(jnp.abs(x.astype(jnp.float32)))


class Block(nnx.Module):
  """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

  def __init__(self, cfg: ModelConfig, dtype: Any, rngs: nnx.Rngs, layer: int = 0):
    self.attn_norm = _norm(cfg.d_model, dtype, rngs, cfg.norm_eps)
    self.attn = Attention(cfg, dtype, rngs, layer)
    self.mlp_norm = _norm(cfg.d_model, dtype, rngs, cfg.norm_eps)
    self.mlp = Mlp(cfg, dtype, rngs, layer)

  def __call__(self, x_BxLxD: jax.Array, record: dict | None = None, prefix: str = "") -> jax.Array:
    attn_BxLxD = self.attn(self.attn_norm(x_BxLxD))
    _record(record, prefix + "attn_out", attn_BxLxD)
    x_BxLxD = x_BxLxD + attn_BxLxD
    mlp_BxLxD = self.mlp(self.mlp_norm(x_BxLxD))
    _record(record, prefix + "mlp_out", mlp_BxLxD)
    x_BxLxD = x_BxLxD + mlp_BxLxD
    _record(record, prefix + "residual", x_BxLxD)
    return x_BxLxD


class Transformer(nnx.Module):
  """tokens_BxL (int32) -> logits_BxLxV (float32)."""

  def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
    dtype = jnp.dtype(cfg.dtype)
    stds, cut = cfg.init_stds(0), cfg.init == "mitchell"
    self.cfg = cfg
    self.embed = nnx.Embed(
      cfg.vocab_size,
      cfg.d_model,
      dtype=dtype,
      param_dtype=jnp.float32,
      embedding_init=_init(stds["embed"], ("vocab", "embed"), cut),
      rngs=rngs,
    )
    self.blocks = nnx.List([Block(cfg, dtype, rngs, i) for i in range(cfg.num_layers)])
    self.final_norm = _norm(cfg.d_model, dtype, rngs, cfg.norm_eps)
    # The readout keeps init_std at every width: under muP its 1/r is the output multiplier.
    # Zero init removes the logits' random init term, which vanishes only like 1/sqrt(width)
    # under muP and so bends small-width coordinate checks and LR transfer (TP5, App. D.2).
    readout_std = 0.0 if cfg.readout_zero_init else stds["readout"]
    self.unembed = _dense(
      cfg.d_model, cfg.vocab_size, ("embed", "vocab"), readout_std, dtype, rngs, cut
    )

  def __call__(self, tokens_BxL: jax.Array) -> jax.Array:
    return self._forward(tokens_BxL, None)

  def activations(self, tokens_BxL: jax.Array) -> dict[str, jax.Array]:
    """Mean |coordinate| of every layer's output (the coordinate check of Tensor Programs V).

    Keys: ``embed``, ``block{i}/attn_out``, ``block{i}/mlp_out``, ``block{i}/residual``,
    ``logits``; the forward pass is the one of ``__call__``.
    """
    record = {}
    self._forward(tokens_BxL, record)
    return record

  def _forward(self, tokens_BxL: jax.Array, record: dict | None) -> jax.Array:
    logits_BxLxV = self.unembed(self._features(tokens_BxL, record))
    _record(record, "logits", logits_BxLxV)
    return logits_BxLxV.astype(jnp.float32)

  def features(self, tokens_BxL: jax.Array) -> jax.Array:
    """What the unembedding maps to logits (the chunked loss head's input): see ``_features``."""
    return self._features(tokens_BxL, None)

  def _features(self, tokens_BxL: jax.Array, record: dict | None) -> jax.Array:
    """The final-normed residual x_BxLxD, times the muP readout multiplier.

    The unembedding has no bias, so scaling its input is scaling the logits.
    """
    x_BxLxD = constrain(self.embed(tokens_BxL), STREAM)
    _record(record, "embed", x_BxLxD)
    if record is not None:
      for i, block in enumerate(self.blocks):
        x_BxLxD = block(x_BxLxD, record, f"block{i}/")
    else:
      apply = _apply_block
      if self.cfg.remat:
        policy = None  # full: nothing saved
        if self.cfg.remat_policy == "dots":
          policy = jax.checkpoint_policies.dots_with_no_batch_dims_saveable
        apply = nnx.remat(_apply_block, policy=policy)
      for block in self.blocks:
        x_BxLxD = constrain(apply(block, x_BxLxD), STREAM)
    x_BxLxD = self.final_norm(x_BxLxD)
    if self.cfg.parameterization != "standard":
      x_BxLxD = x_BxLxD * jnp.asarray(self.cfg.output_mult, x_BxLxD.dtype)
    return x_BxLxD


def _apply_block(block: Block, x_BxLxD: jax.Array) -> jax.Array:
  return block(x_BxLxD)


def build(cfg: ModelConfig, seed: int = 0) -> Transformer:
  """A model with freshly initialised parameters (placement is left to the caller).

  The logical axis names are kept as metadata only (no eager sharding), so the
  same code builds the model outside a mesh, under ``eval_shape`` or inside a
  jitted init with explicit ``out_shardings`` (:mod:`anytime.lm.sharding`).
  """
  with nnx.use_eager_sharding(False):
    return Transformer(cfg, nnx.Rngs(seed))


def abstract(cfg: ModelConfig) -> tuple[nnx.GraphDef, nnx.State]:
  """(graphdef, abstract params state) from shapes only: nothing is allocated."""
  model = nnx.eval_shape(lambda: build(cfg))
  return nnx.split(model, nnx.Param)


def param_counts(cfg: ModelConfig) -> dict[str, int]:
  """Total and non-embedding parameter counts, from shapes (no allocation)."""
  _, state = abstract(cfg)
  total = embedding = 0
  for path, leaf in nnx.to_flat_state(state):
    size = int(np.prod(leaf.shape))
    total += size
    if path[0] in EMBEDDING_PARAMS:
      embedding += size
  return {"total": total, "non_embedding": total - embedding, "embedding": embedding}


def flops_per_token(cfg: ModelConfig) -> int:
  """Training FLOPs per token: 6 N (all matmul weights incl. the unembedding) + attention.

  The attention term is 6 * num_layers * seq_len * d_model (QK^T and AV, forward
  and backward, with causal masking not exploited), as in the PaLM appendix.
  """
  counts = param_counts(cfg)
  matmul_params = counts["total"] - cfg.vocab_size * cfg.d_model  # the embedding is a gather
  return 6 * matmul_params + 6 * cfg.num_layers * cfg.seq_len * cfg.d_model


def forward(graphdef: nnx.GraphDef, params: Any, tokens_BxL: jax.Array) -> jax.Array:
  """Functional apply: params (a pure dict of arrays, see ``nnx.to_pure_dict``) -> logits_BxLxV."""
  return nnx.merge(graphdef, params)(tokens_BxL)


def loss_fn(
  graphdef: nnx.GraphDef, params: Any, batch: dict[str, jax.Array], *, chunk: int = 0
) -> jax.Array:
  """Mean next-token cross-entropy (nats) of ``batch['targets']`` given ``batch['inputs']``.

  ``chunk`` > 0 computes the vocabulary projection and the loss that many tokens at a time
  (:func:`anytime.lm.losses.mean_cross_entropy`: same value and gradient, no B x L x V logits);
  0 materialises the float32 logits.
  """
  if not chunk:
    logits_BxLxV = forward(graphdef, params, batch["inputs"])
    return cross_entropy(logits_BxLxV, batch["targets"]).mean()
  model = nnx.merge(graphdef, params)
  x_BxLxD = model.features(batch["inputs"])
  d = x_BxLxD.shape[-1]
  return losses.mean_cross_entropy(
    x_BxLxD.reshape(-1, d),
    model.unembed.kernel[...],
    batch["targets"].reshape(-1),
    chunk=chunk,
    compute_dtype=model.cfg.dtype,
  )


def cross_entropy(logits_BxLxV: jax.Array, targets_BxL: jax.Array) -> jax.Array:
  """Per-token cross-entropy in float32 (log-sum-exp minus the target logit)."""
  return losses.cross_entropy(logits_BxLxV, targets_BxL)
