"""LM training configs: ``get_config("model=150m,schedule=constant,horizon=32")``.

The argument is a comma-separated list of ``key=value`` presets (all optional):

  model     one of PRESETS: 150m, 300m (the reference, docs/design.md section 5), or a CPU
            miniature: tiny (tests), micro (Figure 2 in miniature), nano, 1m, 5m, 15m
  schedule  constant | inverse_sqrt | polynomial | cosine | wsd | linear_decay
  horizon   run length, in Chinchilla multiples (or in steps with unit=steps)
  unit      chinchilla | steps
  lr, b2, batch, seed, dtype, data   shortcuts for opt.lr, opt.b2, batch_size, seed,
            model.dtype, data.source

Any other field is set from the command line, e.g.
``--config=configs/lm.py:model=nano --config.opt.warmup_steps=10``.
"""

from __future__ import annotations

import ml_collections

# Architecture presets. vocab_size 0: taken from the data (anytime.lm.data.vocab_size).
# Non-embedding params (12 * d^2 * layers + norms): 150m 151.0M, 300m 302.1M,
# 15m 14.2M, 5m 4.7M, 1m 0.79M, nano 0.39M, micro 55.6k, tiny 25k.
PRESETS = {
  "150m": dict(
    d_model=1024, num_layers=12, num_heads=16, mlp_dim=4096, vocab_size=32128, seq_len=1024
  ),
  "300m": dict(
    d_model=1024, num_layers=24, num_heads=16, mlp_dim=4096, vocab_size=32128, seq_len=1024
  ),
  "15m": dict(d_model=384, num_layers=8, num_heads=6, mlp_dim=1536, vocab_size=0, seq_len=256),
  "5m": dict(d_model=256, num_layers=6, num_heads=4, mlp_dim=1024, vocab_size=0, seq_len=256),
  "1m": dict(d_model=128, num_layers=4, num_heads=4, mlp_dim=512, vocab_size=0, seq_len=128),
  "nano": dict(d_model=128, num_layers=2, num_heads=4, mlp_dim=512, vocab_size=0, seq_len=128),
  # The Figure-2 miniature (sweep fig2): small enough that 32x Chinchilla (35.6M tokens) is
  # under one epoch of the natural-text corpus (anytime.lm.natural_corpus, 50.4M tokens).
  "micro": dict(d_model=48, num_layers=2, num_heads=2, mlp_dim=192, vocab_size=0, seq_len=128),
  "tiny": dict(d_model=32, num_layers=2, num_heads=2, mlp_dim=64, vocab_size=0, seq_len=16),
}

# Per-preset training settings: the paper's for 150m/300m, small ones for CPU.
RUN_PRESETS = {
  "150m": dict(batch_size=256, steps_per_chinchilla=12_500, warmup_steps=5000, dtype="bfloat16"),
  "300m": dict(batch_size=512, steps_per_chinchilla=12_500, warmup_steps=5000, dtype="bfloat16"),
  "15m": dict(batch_size=64, steps_per_chinchilla=0, warmup_steps=200, dtype="float32"),
  "5m": dict(batch_size=32, steps_per_chinchilla=0, warmup_steps=200, dtype="float32"),
  "1m": dict(batch_size=32, steps_per_chinchilla=0, warmup_steps=100, dtype="float32"),
  "nano": dict(batch_size=32, steps_per_chinchilla=0, warmup_steps=50, dtype="float32"),
  # 270 steps x 4,096 tokens = 1.106M = 19.9 tokens per non-embedding param; warmup 40% of 1x
  # as the paper's 5000 of 12,500; 270 is a multiple of 10, so WSD's 90% branch is a step.
  "micro": dict(batch_size=32, steps_per_chinchilla=270, warmup_steps=108, dtype="float32"),
  "tiny": dict(batch_size=8, steps_per_chinchilla=0, warmup_steps=2, dtype="float32"),
}


