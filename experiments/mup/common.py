"""Shared pieces of the muP experiments: width-scaled configs, fixed data, a scanned train loop.

The models are the trainer's (``anytime.lm.model``) and so is the optimizer
(``anytime.optim.make_optimizer`` with the model's parameterization); only the
loop is a compact ``lax.scan`` over pre-drawn batches (one compile per run, no
checkpoints or logs), which is what small sweeps on a 2-core CPU need.

Width scaling: ``d_model = width``, ``mlp_dim = 4 width``, a fixed number of
heads (so the head width K = width / heads grows and the muP attention scale
1/K matters), fixed depth. Data: the embedded stdlib corpus with a 1024-piece
BPE (``data.source="stdlib"``), random windows.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from anytime import optim
from anytime.configs import lm as lm_config
from anytime.lm import data as data_lib
from anytime.lm import metrics
from anytime.lm import model as model_lib


@dataclasses.dataclass(frozen=True)
class Setup:
  """Everything but the width, the parameterization and the optimizer settings."""

  layers: int = 2
  heads: int = 4
  seq_len: int = 64
  batch: int = 8
  vocab: int = 1024  # the stdlib BPE size (synthetic: the chain's vocabulary)
  base_width: int = 32  # muP equals standard here
  source: str = "stdlib"  # or "synthetic" (the Markov chain of the tests; no corpus needed)


def data_config(setup: Setup) -> ml_collections.ConfigDict:
  cfg = data_lib.default_data_config()
  cfg.source = setup.source
  cfg.tokenizer_vocab_size = setup.vocab
  cfg.vocab_size = setup.vocab
  cfg.num_threads = 0
  return cfg


def model_config(
  width: int, parameterization: str, setup: Setup, readout_zero_init: bool = False
) -> model_lib.ModelConfig:
  mup = parameterization == "mup"
  return model_lib.ModelConfig(
    vocab_size=setup.vocab,
    d_model=width,
    num_layers=setup.layers,
    num_heads=setup.heads,
    mlp_dim=4 * width,
    seq_len=setup.seq_len,
    dtype="float32",
    parameterization=parameterization,
    base_width=setup.base_width if mup else 0,
    base_head_dim=setup.base_width // setup.heads if mup else 0,
    readout_zero_init=readout_zero_init,
  )


def opt_config(
  lr: float,
  *,
  schedule: str = "constant",
  warmup_steps: int = 0,
  weight_decay: float = 0.0,
  clip: float = 1.0,
  module_lr: dict[str, float] | None = None,
) -> ml_collections.ConfigDict:
  """configs/lm.py's ``opt`` section with these fields (no averages)."""
  opt = lm_config.get_config("model=tiny,data=synthetic").opt
  opt.lr = float(lr)
  opt.schedule = schedule
  opt.warmup_steps = int(warmup_steps)
  opt.weight_decay = float(weight_decay)
  opt.clip = float(clip)
  opt.averages = ()
  for group, mult in (module_lr or {}).items():
    opt.module_lr[group] = float(mult)
  return opt


def batches(setup: Setup, steps: int, seed: int) -> dict[str, np.ndarray]:
  """``steps`` training batches {inputs, targets}: int32[steps, batch, seq_len]."""
  it = data_lib.make_train_iterator(
    data_config(setup), seq_len=setup.seq_len, global_batch_size=setup.batch, seed=seed
  )
  rows = [next(it) for _ in range(steps)]
  it.close()
  return {k: np.stack([r[k] for r in rows]).astype(np.int32) for k in ("inputs", "targets")}


def eval_batches(setup: Setup, num: int) -> dict[str, np.ndarray]:
  """``num`` held-out batches of the validation split, stacked like :func:`batches`."""
  rows = data_lib.make_eval_batches(
    data_config(setup), seq_len=setup.seq_len, batch_size=setup.batch, num_batches=num
  )
  return {k: np.stack([r[k] for r in rows]).astype(np.int32) for k in ("inputs", "targets")}


def init(mcfg: model_lib.ModelConfig, seed: int):
  """(graphdef, params as a pure dict) of a fresh model."""
  model = model_lib.build(mcfg, seed=seed)
  graphdef, state = nnx.split(model, nnx.Param)
  return graphdef, nnx.to_pure_dict(state)


def train(mcfg, opt, data, *, seed: int = 0, params=None):
  """Trains on ``data`` (one step per leading index); returns (losses[steps], params, graphdef).

  ``params`` overrides the fresh init (e.g. a grown model). Losses are the
  training losses before each update, in float64 numpy.
  """
  steps = int(data["inputs"].shape[0])
  graphdef, fresh = init(mcfg, seed)
  params = fresh if params is None else params
  tx = optim.make_optimizer(opt, steps, model=mcfg)
  losses, params, _ = run_steps(graphdef, tx, params, tx.init(params), data)
  return losses, params, graphdef


def scan_steps(graphdef, tx, params, opt_state, data):
  """(losses, params, opt_state) after one update per batch of ``data`` (traceable)."""

  def step(carry, batch):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(lambda p: model_lib.loss_fn(graphdef, p, batch))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), data)
  return losses, params, opt_state


def run_steps(graphdef, tx, params, opt_state, data):
  """:func:`scan_steps`, jitted, on host data; losses as float64 numpy."""
  scan = jax.jit(lambda p, s, d: scan_steps(graphdef, tx, p, s, d))
  losses, params, opt_state = scan(params, opt_state, jax.tree.map(jnp.asarray, data))
  return np.asarray(losses, np.float64), params, opt_state


def eval_loss(graphdef, params, data) -> float:
  """Mean loss over the stacked batches of ``data`` (nan if not finite)."""
  loss = jax.jit(lambda p, d: jax.lax.map(lambda b: model_lib.loss_fn(graphdef, p, b), d).mean())(
    params, jax.tree.map(jnp.asarray, data)
  )
  loss = float(loss)
  return loss if math.isfinite(loss) else float("nan")


def fit_slope(widths, values) -> float:
  """Least-squares slope of log(value) vs log(width); nan unless every value is > 0."""
  values = np.asarray(values, float)
  if not np.all(values > 0):  # e.g. zero-initialised logits at init
    return float("nan")
  x, y = np.log(np.asarray(widths, float)), np.log(values)
  return float(np.polyfit(x, y, 1)[0])


def read_records(path: str, fields: dict) -> list[dict]:
  """The records of ``path`` (a CSV with a header, or JSON Lines if it ends in ``.jsonl``), each
  with ``fields`` (name -> type) converted: what a ``--replot`` draws from. ValueError naming the
  file when it is missing, empty or malformed (a bad line, a missing field, a value that does
  not convert), raised before anything is written."""
  if not os.path.isfile(path):
    raise ValueError(f"{path}: no such file (--replot draws from it: run without --replot first)")
  if path.endswith(".jsonl"):
    rows, malformed = metrics.read_jsonl_lines(path)
    if malformed:
      raise ValueError(f"{path}: line {malformed[0][0]} is not a JSON object")
  else:
    with open(path, newline="") as f:
      rows = list(csv.DictReader(f))
  if not rows:
    raise ValueError(f"{path}: no record")
  out = []
  for number, row in enumerate(rows, 1):
    missing = [k for k in fields if row.get(k) is None]
    if missing:
      raise ValueError(f"{path}: record {number} has no {', '.join(missing)}")
    try:
      out.append({**row, **{k: kind(row[k]) for k, kind in fields.items()}})
    except (TypeError, ValueError) as e:
      raise ValueError(f"{path}: record {number} is malformed ({e})") from None
  return out
