"""A run's plan and the validation of its whole config, before anything is compiled or written.

:func:`validate` checks every field it can (model, data, optimizer, mesh, evaluation) and returns
what the trainer builds from: the :class:`~anytime.lm.model.ModelConfig`, the :class:`Plan` (the run
in optimizer steps: horizon, horizon checkpoints, log-spaced evaluation steps) and the mesh shape.
It lives apart from :mod:`anytime.lm.train` because it is pure: the sweep launcher, the growth
tools and the dry run call it without building a trainer, and each failure is a ValueError naming
the field, its value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import jax
import numpy as np

from anytime import optim
from anytime.lm import data as data_lib
from anytime.lm import metrics as metrics_lib
from anytime.lm import model as model_lib
from anytime.lm import sharding as sharding_lib

UNITS = ("chinchilla", "steps")
TOKENS_PER_PARAM = 20  # Chinchilla: tokens = 20 x non-embedding params at 1x


@dataclasses.dataclass(frozen=True)
class Plan:
  """A run in optimizer steps."""

  total_steps: int
  steps_per_chinchilla: int
  tokens_per_step: int
  micro_batch: int  # sequences per train_step call (batch_size / grad_accum)
  eval_batch_size: int
  horizons: dict[int, float]  # step -> horizon in cfg.unit; evaluated and kept permanently
  eval_steps: tuple[int, ...]  # all evaluation steps (log-spaced + horizons)


def _fail(field: str, value: Any, allowed: str):
  raise ValueError(f"{field}={value!r} is invalid: {allowed}.")


def model_config(cfg) -> model_lib.ModelConfig:
  """The ModelConfig of ``cfg`` (vocab_size 0 = the data's vocabulary)."""
  m = cfg.model
  vocab = int(m.vocab_size) or data_lib.vocab_size(cfg.data)
  return model_lib.ModelConfig(
    vocab_size=vocab,
    d_model=int(m.d_model),
    num_layers=int(m.num_layers),
    num_heads=int(m.num_heads),
    mlp_dim=int(m.mlp_dim),
    seq_len=int(m.seq_len),
    dtype=m.dtype,
    rope_base=float(m.rope_base),
    init_std=float(m.init_std),
    remat=bool(m.remat),
    attention=m.attention,
    parameterization=m.get("parameterization", "standard"),
    base_width=int(m.get("base_width", 0)),
    base_head_dim=int(m.get("base_head_dim", 0)),
    readout_zero_init=m.get("readout_zero_init", False),  # validated by ModelConfig
    causal_blocks=m.get("causal_blocks", 1),  # validated by ModelConfig
    # Configs written before these fields existed ran the old defaults: keep them on resume.
    init=m.get("init", "normal"),
    gelu_approximate=m.get("gelu_approximate", True),
    norm_eps=m.get("norm_eps", 1e-6),
    remat_policy=m.get("remat_policy", "full"),
  )


def loss_chunk(cfg) -> int:
  """Tokens per chunk of the loss head (``model.loss_chunk``; 0 = full logits)."""
  value = cfg.model.get("loss_chunk", 0)
  if isinstance(value, bool) or not isinstance(value, int) or value < 0:
    _fail("model.loss_chunk", value, "expected an integer >= 0 (0 = full logits)")
  return value


def _check_ints(cfg, fields, *, minimum: int) -> None:
  for field in fields:
    value = cfg[field]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
      _fail(field, value, f"expected an integer >= {minimum}")


def batch_sizes(cfg) -> tuple[int, int]:
  """(sequences per train_step call, sequences per eval batch), validating those fields."""
  _check_ints(cfg, ("batch_size", "grad_accum"), minimum=1)
  _check_ints(cfg, ("eval_batch_size",), minimum=0)
  if cfg.batch_size % cfg.grad_accum:
    _fail("batch_size", cfg.batch_size, f"must be divisible by grad_accum={cfg.grad_accum}")
  micro = cfg.batch_size // cfg.grad_accum
  return micro, cfg.eval_batch_size or micro


def make_plan(cfg, non_embedding_params: int) -> Plan:
  """Steps of the run, its horizons and evaluation points (validating those fields)."""
  if cfg.unit not in UNITS:
    _fail("unit", cfg.unit, f"allowed: {UNITS}")
  micro, eval_batch = batch_sizes(cfg)
  _check_ints(cfg, ("log_every", "eval_batches"), minimum=1)
  _check_ints(
    cfg, ("checkpoint_every", "eval_points", "eval_every", "steps_per_chinchilla"), minimum=0
  )
  seq_len = int(cfg.model.seq_len)
  tokens_per_step = cfg.batch_size * seq_len
  spc = int(cfg.steps_per_chinchilla) or math.ceil(
    TOKENS_PER_PARAM * non_embedding_params / tokens_per_step
  )
  if not (isinstance(cfg.horizon, int | float) and cfg.horizon > 0):
    _fail("horizon", cfg.horizon, "expected a number > 0")
  to_steps = (lambda h: round(h * spc)) if cfg.unit == "chinchilla" else (lambda h: round(h))
  total = to_steps(cfg.horizon)
  if total < 1:
    _fail("horizon", cfg.horizon, f"gives {total} steps ({spc} steps per 1x Chinchilla)")
  values = list(cfg.horizons) or [2.0**i for i in range(64) if 2.0**i <= cfg.horizon]
  horizons = {}
  for h in [*values, cfg.horizon]:
    if not (isinstance(h, int | float) and 0 < h <= cfg.horizon) or to_steps(h) < 1:
      _fail("horizons", tuple(cfg.horizons), f"each must be in (0, horizon={cfg.horizon}]")
    horizons[to_steps(h)] = float(h)
  start, step_round = cfg.get("eval_log_start", 0.0), cfg.get("eval_round", 1)
  if isinstance(start, bool) or not isinstance(start, int | float) or not 0 <= start < 1:
    _fail("eval_log_start", start, "expected a fraction of the run in [0, 1) (0 = step 1)")
  if isinstance(step_round, bool) or not isinstance(step_round, int) or step_round < 1:
    _fail("eval_round", step_round, "expected an integer >= 1 (1 = no rounding)")
  first = max(1.0, start * total)
  log_spaced = np.geomspace(first, total, cfg.eval_points) if cfg.eval_points else []
  # The paper: int(n / 100) * 100 (steps rounded down); a step rounded to 0 is dropped.
  log_steps = {round(float(s)) // step_round * step_round for s in log_spaced} - {0}
  every = cfg.eval_every  # validated above: an int >= 0
  regular = range(every, total + 1, every) if every else []
  eval_steps = sorted(log_steps | set(regular) | set(horizons))
  return Plan(
    total_steps=total,
    steps_per_chinchilla=spc,
    tokens_per_step=tokens_per_step,
    micro_batch=micro,
    eval_batch_size=eval_batch,
    horizons=dict(sorted(horizons.items())),
    eval_steps=tuple(eval_steps),
  )


def validate(cfg, *, check_data: bool = True) -> tuple[model_lib.ModelConfig, Plan, tuple]:
  """Checks everything that can be checked before compiling; returns (model cfg, plan, mesh)."""
  if check_data:
    data_lib.validate_data_config(cfg.data)
  mcfg = model_config(cfg)
  loss_chunk(cfg)
  if "wandb" in cfg:  # configs from before W&B have no such group
    metrics_lib.validate_wandb_config(cfg.wandb)
  if check_data and cfg.model.vocab_size:
    data_vocab = data_lib.vocab_size(cfg.data)
    if data_vocab > mcfg.vocab_size:
      _fail("model.vocab_size", cfg.model.vocab_size, f"the data has {data_vocab} token ids")
  if mcfg.attention == "cudnn" and jax.devices()[0].platform != "gpu":
    _fail("model.attention", mcfg.attention, "the cudnn kernel needs a GPU; use einsum")
  counts = model_lib.param_counts(mcfg)
  plan = make_plan(cfg, counts["non_embedding"])
  optim.validate(cfg.opt, plan.total_steps, mcfg)
  nan_step = cfg.get("debug_nan_step", 0)
  if isinstance(nan_step, bool) or not isinstance(nan_step, int) or nan_step < 0:
    _fail("debug_nan_step", nan_step, "expected an integer >= 0 (0 = off)")
  if int(cfg.opt.warmup_steps) >= plan.total_steps:
    _fail("opt.warmup_steps", cfg.opt.warmup_steps, f"must be < the run's {plan.total_steps} steps")
  mesh_shape = sharding_lib.resolve_mesh_shape(cfg.mesh, jax.device_count())
  shards = mesh_shape[0] * mesh_shape[1]
  for field, size in (
    ("batch_size / grad_accum", plan.micro_batch),
    ("eval_batch_size", plan.eval_batch_size),
  ):
    if size % shards or size % jax.process_count():
      _fail(
        field,
        size,
        f"must be divisible by data x fsdp = {shards} and by the {jax.process_count()} processes",
      )
  if cfg.init_from and not os.path.isdir(os.path.join(cfg.init_from, "checkpoints")):
    _fail("init_from", cfg.init_from, "expected a run directory holding checkpoints/")
  if check_data:
    kw = dict(process_index=jax.process_index(), process_count=jax.process_count())
    data_lib.validate_data_config(
      cfg.data, seq_len=mcfg.seq_len, global_batch_size=plan.micro_batch, **kw
    )
    rows = data_lib.eval_rows_available(cfg.data, seq_len=mcfg.seq_len)
    if rows < plan.eval_batch_size * cfg.eval_batches:
      _fail(
        "eval_batches",
        cfg.eval_batches,
        f"the validation split holds {rows} rows, at most {rows // plan.eval_batch_size} "
        f"batches of eval_batch_size={plan.eval_batch_size}",
      )
  return mcfg, plan, mesh_shape
