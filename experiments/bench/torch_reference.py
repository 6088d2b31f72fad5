"""The LM of anytime.lm.model written in plain PyTorch: the baseline of experiments.bench.trainer.

Same block as the JAX model: pre-norm, RoPE (rotate-half, float32), layer norm over the full
width on queries and keys, causal softmax attention, tanh-GELU MLP, no biases, untied
embeddings, layer norms without bias (eps 1e-6); the same init (normal 0.02, output projections
/ sqrt(2 layers)); AdamW after global-norm clipping at 1.0. Written the way a PyTorch user would
(``F.scaled_dot_product_attention``, ``F.cross_entropy``, ``torch.optim.AdamW``), so the
comparison is against idiomatic PyTorch, eager or ``torch.compile``d.

Needs the optional ``[bench]`` extra (``pip install -e '.[bench]'``, a CPU wheel of torch);
nothing in the test suite imports this module.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anytime.lm import model as model_lib

LAYER_NORM_EPS = 1e-6  # flax nnx.LayerNorm's default


def _norm(dim: int) -> nn.LayerNorm:
  return nn.LayerNorm(dim, eps=LAYER_NORM_EPS, bias=False)


def _linear(din: int, dout: int, std: float) -> nn.Linear:
  layer = nn.Linear(din, dout, bias=False)
  nn.init.normal_(layer.weight, std=std)
  return layer


def rope_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
  """cos, sin of shape [1, L, 1, K/2] (float32), as in anytime.lm.model.rope."""
  inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
  angles = torch.arange(seq_len, dtype=torch.float32)[:, None] * inv_freq[None, :]
  return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]


def rope(x_BxLxHxK: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
  half = x_BxLxHxK.shape[-1] // 2
  x1, x2 = x_BxLxHxK[..., :half], x_BxLxHxK[..., half:]
  return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Attention(nn.Module):
  def __init__(self, cfg: model_lib.ModelConfig):
    super().__init__()
    d, std = cfg.d_model, cfg.init_std
    self.heads, self.head_dim = cfg.num_heads, cfg.head_dim
    self.query, self.key, self.value = (_linear(d, d, std) for _ in range(3))
    self.out = _linear(d, d, std / math.sqrt(2 * cfg.num_layers))
    self.q_norm, self.k_norm = _norm(d), _norm(d)

  def forward(self, x_BxLxD, cos, sin):
    b, length, d = x_BxLxD.shape
    shape = (b, length, self.heads, self.head_dim)
    q_BxLxHxK = rope(self.q_norm(self.query(x_BxLxD)).view(shape), cos, sin)
    k_BxLxHxK = rope(self.k_norm(self.key(x_BxLxD)).view(shape), cos, sin)
    v_BxLxHxK = self.value(x_BxLxD).view(shape)
    y_BxHxLxK = F.scaled_dot_product_attention(
      q_BxLxHxK.transpose(1, 2),
      k_BxLxHxK.transpose(1, 2),
      v_BxLxHxK.transpose(1, 2),
      is_causal=True,
    )
    return self.out(y_BxHxLxK.transpose(1, 2).reshape(b, length, d))


class Block(nn.Module):
  def __init__(self, cfg: model_lib.ModelConfig):
    super().__init__()
    out_std = cfg.init_std / math.sqrt(2 * cfg.num_layers)
    self.attn_norm, self.mlp_norm = _norm(cfg.d_model), _norm(cfg.d_model)
    self.attn = Attention(cfg)
    self.up = _linear(cfg.d_model, cfg.mlp_dim, cfg.init_std)
    self.down = _linear(cfg.mlp_dim, cfg.d_model, out_std)

  def forward(self, x_BxLxD, cos, sin):
    x_BxLxD = x_BxLxD + self.attn(self.attn_norm(x_BxLxD), cos, sin)
    return x_BxLxD + self.down(F.gelu(self.up(self.mlp_norm(x_BxLxD)), approximate="tanh"))


class Transformer(nn.Module):
  """tokens_BxL (int64) -> logits_BxLxV (float32); the JAX model's architecture and init."""

  def __init__(self, cfg: model_lib.ModelConfig):
    super().__init__()
    self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
    nn.init.normal_(self.embed.weight, std=cfg.init_std)
    self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.num_layers)])
    self.final_norm = _norm(cfg.d_model)
    self.unembed = _linear(cfg.d_model, cfg.vocab_size, cfg.init_std)
    cos, sin = rope_tables(cfg.seq_len, cfg.head_dim, cfg.rope_base)
    self.register_buffer("cos", cos, persistent=False)
    self.register_buffer("sin", sin, persistent=False)

  def forward(self, tokens_BxL):
    x_BxLxD = self.embed(tokens_BxL)
    for block in self.blocks:
      x_BxLxD = block(x_BxLxD, self.cos, self.sin)
    return self.unembed(self.final_norm(x_BxLxD))


def param_count(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters())


def load_jax_params(model: Transformer, params) -> None:
  """Copies the JAX model's parameters (``nnx.to_pure_dict`` of anytime.lm.model) into ``model``.

  Flax kernels are [in, out], torch Linear weights [out, in]; everything else maps one to one.
  """

  def put(dst: torch.Tensor, src, transpose: bool = False) -> None:
    value = torch.from_numpy(np.array(src, dtype=np.float32))
    dst.data.copy_(value.T if transpose else value)

  put(model.embed.weight, params["embed"]["embedding"])
  put(model.unembed.weight, params["unembed"]["kernel"], transpose=True)
  put(model.final_norm.weight, params["final_norm"]["scale"])
  for i, block in enumerate(model.blocks):
    p = params["blocks"][i]
    put(block.attn_norm.weight, p["attn_norm"]["scale"])
    put(block.mlp_norm.weight, p["mlp_norm"]["scale"])
    for name in ("query", "key", "value", "out"):
      put(getattr(block.attn, name).weight, p["attn"][name]["kernel"], transpose=True)
    put(block.attn.q_norm.weight, p["attn"]["q_norm"]["scale"])
    put(block.attn.k_norm.weight, p["attn"]["k_norm"]["scale"])
    put(block.up.weight, p["mlp"]["up"]["kernel"], transpose=True)
    put(block.down.weight, p["mlp"]["down"]["kernel"], transpose=True)


def loss(model: Transformer, inputs_BxL: torch.Tensor, targets_BxL: torch.Tensor) -> torch.Tensor:
  """Mean next-token cross-entropy (nats), as anytime.lm.model.loss_fn."""
  logits_BxLxV = model(inputs_BxL)
  return F.cross_entropy(logits_BxLxV.view(-1, logits_BxLxV.shape[-1]), targets_BxL.view(-1))


def make_train_step(cfg: model_lib.ModelConfig, *, lr=1e-3, b2=0.95, clip=1.0, compile=False):
  """(model, step(inputs_BxL, targets_BxL) -> loss tensor): one AdamW update per call."""
  torch.manual_seed(0)
  model = Transformer(cfg)
  opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, b2), eps=1e-8, weight_decay=0.0)

  def loss_and_grads(inputs_BxL, targets_BxL):
    value = loss(model, inputs_BxL, targets_BxL)
    value.backward()
    return value

  fwd_bwd = torch.compile(loss_and_grads) if compile else loss_and_grads

  def step(inputs_BxL, targets_BxL):
    opt.zero_grad(set_to_none=True)
    loss = fwd_bwd(inputs_BxL, targets_BxL)
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss.detach()

  return model, step
