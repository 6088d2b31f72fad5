"""Builds the optimizer from a config: clip -> AdamW(schedule) -> accumulation -> averaging.

The transform, outermost first::

    with_averaging(                      # one average per rule (fp32, sharded like params)
     apply_if_finite(                    # only if skip_nonfinite_updates > 0
      MultiSteps(                        # only if grad_accum > 1
        chain(clip_by_global_norm(clip),
              inject_hyperparams(adamw)(learning_rate=schedule, ...),   # or, per group:
              scale_by_multipliers(lr_multipliers))),   # per-module LR multipliers (regex)
      max_consecutive_errors=skip_nonfinite_updates),
      rules)

Per-group optimizer (muP, per-module LR). When ``model.parameterization`` is
``mup``, ``opt.per_group`` is set or any ``opt.module_lr`` differs from 1, the
AdamW step is replaced by

    partition({group: chain(inject_hyperparams(adamw)(learning_rate=schedule,
                                                      eps=eps_g, weight_decay=wd_g),
                            scale(lr_mult_g))},
              labels)          # group of each parameter, from its path (param_group)

with groups ``embedding, attention, mlp, norm, readout``. Every group sees the
same schedule (so :func:`current_lr` reads the global LR); its effective LR
is ``lr_mult_g * schedule``. ``lr_mult_g = opt.module_lr[g]`` times, under muP
for Adam (Tensor Programs V, Yang et al. 2022, arXiv 2203.03466, Table 3), ``1 / r`` for
the hidden groups (attention, mlp; r = d_model / base_width) and 1 for the
vector-like groups (embedding, norm) and the readout (whose 1/r is the output
multiplier of the model). Under muP the hidden groups' decoupled weight decay is
``weight_decay * r``, so the decay per step ``lr_mult_g * lr * wd_g`` does not
depend on the width. ``eps_g`` and ``wd_g`` live in each group's
``inject_hyperparams`` state (so a checkpoint carries them; see
:mod:`anytime.lm.growth`). Standard runs without module multipliers keep the
single-AdamW transform above, bit for bit.

``inject_hyperparams`` keeps the learning rate of the latest update in the
state, where :func:`current_lr` reads it. The config section is ``opt`` of
configs/lm.py; every field is validated eagerly by :func:`validate`, with a
message naming the field, its value and what is allowed.
"""

from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp
import optax

from anytime import averaging, schedules

SCHEDULES = (
  "constant",
  "inverse_sqrt",
  "polynomial",
  "cosine",
  "wsd",
  "linear_decay",
  "schedule_free",
)
HORIZON_BOUND = ("cosine", "wsd", "linear_decay")
PARAM_GROUPS = ("embedding", "attention", "mlp", "norm", "readout")
HIDDEN_GROUPS = ("attention", "mlp")  # matrix-like: both dimensions grow with the width
_AVERAGE_RE = re.compile(r"^(polyak|pema(?P<gamma>[0-9.]+)|ema(?P<decay>0?\.[0-9]+))$")


def parse_averages(specs) -> dict[str, averaging.AveragingRule]:
  """``("pema25", "ema0.999", "polyak")`` -> {name: rule}.

  ``pemaG``: proportional EMA with gamma G (the paper's EMA-G); ``emaD``: fixed
  decay D; ``polyak``: uniform average.
  """
  if isinstance(specs, str):
    specs = tuple(s for s in specs.split(",") if s)
  rules = {}
  for spec in specs:
    match = _AVERAGE_RE.match(str(spec))
    if match is None:
      raise ValueError(
        f"opt.averages has {spec!r}; allowed: 'polyak', 'pema<gamma>' (e.g. 'pema25'), "
        "'ema<decay>' (e.g. 'ema0.999')."
      )
    try:
      if match["gamma"] is not None:
        rules[spec] = averaging.proportional_ema(float(match["gamma"]))
      elif match["decay"] is not None:
        rules[spec] = averaging.ema(float(match["decay"]))
      else:
        rules[spec] = averaging.polyak()
    except ValueError as e:  # the rule's own range check, named after the config field
      raise ValueError(f"opt.averages has {spec!r}: {e}") from None
  return rules


