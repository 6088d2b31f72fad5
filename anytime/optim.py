"""Builds the optimizer from a config: clip -> AdamW(schedule) -> accumulation -> averaging.

The transform, outermost first::

    with_averaging(                      # one average per rule (fp32, sharded like params)
     apply_if_finite(                    # only if skip_nonfinite_updates > 0
      MultiSteps(                        # only if grad_accum > 1
        chain(clip_by_global_norm(clip),
              inject_hyperparams(adamw)(learning_rate=schedule, ...),
              scale_by_multipliers(lr_multipliers))),   # per-module LR multipliers
      max_consecutive_errors=skip_nonfinite_updates),
      rules)

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
    if match["gamma"] is not None:
      rules[spec] = averaging.proportional_ema(float(match["gamma"]))
    elif match["decay"] is not None:
      rules[spec] = averaging.ema(float(match["decay"]))
    else:
      rules[spec] = averaging.polyak()
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


def validate(opt: Any, total_steps: int) -> None:
  """Raises ValueError (naming the field) for settings that cannot work."""
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
  make_schedule(opt, total_steps)  # the schedules validate their own arguments


def make_optimizer(opt: Any, total_steps: int, grad_accum: int = 1) -> optax.GradientTransformation:
  """The full optimizer of ``opt`` (see the module docstring)."""
  validate(opt, total_steps)
  # Schedule-Free AdamW (Defazio et al. 2024) replaces AdamW's momentum by
  # interpolation + averaging; its warmup is ours (from init_lr_fraction), so
  # its own warmup_steps stays None. Evaluate it at schedule_free_eval_params.
  base = optax.contrib.schedule_free_adamw if opt.schedule == "schedule_free" else optax.adamw
  adamw = optax.inject_hyperparams(base)(
    learning_rate=make_schedule(opt, total_steps),
    b1=opt.b1,
    b2=opt.b2,
    eps=opt.eps,
    weight_decay=opt.weight_decay,
  )
  parts = [optax.clip_by_global_norm(opt.clip)] if opt.clip > 0 else []
  parts.append(adamw)
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
  """The learning rate of the latest update, read from the inject_hyperparams state."""
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
