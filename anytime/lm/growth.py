r"""Width growth: a checkpoint of width D becomes one of width n D with the same function
and, without noise, the same AdamW training trajectory.

The map (every copy index c = 0 .. n-1 holds the same block; ``tile`` repeats):

* residual stream: x -> [x, ..., x] (n copies). A LayerNorm over n D tiled
  coordinates has the same mean and variance, so its output is the tile of
  the small one; norm scales are tiled (QK norms act on tiled q, k too);
* embedding E (V x D) -> tile(E, (1, n));
* hidden kernels (attention q/k/v/out, MLP up/down; both dimensions scale
  with the width) W -> tile(W, (n, n)) / n: the input is tiled, so each output
  copy sums n equal partial products divided by n. Heads are copied (H -> nH,
  head width K unchanged, so RoPE and the attention scale stay the same);
* readout W_U (D x V): standard -> tile(W_U, (n, 1)) / n; muP, whose output
  multiplier base_width / d_model falls by n -> tile(W_U, (n, 1)).

Each tensor maps as ``Theta = p * tile(theta)`` with ``p`` = 1/n (hidden,
standard readout) or 1. By the copy symmetry the gradient of every block is
``s * tile(g)`` with ``s = 1/n``, except ``s = 1`` for the standard readout.
AdamW's direction ``u = m_hat / (sqrt(v_hat) + eps)`` is then unchanged if

    m -> s tile(m),   v -> s^2 tile(v),   eps -> s eps,

and the update ``-lr (u + wd theta)`` maps like the parameter (times p) if

    lr -> p lr,   wd -> wd / p            (so lr * wd is unchanged).

The LR factors are the optimizer config's (muP's 1/r gives p for the hidden
groups by itself; the standard parameterization needs ``opt.module_lr`` of
attention, mlp and readout times 1/n: :func:`grown_config` sets them); eps and
weight decay live per group in the ``inject_hyperparams`` state of the
per-group optimizer (:mod:`anytime.optim`), which this module rewrites, so
the source must use it (muP, or ``opt.per_group=True``). Averages map like
the parameters. Global-norm clipping is not invariant (the grown gradient
norm differs per group), so exactness needs ``opt.clip=0`` or a clip that
never fires. Optional noise (``noise`` x the tensor's RMS, hidden kernels
only) breaks the copy symmetry afterwards.

Reference for function-preserving growth: Chen, Goodfellow, Shlens 2016,
"Net2Net" (arXiv 1511.05641); here the copies are uniform and the optimizer
state is mapped too.

Command (writes a checkpoint that the trainer starts from with ``init_from``)::

    python -m anytime.lm.growth --src=runs/small --dst=runs/grown --factor=2 [--noise=0.01]

It prints the config overrides of the grown run.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from anytime import optim
from anytime.lm import checkpoint as checkpoint_lib
from anytime.lm import train

TILED = ("embedding", "norm")  # p = 1, grown along their last (width) axis


def _path(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _check_factor(factor) -> int:
  if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
    raise ValueError(f"factor={factor!r} must be an integer >= 1.")
  return factor


def param_rule(group: str, parameterization: str, factor: int) -> tuple[float, float]:
  """(p, s) of a group: Theta = p tile(theta); grown gradient = s tile(grad)."""
  n = float(factor)
  if group in optim.HIDDEN_GROUPS:
    return 1 / n, 1 / n
  if group == "readout":
    return (1 / n, 1.0) if parameterization == "standard" else (1.0, 1 / n)
  return 1.0, 1 / n


def tile(x: np.ndarray, group: str, factor: int) -> np.ndarray:
  """Repeats the width axes of one tensor ``factor`` times (see the module docstring)."""
  x = np.asarray(x)
  if group in TILED:  # embedding (V, D), norm scales (D,)
    reps = (1,) * (x.ndim - 1) + (factor,)
  elif group in optim.HIDDEN_GROUPS:
    reps = (factor, factor)
  elif group == "readout":  # (D, V)
    reps = (factor, 1)
  else:
    raise ValueError(f"group={group!r} must be one of {optim.PARAM_GROUPS}.")
  return np.tile(x, reps)


def grow_params(params: Any, factor: int, parameterization: str) -> Any:
  """The grown params (or an average of params): ``p * tile(theta)`` per tensor."""
  factor = _check_factor(factor)

  def one(path, x):
    group = optim.param_group(_path(path))
    p, _ = param_rule(group, parameterization, factor)
    return (tile(x, group, factor) * np.asarray(p, np.asarray(x).dtype)).astype(np.asarray(x).dtype)

  return jax.tree_util.tree_map_with_path(one, jax.device_get(params))


def grow_state(
  state: dict, like: dict, factor: int, parameterization: str, naive: bool = False
) -> dict:
  """Grows a trainer state ``{"params", "opt_state"}`` to the structure of ``like``.

  ``like`` is the grown model's state (arrays or ShapeDtypeStructs), built by
  the same per-group optimizer. Param-like optimizer leaves are recognised by
  their path ending in a parameter's path: Adam's ``mu`` (times s), ``nu``
  (times s^2), MultiSteps' accumulated gradients (times s), anything else
  (the averages) like the parameters; per-group ``eps`` times s and
  ``weight_decay`` / p; other leaves (counts, learning rates) are copied.
  ``naive=True`` copies moments, eps and weight decay without rescaling (the
  baseline of experiments/mup/growth.py).
  """
  factor = _check_factor(factor)
  state = jax.device_get(state)
  src_flat = {_path(p): x for p, x in jax.tree_util.tree_flatten_with_path(state)[0]}
  dst_leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
  missing = sorted({_path(p) for p, _ in dst_leaves} - set(src_flat))
  if missing:
    raise ValueError(
      f"the source state lacks {missing[:3]}{' ...' if len(missing) > 3 else ''}: source and "
      "grown run must use the same optimizer structure (per-group optimizer: "
      "model.parameterization='mup' or opt.per_group=True; same averages and grad_accum)."
    )
  param_paths = sorted(
    (_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(state["params"])[0]),
    key=len,
    reverse=True,
  )
  out = []
  for path, target in dst_leaves:
    name = _path(path)
    x = np.asarray(src_flat[name])
    param = next((q for q in param_paths if name.endswith("/" + q)), None)
    keys = name.split("/")
    if param is not None:
      group = optim.param_group(param)
      p, s = param_rule(group, parameterization, factor)
      if naive and not name.startswith("params/") and "averages" not in keys:
        p = 1.0
      elif "nu" in keys:
        p = s * s
      elif "mu" in keys or "acc_grads" in keys:
        p = s
      y = tile(x, group, factor) * np.asarray(p, x.dtype)
    elif keys[-1] in ("eps", "weight_decay") and not naive:
      group = next((k for k in keys if k in optim.PARAM_GROUPS), None)
      if group is None:
        raise ValueError(
          f"{name}: one eps / weight decay for all parameters cannot be rescaled per group; "
          "the source must use the per-group optimizer (muP or opt.per_group=True)."
        )
      p, s = param_rule(group, parameterization, factor)
      y = x * np.asarray(s if keys[-1] == "eps" else 1 / p, x.dtype)
    else:
      y = x
    if tuple(np.shape(y)) != tuple(target.shape):
      raise ValueError(f"{name}: grown shape {np.shape(y)} != the grown model's {target.shape}.")
    out.append(np.asarray(y, dtype=target.dtype))
  return jax.tree_util.tree_unflatten(treedef, out)


def add_noise(state: dict, noise: float, seed: int) -> dict:
  """Adds N(0, (noise * rms(W))^2) to every hidden kernel of ``state["params"]`` (not averages)."""
  if not noise >= 0:
    raise ValueError(f"noise={noise!r} must be >= 0 (a fraction of each kernel's RMS).")
  if noise == 0:
    return state
  rng = np.random.default_rng(seed)

  def one(path, x):
    if optim.param_group(_path(path)) not in optim.HIDDEN_GROUPS:
      return x
    x = np.asarray(x)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return (x + noise * rms * rng.standard_normal(x.shape)).astype(x.dtype)

  return {**state, "params": jax.tree_util.tree_map_with_path(one, state["params"])}


def grown_config(cfg: ml_collections.ConfigDict, factor: int) -> ml_collections.ConfigDict:
  """The config of the grown run: widths x factor, heads x factor, LR factors of the groups.

  muP keeps ``base_width`` (its 1/r is the hidden groups' LR factor) and pins
  ``base_head_dim`` (the head width does not change); standard multiplies the
  attention, mlp and readout ``opt.module_lr`` by 1/factor.
  """
  factor = _check_factor(factor)
  out = copy.deepcopy(cfg)
  m = out.model
  if m.parameterization == "mup":
    base = int(m.base_width) or int(m.d_model)
    m.base_head_dim = int(m.base_head_dim) or max(1, base // int(m.num_heads))
    m.base_width = base
  else:
    for group in ("attention", "mlp", "readout"):
      out.opt.module_lr[group] = float(out.opt.module_lr[group]) / factor
  m.d_model = int(m.d_model) * factor
  m.mlp_dim = int(m.mlp_dim) * factor
  m.num_heads = int(m.num_heads) * factor
  out.opt.per_group = True
  return out


def overrides(src: ml_collections.ConfigDict, dst: ml_collections.ConfigDict) -> list[str]:
  """``--config.FIELD=VALUE`` flags that turn ``src``'s config into ``dst``'s."""
  flat_src, flat_dst = _flatten(src.to_dict()), _flatten(dst.to_dict())
  return [f"--config.{k}={v!r}" for k, v in flat_dst.items() if flat_src.get(k) != v]


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = v
  return out


def load_config(run_dir: str) -> ml_collections.ConfigDict:
  """The config.json a training run wrote in its workdir (lists back to tuples)."""
  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    raise ValueError(f"--src={run_dir!r} holds no config.json (not a training run's workdir).")
  with open(path) as f:
    raw = json.load(f)

  def fix(v):
    if isinstance(v, dict):
      return {k: fix(x) for k, x in v.items()}
    return tuple(fix(x) for x in v) if isinstance(v, list) else v

  return ml_collections.ConfigDict(fix(raw))


def grow_checkpoint(
  src_dir: str, dst_dir: str, factor: int, *, step: int = -1, noise: float = 0.0, seed: int = 0
) -> ml_collections.ConfigDict:
  """Grows run ``src_dir``'s checkpoint ``step`` into ``dst_dir``; returns the grown config."""
  factor = _check_factor(factor)
  if os.path.isdir(os.path.join(dst_dir, "checkpoints")):
    raise ValueError(f"--dst={dst_dir!r} already holds checkpoints/; choose a new directory.")
  src_cfg = load_config(src_dir)
  dst_cfg = grown_config(src_cfg, factor)
  trainers = []
  for cfg in (src_cfg, dst_cfg):
    mcfg, plan, mesh = train.validate(cfg)
    trainers.append(train.Trainer(cfg, mcfg, plan, mesh))
  src, dst = trainers
  reader = checkpoint_lib.Checkpointer(
    os.path.join(src_dir, "checkpoints"), read_only=True, async_save=False
  )
  state, data_state, meta = reader.restore(step, src.abstract, src.shardings)
  grown = grow_state(state, dst.abstract, factor, src.mcfg.parameterization)
  grown = add_noise(grown, noise, seed)
  grown = jax.device_put(grown, dst.shardings)
  os.makedirs(dst_dir, exist_ok=True)
  writer = checkpoint_lib.Checkpointer(os.path.join(dst_dir, "checkpoints"), async_save=False)
  writer.save(int(meta["step"]), grown, data_state, {**meta, "grown_from": src_dir})
  writer.close()
  with open(os.path.join(dst_dir, "config.json"), "w") as f:
    json.dump(dst_cfg.to_dict(), f, indent=1, default=str)
  return dst_cfg


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description="Grow a run's checkpoint n x in width.")
  parser.add_argument("--src", required=True, help="workdir of the run to grow")
  parser.add_argument("--dst", required=True, help="new directory for the grown checkpoint")
  parser.add_argument("--factor", type=int, default=2)
  parser.add_argument("--step", type=int, default=-1, help="checkpoint step; -1 = latest")
  parser.add_argument("--noise", type=float, default=0.0, help="x RMS, hidden kernels only")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  dst_cfg = grow_checkpoint(
    args.src, args.dst, args.factor, step=args.step, noise=args.noise, seed=args.seed
  )
  flags = overrides(load_config(args.src), dst_cfg)
  print(f"grown checkpoint in {args.dst}/checkpoints; train it with the source's config plus")
  print(" ".join([f"--config.init_from={args.dst}", *flags]))


if __name__ == "__main__":
  main()
