"""The Transformer's architecture hyper-parameters (:class:`ModelConfig`) and their allowed
values, apart from the model code (:mod:`anytime.lm.model`) so the planning and configuration
code can read them without building a model. See :mod:`anytime.lm.model` for what each
parameterization and initialisation means."""

from __future__ import annotations

import dataclasses
import math

# Parameter collections that count as "embedding" (excluded from N, the
# non-embedding parameter count of the Chinchilla rule).
EMBEDDING_PARAMS = ("embed", "unembed")
ATTENTION = ("einsum", "dot_product", "cudnn")
PARAMETERIZATIONS = ("standard", "mup")
# What remat keeps of a block for the backward pass: "full" nothing (the forward runs twice,
# ~4/3 of the ideal FLOPs); "dots" the outputs of the 2-D projections (q, k, v, out, MLP up and
# down: jax's dots_with_no_batch_dims_saveable), so only attention and elementwise ops rerun.
REMAT_POLICIES = ("full", "dots")
INITS = ("normal", "mitchell")
TRUNCATION = 3.0  # mitchell: draws truncated at this many std (OLMo's init_cutoff_factor)
# std of N(0, 1) truncated to [-3, 3]: sqrt(1 - 2 * 3 phi(3) / (2 Phi(3) - 1)).
TRUNC3_STD = 0.9865783926


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Architecture hyper-parameters (see configs/lm.py for the presets)."""

  vocab_size: int
  d_model: int
  num_layers: int
  num_heads: int
  mlp_dim: int
  seq_len: int
  dtype: str = "float32"  # compute dtype: "bfloat16" or "float32"
  rope_base: float = 10_000.0
  init_std: float = 0.02
  remat: bool = False  # recompute each block's activations in the backward pass
  attention: str = "einsum"  # "einsum" (fp32 softmax) | "dot_product" | "cudnn" (jax.nn)
  parameterization: str = "standard"  # "standard" | "mup" (see the module docstring)
  base_width: int = 0  # muP: the d_model at which muP equals standard; 0 = d_model
  base_head_dim: int = 0  # muP: K0 of the attention scale sqrt(K0)/K; 0 = base_width/num_heads
  readout_zero_init: bool = False  # readout weights start at 0 (Tensor Programs V, App. D.2)
  causal_blocks: int = 1  # einsum attention: query blocks; key blocks above the diagonal skipped
  init: str = "normal"  # "normal" (init_std) | "mitchell" (OLMo's fan-in init, module docstring)
  gelu_approximate: bool = True  # tanh GELU; False = the exact erf GELU (the paper's)
  norm_eps: float = 1e-6  # layer-norm epsilon (the paper's OLMo: 1e-5)
  remat_policy: str = "full"  # with remat: what a block keeps (REMAT_POLICIES)

  def __post_init__(self):
    for name in ("vocab_size", "d_model", "num_layers", "num_heads", "mlp_dim", "seq_len"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"model.{name}={value!r} must be a positive integer.")
    if self.d_model % self.num_heads:
      raise ValueError(
        f"model.d_model={self.d_model} must be divisible by model.num_heads={self.num_heads}."
      )
    if (self.d_model // self.num_heads) % 2:
      raise ValueError(
        f"head width d_model/num_heads={self.d_model // self.num_heads} must be even for RoPE."
      )
    if self.attention not in ATTENTION:
      raise ValueError(f"model.attention={self.attention!r} must be one of {ATTENTION}.")
    if self.dtype not in ("bfloat16", "float32"):
      raise ValueError(f"model.dtype={self.dtype!r} must be one of 'bfloat16', 'float32'.")
    if self.parameterization not in PARAMETERIZATIONS:
      raise ValueError(
        f"model.parameterization={self.parameterization!r} must be one of {PARAMETERIZATIONS}."
      )
    for name in ("base_width", "base_head_dim"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"model.{name}={value!r} must be an integer >= 0 (0 = the default).")
    blocks = self.causal_blocks
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= self.seq_len:
      raise ValueError(
        f"model.causal_blocks={blocks!r} must be an integer in [1, model.seq_len={self.seq_len}]."
      )
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(f"model.remat_policy={self.remat_policy!r} must be one of {REMAT_POLICIES}.")
    if self.init not in INITS:
      raise ValueError(f"model.init={self.init!r} must be one of {INITS}.")
    if self.init == "mitchell" and self.parameterization != "standard":
      raise ValueError(
        "model.init='mitchell' sets every std from the fan-in; it is not defined for "
        f"model.parameterization={self.parameterization!r} (use init='normal')."
      )
    if not isinstance(self.gelu_approximate, bool):
      raise ValueError(f"model.gelu_approximate={self.gelu_approximate!r} must be True or False.")
    eps = self.norm_eps
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < 1:
      raise ValueError(f"model.norm_eps={eps!r} must be a number in (0, 1).")
    if not isinstance(self.readout_zero_init, bool):
      raise ValueError(f"model.readout_zero_init={self.readout_zero_init!r} must be True or False.")
    if self.parameterization == "standard" and (self.base_width or self.base_head_dim):
      raise ValueError(
        f"model.base_width={self.base_width} / model.base_head_dim={self.base_head_dim} only "
        "apply to model.parameterization='mup'; leave them 0 for 'standard'."
      )
    if self.attention != "einsum" and self.parameterization == "mup":
      raise ValueError(
        f"model.attention={self.attention!r} uses jax.nn's fixed 1/sqrt(K) scale; "
        "model.parameterization='mup' needs model.attention='einsum'."
      )

  @property
  def head_dim(self) -> int:
    return self.d_model // self.num_heads

  @property
  def width_mult(self) -> float:
    """r = d_model / base_width under muP (1 for standard)."""
    if self.parameterization != "mup":
      return 1.0
    return self.d_model / (self.base_width or self.d_model)

  @property
  def hidden_init_std(self) -> float:
    """Init std of the hidden (matrix-like) weights: init_std, / sqrt(r) under muP."""
    if self.parameterization != "mup":
      return self.init_std
    return self.init_std / math.sqrt(self.width_mult)

  def init_stds(self, layer: int) -> dict[str, float]:
    """Init std of every weight family of block ``layer`` (0-based), and of the embeddings.

    Keys: ``qkv`` (q, k, v), ``attn_out``, ``mlp_up``, ``mlp_down``, ``embed``, ``readout``
    (before ``readout_zero_init``). See the module docstring for the two inits.
    """
    if self.init == "mitchell":
      d, f = self.d_model, self.mlp_dim
      return {
        "qkv": 1 / math.sqrt(d),
        "attn_out": 1 / math.sqrt(2 * d * (layer + 1)),
        "mlp_up": 1 / math.sqrt(d),
        "mlp_down": 1 / math.sqrt(2 * f * (layer + 1)),
        "embed": 1 / math.sqrt(d),
        "readout": 1 / math.sqrt(d),
      }
    std = self.hidden_init_std
    out = std / math.sqrt(2 * self.num_layers)
    return {
      "qkv": std,
      "attn_out": out,
      "mlp_up": std,
      "mlp_down": out,
      "embed": self.init_std,
      "readout": self.init_std,
    }

  @property
  def attention_scale(self) -> float:
    """Multiplier of q.k: 1/sqrt(K) (standard), sqrt(K0)/K (muP)."""
    k = self.head_dim
    if self.parameterization != "mup":
      return 1.0 / math.sqrt(k)
    k0 = self.base_head_dim or max(1, (self.base_width or self.d_model) // self.num_heads)
    return math.sqrt(k0) / k

  @property
  def output_mult(self) -> float:
    """Multiplier of the readout logits: 1 (standard), base_width / d_model (muP)."""
    return 1.0 / self.width_mult