def parse_multipliers(specs) -> list[tuple[re.Pattern, float]]:
  """``("embed=0.5", "blocks/.*/mlp=2")`` -> [(regex on the param path, multiplier)].

  A parameter's path is its keys joined by "/" (e.g. ``blocks/0/mlp/up/kernel``);
  the first pattern that matches anywhere in it (``re.search``) gives its multiplier.
  """
  out = []
  for spec in specs:
    pattern, sep, value = str(spec).rpartition("=")
    try:
      mult = float(value)
      regex = re.compile(pattern)
    except (ValueError, re.error):
      mult, regex = -1.0, None
    if not sep or not pattern or regex is None or not mult >= 0:
      raise ValueError(
        f"opt.lr_multipliers has {spec!r}; expected 'regex=multiplier' with multiplier >= 0, "
        "e.g. 'embed=0.5'."
      )
    out.append((regex, mult))
  return out


def _path(path) -> str:
  keys = (getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in path)
  return "/".join(str(k) for k in keys)


def scale_by_multipliers(specs) -> optax.GradientTransformation:
  """Multiplies the updates of parameters matching a pattern (see :func:`parse_multipliers`)."""
  rules = parse_multipliers(specs)

  def update_fn(updates, state, params=None):
    del params

    def scale(path, u):
      name = _path(path)
      for regex, mult in rules:
        if regex.search(name):
          return u * jnp.asarray(mult, u.dtype)
      return u

    return jax.tree_util.tree_map_with_path(scale, updates), state

  return optax.GradientTransformation(lambda _: optax.EmptyState(), update_fn)


def param_group(path: str) -> str:
  """The group of a parameter from its path (keys joined by "/", see :func:`_path`).

  ``embed/...`` -> embedding, ``unembed/...`` -> readout, any ``.../scale`` (the
  layer-norm scales, incl. the QK norms) -> norm, ``.../attn/...`` -> attention,
  ``.../mlp/...`` -> mlp.

  >>> [param_group(p) for p in ("embed/embedding", "blocks/0/attn/q_norm/scale",
  ...                           "blocks/1/attn/query/kernel", "blocks/0/mlp/up/kernel")]
  ['embedding', 'norm', 'attention', 'mlp']
  """
  keys = path.split("/")
  if keys[0] == "embed":
    return "embedding"
  if keys[0] == "unembed":
    return "readout"
  if keys[-1] == "scale":
    return "norm"
  if "attn" in keys:
    return "attention"
  if "mlp" in keys:
    return "mlp"
  raise ValueError(f"parameter {path!r} belongs to none of the groups {PARAM_GROUPS}.")


def group_labels(params: Any) -> Any:
  """The tree of :func:`param_group` labels of ``params`` (the labels of ``optax.partition``)."""
  return jax.tree_util.tree_map_with_path(lambda p, _: param_group(_path(p)), params)