# The reference paper's model and evaluation protocol (its code: github.com/alexandrumeterez/
# anytime-training, configs/kempner/base-c4-t5.yaml, olmo/model.py, olmo/train.py), applied to
# the 150m and 300m presets; its architecture and init (not its evaluation) also to micro, the
# Figure-2 miniature. The other CPU miniatures keep the previous choices (normal 0.02 init,
# tanh GELU, eps 1e-6) so the committed laws studies re-run unchanged.
PAPER_PROTOCOL = dict(
  init="mitchell",  # OLMo init_fn: mitchell (fan-in stds, 3-sigma truncation)
  gelu_approximate=False,  # activation_type: gelu -> GELU(approximate="none")
  norm_eps=1e-5,  # OLMo's layer_norm_eps
  eval_batches=1000,  # eval_subset_num_batches: 1000 ...
  eval_batch_size=32,  # ... of device_eval_batch_size 32 (one device): 32.8M tokens
  eval_log_start=10**-2.1,  # eval_count_log_scale: np.logspace(-2.1, 0, 20) x max_duration ...
  eval_round=100,  # ... each rounded down to a multiple of 100 steps
)
PAPER_MODELS = ("150m", "300m")
PAPER_ARCH_MODELS = (*PAPER_MODELS, "micro")  # init, GELU and norm eps of the paper


