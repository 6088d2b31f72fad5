"""Weight averaging: averaging rules and the Optax transform that applies them.

An averaging rule maps ``k = 1, 2, ...`` (the number of parameter updates so
far) to ``c_k`` in ``(0, 1]``, the weight given to the newest iterate:

    avg_0 = w_0,        avg_k = (1 - c_k) * avg_{k-1} + c_k * w_k.

* :func:`polyak`: ``c_k = 1/k``, the uniform average of ``w_1 .. w_k``.
* :func:`ema`: ``c_k = 1 - decay``, a fixed half-life of ``ln 2 / -ln(decay)`` steps.
* :func:`proportional_ema`: ``c_k = 1 - 0.5**(gamma / (k + 1))``, an EMA whose
  half-life ``(k + 1) / gamma`` grows with training, the "EMA-gamma" of
  Meterez et al. (2026): it always averages over the last ~1/gamma fraction of
  the run, so it needs no horizon.

The rules are pure functions of ``k``: NumPy in, NumPy out (float64 for integer
``k``), JAX in, JAX out (jit- and vmap-safe), so the same objects drive the
Optax transform and the float64 risk recursions of :mod:`theory`.

:func:`with_averaging` wraps any ``GradientTransformation`` and keeps one
average of the parameters per named rule in its state (float32 by default,
whatever the parameter dtype); :func:`averaged_params` finds those averages
anywhere inside a nested optimizer state.

References:
  Polyak, Juditsky. "Acceleration of stochastic approximation by averaging",
  SIAM J. Control Optim. (1992).
  Meterez, Nair, Morwani, Pehlevan, Kakade. arXiv 2602.03702 (2026).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
  "AveragingRule",
  "AveragingState",
  "Ema",
  "Polyak",
  "ProportionalEma",
  "averaged_params",
  "ema",
  "polyak",
  "proportional_ema",
  "with_averaging",
]

# A rule: k (updates so far, >= 1) -> c_k in (0, 1].
AveragingRule = Callable[[Any], Any]


def _as_float(k):
  """k as a floating array, and the array module to compute with.

  NumPy input (or a Python number) stays NumPy, in float64 unless it is
  already floating: :mod:`theory` runs its recursions in float64 without
  having to enable x64 in JAX. Anything else (JAX arrays, tracers) goes
  through ``jax.numpy`` in its default float dtype.
  """
  if isinstance(k, np.ndarray | np.number | int | float):
    k = np.asarray(k)
    return (k if np.issubdtype(k.dtype, np.floating) else k.astype(np.float64)), np
  k = jnp.asarray(k)
  if not jnp.issubdtype(k.dtype, jnp.floating):
    k = k.astype(jnp.result_type(float))
  return k, jnp


@dataclasses.dataclass(frozen=True)
class Polyak:
  """Uniform (Polyak-Ruppert) averaging: ``c_k = 1 / k``."""

  def __call__(self, k):
    k, _ = _as_float(k)
    return 1.0 / k


@dataclasses.dataclass(frozen=True)
class Ema:
  """Exponential moving average with a fixed decay: ``c_k = 1 - decay``."""

  decay: float

  def __call__(self, k):
    k, xp = _as_float(k)
    return xp.full_like(k, 1.0 - self.decay)


@dataclasses.dataclass(frozen=True)
class ProportionalEma:
  """EMA with half-life ``(k + 1) / gamma``: ``c_k = 1 - 0.5**(gamma / (k + 1))``."""

  gamma: float

  def __call__(self, k):
    k, xp = _as_float(k)
    # 1 - 2**-x computed as -expm1(-x ln 2): exact for the tiny x of long runs.
    return -xp.expm1(-self.gamma * math.log(2.0) / (k + 1.0))


def polyak() -> Polyak:
  """Uniform average of all iterates since the first update, ``c_k = 1/k``.

  Example:
    >>> import anytime
    >>> [float(anytime.polyak()(k)) for k in (1, 2, 4)]
    [1.0, 0.5, 0.25]
  """
  return Polyak()


def ema(decay: float) -> Ema:
  """Fixed-decay EMA, ``c_k = 1 - decay`` with ``decay`` in ``[0, 1)``.

  Example:
    >>> import anytime
    >>> round(float(anytime.ema(0.99)(10)), 6)
    0.01
  """
  if isinstance(decay, bool) or not isinstance(decay, int | float):
    raise ValueError(f"decay={decay!r} must be a real number in [0, 1).")
  if not (math.isfinite(decay) and 0.0 <= decay < 1.0):
    raise ValueError(f"decay={decay!r} must be in [0, 1).")
  return Ema(float(decay))


def proportional_ema(gamma: float) -> ProportionalEma:
  r"""The paper's EMA-gamma: ``c_k = 1 - 0.5**(gamma / (k + 1))``, ``gamma > 0``.

  The half-life after ``k`` updates is ``(k + 1) / gamma`` steps, so the average
  covers the last ~``1/gamma`` fraction of training at every step. For large
  ``k``, ``c_k ~ gamma ln2 / k``: Polyak averaging over the tail. The reference
  paper sweeps gamma in {6.25, 12.5, 25, 50, 100} and reports EMA-25.

  Example:
    >>> import anytime
    >>> round(float(anytime.proportional_ema(25.0)(24)), 6)
    0.5
  """
  if isinstance(gamma, bool) or not isinstance(gamma, int | float):
    raise ValueError(f"gamma={gamma!r} must be a real number > 0.")
  if not (math.isfinite(gamma) and gamma > 0.0):
    raise ValueError(f"gamma={gamma!r} must be finite and > 0.")
  return ProportionalEma(float(gamma))


# ----------------------------------------------------------------------------
# The Optax transform.


class AveragingState(NamedTuple):
  """State of :func:`with_averaging`.

  Attributes:
    count: number of real parameter updates averaged so far (k), int32.
    averages: ``{rule name: params-like tree}`` in the averaging dtype.
    inner_state: the wrapped transformation's state.
  """

  count: jax.Array
  averages: dict[str, Any]
  inner_state: Any


def _real_update_flag(old_inner: Any, new_inner: Any) -> jax.Array:
  """Whether the wrapped transform really moved the parameters this call.

  Optax wrappers that can emit a zero update without it being a step are
  recognised by their state: ``MultiSteps`` (accumulation micro-steps leave
  ``gradient_step`` unchanged) and ``apply_if_finite`` (a skipped non-finite
  update sets ``last_finite`` to False). Averaging such a non-step would count
  the same iterate twice, so the averages advance only on real updates.
  """
  kinds = (optax.MultiStepsState, optax.ApplyIfFiniteState)
  is_kind = lambda x: isinstance(x, kinds)
  olds = [s for s in jax.tree.leaves(old_inner, is_leaf=is_kind) if is_kind(s)]
  news = [s for s in jax.tree.leaves(new_inner, is_leaf=is_kind) if is_kind(s)]
  flag = jnp.asarray(True)
  for old, new in zip(olds, news, strict=True):
    if isinstance(new, optax.MultiStepsState):
      flag &= new.gradient_step != old.gradient_step
    else:
      flag &= jnp.asarray(new.last_finite, bool)
  return flag


def _validate_rules(rules: Mapping[str, AveragingRule]) -> dict[str, AveragingRule]:
  if not isinstance(rules, Mapping) or not rules:
    raise ValueError(
      f"rules={rules!r} must be a non-empty mapping from names to averaging rules, "
      "e.g. {'ema25': anytime.proportional_ema(25.0)}."
    )
  for name, rule in rules.items():
    if not isinstance(name, str) or not name:
      raise ValueError(f"rules has the key {name!r}; keys must be non-empty strings.")
    if not callable(rule):
      raise ValueError(f"rules[{name!r}]={rule!r} must be callable (k -> c_k).")
  return dict(rules)


def _is_float(x) -> bool:
  return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def with_averaging(
  inner: optax.GradientTransformation,
  rules: Mapping[str, AveragingRule],
  dtype: Any = jnp.float32,
) -> optax.GradientTransformation:
  r"""Wraps ``inner`` and keeps one running average of the parameters per rule.

  On each call the wrapped transformation computes its updates ``u``; the new
  iterate is ``w_k = optax.apply_updates(params, u)`` (rounded to the parameter
  dtype, exactly what the training loop will hold) and for every rule

  .. math::
    \bar w_k = \bar w_{k-1} + c_k (w_k - \bar w_{k-1}), \qquad \bar w_0 = w_0,

  all rules in one ``tree_map`` over the parameters (XLA:CPU still fuses each
  rule separately: 1.5 read-modify-write passes of memory traffic per rule,
  measured by ``experiments/bench/averaging.py``). Updates pass through unchanged,
  so the training trajectory is that of ``inner``. The averages are stored in
  ``dtype`` (float32 by default, also for bfloat16 parameters) and, being
  elementwise functions of the parameters, get their sharding under ``jit``.
  Whatever the storage dtype, the step count, the weight ``c_k`` and the update
  are computed in at least float32 (in float16, ``k`` overflows and ``1/k``
  underflows past 65,504 updates, freezing the average); only the result is
  rounded to ``dtype``. Leaves that are not floating point (integer counters,
  booleans) are not averaged: each average carries the latest iterate's value
  in the leaf's own dtype (averaging would truncate them silently).

  Place it outermost, or inside ``optax.MultiSteps``; when it wraps
  ``MultiSteps`` or ``apply_if_finite`` it recognises their non-steps and does
  not average them. ``params`` must be passed to ``update``.

  Args:
    inner: the optimizer whose iterates are averaged.
    rules: ``{name: rule}``, each rule ``k -> c_k`` (see :func:`polyak`,
      :func:`ema`, :func:`proportional_ema`).
    dtype: dtype of the stored averages.

  Returns:
    A ``GradientTransformation`` with state :class:`AveragingState`.

  Example:
    >>> import jax.numpy as jnp, optax, anytime
    >>> tx = anytime.with_averaging(optax.sgd(0.5), {"polyak": anytime.polyak()})
    >>> params = {"w": jnp.array([2.0])}
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   updates, state = tx.update({"w": jnp.array([1.0])}, state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> float(anytime.averaged_params(state)["polyak"]["w"][0])  # mean of 1.5, 1.0
    1.25
  """
  rules = _validate_rules(rules)
  dtype = jnp.dtype(dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"dtype={dtype} must be a floating dtype, e.g. float32.")
  compute_dtype = jnp.promote_types(dtype, jnp.float32)  # float32, or float64 if asked

  def init_fn(params):
    # copy=True: a float32 param would otherwise share its buffer with the
    # average, and donating params and state together would donate it twice.
    def copy(p):
      return jnp.array(p, dtype=dtype if _is_float(p) else None, copy=True)

    averages = {name: jax.tree.map(copy, params) for name in rules}
    return AveragingState(
      count=jnp.zeros([], jnp.int32), averages=averages, inner_state=inner.init(params)
    )

  def update_fn(updates, state, params=None, **extra_args):
    if params is None:
      raise ValueError("with_averaging needs params: call tx.update(updates, state, params).")
    updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
    real = _real_update_flag(state.inner_state, inner_state)
    count = state.count + real.astype(jnp.int32)
    k = jnp.maximum(count, 1).astype(compute_dtype)
    # c = 0 on a non-step leaves every average as it was.
    weights = [jnp.where(real, rule(k), 0.0).astype(compute_dtype) for rule in rules.values()]
    new_params = optax.apply_updates(params, updates)
    names = list(rules)

    def average_leaf(w, *avgs):
      if not _is_float(w):  # carried, not averaged (see the docstring)
        return tuple(jnp.where(real, w, a) for a in avgs)
      w = w.astype(compute_dtype)
      out = []
      for a, c in zip(avgs, weights, strict=True):
        a = a.astype(compute_dtype)
        out.append((a + c * (w - a)).astype(dtype))
      return tuple(out)

    per_leaf = jax.tree.map(average_leaf, new_params, *(state.averages[n] for n in names))
    # Unzip the per-leaf tuples into one tree per rule.
    treedef = jax.tree.structure(new_params)
    leaves = treedef.flatten_up_to(per_leaf)
    averages = {
      name: treedef.unflatten([leaf[i] for leaf in leaves]) for i, name in enumerate(names)
    }
    return updates, AveragingState(count=count, averages=averages, inner_state=inner_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def averaged_params(opt_state: Any) -> dict[str, Any]:
  """Returns ``{rule name: averaged params}`` found anywhere inside ``opt_state``.

  Searches nested Optax states (``chain`` tuples, ``inject_hyperparams``,
  ``MultiSteps``, ``partition``, ...) for :class:`AveragingState`. Raises
  ``ValueError`` if there is none or two of them use the same rule name.
  """
  is_avg = lambda x: isinstance(x, AveragingState)
  found = [s for s in jax.tree.leaves(opt_state, is_leaf=is_avg) if is_avg(s)]
  if not found:
    raise ValueError(
      "opt_state holds no AveragingState: wrap the optimizer with anytime.with_averaging."
    )
  merged: dict[str, Any] = {}
  for state in found:
    for name, avg in state.averages.items():
      if name in merged:
        raise ValueError(f"Two averaging states both define the rule name {name!r}.")
      merged[name] = avg
  return merged