def module_lr(opt: Any) -> dict[str, float]:
  """``opt.module_lr`` as {group: multiplier}, validated (missing field: all 1)."""
  given = opt.get("module_lr", None)
  given = dict(given.items()) if given is not None else {}
  unknown = sorted(set(given) - set(PARAM_GROUPS))
  if unknown:
    raise ValueError(f"opt.module_lr has the groups {unknown}; allowed: {PARAM_GROUPS}.")
  out = {}
  for group in PARAM_GROUPS:
    value = given.get(group, 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e30:
      raise ValueError(
        f"opt.module_lr.{group}={value!r} must be a finite number >= 0 (1 = the global LR)."
      )
    out[group] = float(value)
  return out


def uses_groups(opt: Any, model: Any = None) -> bool:
  """Whether the optimizer is per-group (muP, opt.per_group, or a module_lr other than 1)."""
  mup = model is not None and model.parameterization == "mup"
  forced = opt.get("per_group", False)
  if not isinstance(forced, bool):
    raise ValueError(f"opt.per_group={forced!r} must be True or False.")
  return mup or forced or any(v != 1.0 for v in module_lr(opt).values())


def group_hyperparams(opt: Any, model: Any = None) -> dict[str, dict[str, float]]:
  """{group: {"lr_mult", "eps", "weight_decay"}} (see the module docstring).

  ``model`` is the :class:`anytime.lm.model.ModelConfig` (None: standard).
  """
  r = model.width_mult if model is not None and model.parameterization == "mup" else 1.0
  out = {}
  for group, mult in module_lr(opt).items():
    hidden = group in HIDDEN_GROUPS
    out[group] = {
      "lr_mult": mult / r if hidden else mult,
      "eps": float(opt.eps),
      "weight_decay": float(opt.weight_decay) * r if hidden else float(opt.weight_decay),
    }
  return out


def make_schedule(opt: Any, total_steps: int) -> optax.Schedule:
  """The learning-rate schedule of ``opt`` for a run of ``total_steps`` updates.

  Horizon-bound schedules (cosine, wsd, linear_decay) end at
  ``opt.schedule_steps`` if set, else at ``total_steps``.
  """
  name = opt.schedule
  common = dict(warmup_steps=int(opt.warmup_steps), init_value=opt.init_lr_fraction * opt.lr)
  horizon = int(opt.schedule_steps) or int(total_steps)
  final = opt.final_lr_fraction * opt.lr
  if name in ("constant", "schedule_free"):  # Schedule-Free: a constant peak after warmup
    return schedules.constant(opt.lr, **common)
  if name == "inverse_sqrt":
    return schedules.inverse_sqrt(opt.lr, offset=opt.offset, **common)
  if name == "polynomial":
    return schedules.polynomial_decay(opt.lr, opt.exponent, offset=opt.offset, **common)
  if name == "cosine":
    return schedules.cosine(opt.lr, horizon, final_value=final, **common)
  if name == "linear_decay":
    return schedules.linear_decay(opt.lr, horizon, final_value=final, **common)
  if name == "wsd":
    decay = max(1, round(opt.wsd_decay_fraction * horizon))
    return schedules.wsd(
      opt.lr, horizon, decay_steps=decay, shape=opt.wsd_shape, final_value=final, **common
    )
  raise ValueError(f"opt.schedule={name!r} must be one of {SCHEDULES}.")


def validate(opt: Any, total_steps: int, model: Any = None) -> None:
  """Raises ValueError (naming the field) for settings that cannot work.

  ``model``: the ModelConfig the optimizer is for (None: standard).
  """
  if opt.schedule not in SCHEDULES:
    raise ValueError(f"opt.schedule={opt.schedule!r} must be one of {SCHEDULES}.")
  checks = [
    ("lr", opt.lr > 0, "> 0"),
    ("b1", 0 <= opt.b1 < 1, "in [0, 1)"),
    ("b2", 0 <= opt.b2 < 1, "in [0, 1)"),
    ("eps", opt.eps >= 0, ">= 0"),
    ("weight_decay", opt.weight_decay >= 0, ">= 0"),
    ("clip", opt.clip >= 0, ">= 0 (0 disables clipping)"),
    ("warmup_steps", int(opt.warmup_steps) >= 0, ">= 0"),
    ("init_lr_fraction", 0 <= opt.init_lr_fraction <= 1, "in [0, 1]"),
    ("final_lr_fraction", 0 <= opt.final_lr_fraction <= 1, "in [0, 1]"),
  ]
  if opt.schedule in ("inverse_sqrt", "polynomial"):
    checks.append(("offset", opt.offset > 0, "> 0"))
  if opt.schedule == "wsd":
    checks.append(("wsd_decay_fraction", 0 < opt.wsd_decay_fraction <= 1, "in (0, 1]"))
    checks.append(
      ("wsd_shape", opt.wsd_shape in schedules.WSD_SHAPES, f"in {schedules.WSD_SHAPES}")
    )
  for field, ok, allowed in checks:
    if not ok:
      raise ValueError(f"opt.{field}={getattr(opt, field)!r} must be {allowed}.")
  horizon = int(opt.schedule_steps) or int(total_steps)
  if int(opt.warmup_steps) >= horizon:
    raise ValueError(
      f"opt.warmup_steps={opt.warmup_steps} must be shorter than the run "
      f"({horizon} steps); lower it or lengthen the horizon."
    )
  skips = opt.get("skip_nonfinite_updates", 0)
  if isinstance(skips, bool) or not isinstance(skips, int) or skips < 0:
    raise ValueError(
      f"opt.skip_nonfinite_updates={skips!r} must be an integer >= 0 (0 disables the guard; "
      "N skips up to N consecutive non-finite updates)."
    )
  parse_averages(opt.averages)
  parse_multipliers(opt.get("lr_multipliers", ()))
  if uses_groups(opt, model) and opt.schedule == "schedule_free":
    raise ValueError(
      "opt.schedule='schedule_free' keeps one Schedule-Free state; it cannot be combined with "
      "per-group optimization (model.parameterization='mup' or opt.module_lr other than 1)."
    )
  make_schedule(opt, total_steps)  # the schedules validate their own arguments


def make_optimizer(
  opt: Any, total_steps: int, grad_accum: int = 1, model: Any = None
) -> optax.GradientTransformation:
  """The full optimizer of ``opt`` (see the module docstring).

  ``model`` (a :class:`anytime.lm.model.ModelConfig`, or None for standard)
  selects the muP learning-rate and weight-decay rules.
  """
  validate(opt, total_steps, model)
  grouped = uses_groups(opt, model)
  # Schedule-Free AdamW (Defazio et al. 2024) replaces AdamW's momentum by
  # interpolation + averaging; its warmup is ours (from init_lr_fraction), so
  # its own warmup_steps stays None. Evaluate it at schedule_free_eval_params.
  base = optax.contrib.schedule_free_adamw if opt.schedule == "schedule_free" else optax.adamw
  schedule = make_schedule(opt, total_steps)

  def adamw(eps, weight_decay):
    return optax.inject_hyperparams(base)(
      learning_rate=schedule, b1=opt.b1, b2=opt.b2, eps=eps, weight_decay=weight_decay
    )

  parts = [optax.clip_by_global_norm(opt.clip)] if opt.clip > 0 else []
  if grouped:
    per_group = {
      group: optax.chain(adamw(h["eps"], h["weight_decay"]), optax.scale(h["lr_mult"]))
      for group, h in group_hyperparams(opt, model).items()
    }
    parts.append(optax.partition(per_group, group_labels))
  else:
    parts.append(adamw(opt.eps, opt.weight_decay))
  if opt.get("lr_multipliers", ()):
    parts.append(scale_by_multipliers(opt.lr_multipliers))
  tx = optax.chain(*parts)
  if grad_accum > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=grad_accum).gradient_transformation()
  skips = int(opt.get("skip_nonfinite_updates", 0))
  if skips:
    # Inside with_averaging: a skipped update (ApplyIfFiniteState.last_finite False)
    # leaves params and every average untouched (averaging._real_update_flag).
    tx = optax.apply_if_finite(tx, max_consecutive_errors=skips)
  rules = parse_averages(opt.averages)
  if not rules:
    return tx
  return averaging.with_averaging(tx, rules, dtype=jnp.dtype(opt.averages_dtype))