def _parse(arg: str) -> dict[str, str]:
  out = {}
  for item in filter(None, (arg or "").split(",")):
    if "=" not in item:
      raise ValueError(f"config argument {item!r} must be key=value (in {arg!r}).")
    key, value = item.split("=", 1)
    out[key.strip()] = value.strip()
  allowed = {"model", "schedule", "horizon", "unit", "lr", "b2", "batch", "seed", "dtype", "data"}
  unknown = set(out) - allowed
  if unknown:
    raise ValueError(f"config argument keys {sorted(unknown)} unknown; allowed: {sorted(allowed)}.")
  return out


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """The config for ``arg`` (see the module docstring)."""
  from anytime.lm import data as data_lib

  args = _parse(arg)
  name = args.get("model", "nano")
  if name not in PRESETS:
    raise ValueError(f"model={name!r} is not a preset; allowed: {sorted(PRESETS)}.")
  run = RUN_PRESETS[name]
  cfg = ml_collections.ConfigDict()
  cfg.seed = int(args.get("seed", 0))  # init and data-order seed
  # Sequences per optimizer step, over all devices and processes.
  cfg.batch_size = int(args.get("batch", run["batch_size"]))
  cfg.grad_accum = 1  # micro-batches per optimizer step (optax.MultiSteps); divides batch_size

  cfg.model = ml_collections.ConfigDict()
  cfg.model.preset = name  # informational: which PRESETS entry the fields below came from
  cfg.model.vocab_size = PRESETS[name]["vocab_size"]  # 0: from the data (tokenizer size)
  cfg.model.d_model = PRESETS[name]["d_model"]  # residual width D
  cfg.model.num_layers = PRESETS[name]["num_layers"]  # transformer blocks
  # Attention heads (d_model / num_heads must be even, for RoPE).
  cfg.model.num_heads = PRESETS[name]["num_heads"]
  cfg.model.mlp_dim = PRESETS[name]["mlp_dim"]  # MLP hidden width F
  cfg.model.seq_len = PRESETS[name]["seq_len"]  # tokens per training sequence L
  # Compute dtype: bfloat16 | float32 (parameters are always float32).
  cfg.model.dtype = args.get("dtype", run["dtype"])
  cfg.model.rope_base = 10_000.0  # RoPE base frequency
  paper = name in PAPER_MODELS
  paper_arch = name in PAPER_ARCH_MODELS
  # Weight init: normal (N(0, init_std^2), output projections / sqrt(2 layers)) | mitchell
  # (the paper's OLMo init: 1/sqrt(fan_in) stds, outputs 1/sqrt(2 fan_in (layer + 1)), cut at
  # 3 std; anytime/lm/model.py). mitchell ignores init_std.
  cfg.model.init = PAPER_PROTOCOL["init"] if paper_arch else "normal"
  cfg.model.init_std = 0.02  # std of the normal init (output projections / sqrt(2 layers))
  # GELU form: True = tanh approximation, False = exact erf (the paper's).
  cfg.model.gelu_approximate = PAPER_PROTOCOL["gelu_approximate"] if paper_arch else True
  cfg.model.norm_eps = PAPER_PROTOCOL["norm_eps"] if paper_arch else 1e-6  # layer-norm epsilon
  cfg.model.remat = False  # recompute block activations in the backward pass (saves memory)
  # With remat: full (keep nothing of a block, ~4/3 of the ideal FLOPs) | dots (keep the 2-D
  # projections' outputs, rerun attention and elementwise ops only; more memory).
  cfg.model.remat_policy = "full"
  cfg.model.attention = "einsum"  # einsum (fp32 softmax) | dot_product | cudnn (GPU flash kernel)
  # einsum attention in this many query blocks, skipping the key blocks the causal mask would
  # zero (about (n + 1) / 2n of the L x L work, same function); 1 = the full L x L scores.
  cfg.model.causal_blocks = 1
  # standard | mup (Tensor Programs V for Adam: hidden LR and init ~ base_width/d_model, readout
  # logits x base_width/d_model, attention q.k * sqrt(base_head_dim)/head_dim; docs/mup.md).
  cfg.model.parameterization = "standard"
  cfg.model.base_width = 0  # muP only: the width where muP = standard; 0 = d_model
  cfg.model.base_head_dim = 0  # muP only: K0 in the attention scale; 0 = base_width / num_heads
  cfg.model.readout_zero_init = False  # readout weights start at 0 (muP practice, TP5 App. D.2)
  # Loss head: tokens per chunk of the vocabulary projection + cross-entropy (anytime.lm.losses;
  # never materialises the B x L x V float32 logits); 0 = the plain full-logits loss.
  cfg.model.loss_chunk = 1024

  # Run length. tokens(1x Chinchilla) = 20 * non-embedding params, i.e.
  # ceil(20 N / (batch_size * seq_len)) steps unless steps_per_chinchilla > 0.
  cfg.unit = args.get("unit", "chinchilla")  # unit of horizon and horizons: chinchilla | steps
  cfg.horizon = float(args.get("horizon", 1))  # the run's length, in `unit`
  # Eval + permanent checkpoint at these horizons (in `unit`); () = 1, 2, 4, ... <= horizon.
  cfg.horizons = ()
  cfg.steps_per_chinchilla = run["steps_per_chinchilla"]  # 0: from the 20 tokens/param rule

  cfg.opt = ml_collections.ConfigDict()
  cfg.opt.schedule = args.get("schedule", "constant")  # see anytime.optim.SCHEDULES
  cfg.opt.lr = float(args.get("lr", 1e-3))  # peak learning rate
  cfg.opt.warmup_steps = run["warmup_steps"]  # linear warmup from init_lr_fraction * lr
  cfg.opt.init_lr_fraction = 0.1  # warmup starts at this fraction of the peak
  cfg.opt.final_lr_fraction = 0.1  # cosine / wsd / linear_decay end at this fraction of the peak
  cfg.opt.schedule_steps = 0  # horizon of cosine/wsd/linear_decay; 0 = the run's length
  cfg.opt.offset = 51_200.0  # inverse_sqrt / polynomial offset (steps); the paper's best 51.2k
  cfg.opt.exponent = 0.5  # polynomial decay exponent
  cfg.opt.wsd_decay_fraction = 0.1  # WSD decays over the last 10% (branches at 90%)
  cfg.opt.wsd_shape = "linear"  # WSD decay shape: linear | sqrt | cosine
  cfg.opt.b1 = 0.9  # AdamW beta1
  cfg.opt.b2 = float(args.get("b2", 0.95))  # AdamW beta2 (paper grid 0.95, 0.98, 0.99)
  cfg.opt.eps = 1e-8  # AdamW epsilon
  cfg.opt.weight_decay = 0.0  # AdamW decoupled weight decay (paper: 0)
  cfg.opt.clip = 1.0  # global-norm gradient clipping threshold; 0 disables
  # Per-module LR multipliers, "regex=mult" on param paths like blocks/0/mlp/up/kernel.
  cfg.opt.lr_multipliers = ()
  # Per-group LR multipliers (groups from the param path, anytime.optim.param_group), on top of
  # muP's; any value other than 1 (or muP) switches to the per-group optimizer (optax.partition).
  cfg.opt.module_lr = ml_collections.ConfigDict(
    dict(embedding=1.0, attention=1.0, mlp=1.0, norm=1.0, readout=1.0)
  )
  # Use the per-group optimizer even when nothing above asks for it (a standard run that is
  # to be grown by anytime.lm.growth, whose per-group eps / weight decay live in its state).
  cfg.opt.per_group = False
  # Weight averages kept during training: pema<gamma> (proportional EMA), ema<decay>, polyak.
  cfg.opt.averages = ("pema6.25", "pema12.5", "pema25", "pema50", "pema100")
  cfg.opt.averages_dtype = "float32"  # dtype of the stored averages
  # Guard: skip an update whose gradients are NaN/inf (optax.apply_if_finite inside the
  # averaging, so averages skip it too), counted and logged; at most this many in a row
  # (then the update is applied and the run stops on the non-finite loss). 0 = off.
  cfg.opt.skip_nonfinite_updates = 0

  cfg.mesh = (-1, 1, 1)  # (data, fsdp, tensor) mesh shape; one -1 = the remaining devices

  cfg.data = data_lib.default_data_config()  # fields documented in anytime/lm/data.py
  if "data" in args:
    cfg.data.source = args["data"]
  if name in ("150m", "300m"):
    cfg.data.source = args.get("data", "tokens")  # pre-tokenized C4 (T5 vocab); set data.path

  cfg.eval_points = 20  # log-spaced eval steps over the run (plus every horizon)
  # First log-spaced eval step as a fraction of the run (the paper: 10^-2.1 = 0.79%);
  # 0 = from step 1. The points are geomspace(max(1, start x steps), steps, eval_points).
  cfg.eval_log_start = PAPER_PROTOCOL["eval_log_start"] if paper else 0.0
  # Log-spaced eval steps rounded down to a multiple of this (the paper: 100); 1 = exact.
  cfg.eval_round = PAPER_PROTOCOL["eval_round"] if paper else 1
  cfg.eval_every = 0  # also evaluate every this many steps (0: off), e.g. dense curves for laws
  cfg.eval_batches = PAPER_PROTOCOL["eval_batches"] if paper else 8  # validation batches per eval
  # Sequences per validation batch; 0 = batch_size / grad_accum.
  cfg.eval_batch_size = PAPER_PROTOCOL["eval_batch_size"] if paper else 0

  cfg.log_every = 50  # steps between train log lines / metric records
  cfg.checkpoint_every = 500  # steps between rolling checkpoints (0: only horizons and the end)
  cfg.keep_checkpoints = 2  # rolling checkpoints kept (horizon checkpoints are never pruned)
  cfg.async_checkpoints = True  # write checkpoints in the background
  cfg.init_from = ""  # another run's workdir to start from (e.g. a WSD cooldown branch)
  cfg.init_from_step = -1  # its checkpoint step; -1 = latest
  # Test hook (docs/reliability.md): at this optimizer step (1-based) the loss, hence every
  # gradient, is made NaN, to exercise the stop / skip behaviour. 0 = off.
  cfg.debug_nan_step = 0
  cfg.peak_flops = 0.0  # peak FLOP/s per chip (per host on CPU) for MFU; 0 = measured at start

  # Weights & Biases: the same scalars as TensorBoard, next to the JSONL and TensorBoard files
  # (anytime/lm/metrics.py). Needs the optional extra: pip install 'anytime-schedules[wandb]'.
  cfg.wandb = ml_collections.ConfigDict()
  cfg.wandb.project = ""  # W&B project to log to; "" = off (the wandb package is never imported)
  cfg.wandb.entity = ""  # team or user owning the project; "" = the logged-in user's default
  cfg.wandb.name = ""  # the W&B run's display name; "" = W&B's generated name
  # online (streams to the server) | offline (files under the workdir, or $WANDB_DIR, for a later
  # `wandb sync`) | disabled (every W&B call a no-op) | "" = $WANDB_MODE, else online.
  cfg.wandb.mode = ""
  return cfg


def override(cfg: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
  """Sets ``{"opt.lr": 1e-3, ...}`` (dotted keys) on ``cfg`` in place and returns it."""
  for key, value in overrides.items():
    node = cfg
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return cfg