def current_lr(opt_state: Any) -> jax.Array:
  """The (global) learning rate of the latest update, read from the inject_hyperparams state.

  Per-group optimizers share the schedule, so the first group's state holds it
  (the group multipliers are applied after AdamW, see the module docstring).
  """
  kinds = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)
  is_hp = lambda x: isinstance(x, kinds)
  for s in jax.tree.leaves(opt_state, is_leaf=is_hp):
    if is_hp(s):
      return s.hyperparams["learning_rate"]
  raise ValueError("opt_state holds no InjectHyperparamsState.")


def nonfinite_skips(opt_state: Any) -> dict[str, jax.Array] | None:
  """{"skipped": this update was skipped, "skips": total skipped} of apply_if_finite, or None."""
  kind = optax.ApplyIfFiniteState
  is_af = lambda x: isinstance(x, kind)
  found = [s for s in jax.tree.leaves(opt_state, is_leaf=is_af) if is_af(s)]
  if not found:
    return None
  return {"skipped": jnp.logical_not(found[0].last_finite), "skips": found[0].total_notfinite}


def schedule_free_eval_params(opt_state: Any, params: Any) -> Any | None:
  """Schedule-Free's evaluation point x = (y - (1 - b1) z) / b1, or None without Schedule-Free.

  Finds the ``ScheduleFreeState`` anywhere in ``opt_state`` (under
  ``inject_hyperparams``, ``MultiSteps`` or ``with_averaging``); ``params`` is
  the training iterate y.
  """
  kind = optax.contrib.ScheduleFreeState
  is_sf = lambda x: isinstance(x, kind)
  found = [s for s in jax.tree.leaves(opt_state, is_leaf=is_sf) if is_sf(s)]
  if not found:
    return None
  return optax.contrib.schedule_free_eval_params(found[0], params)
