"""Learning-rate schedules: horizon-free (anytime) and horizon-bound baselines.

Every factory returns an ``optax.Schedule``: a pure function of Optax's update
count (0 for the first update) returning the step size as a floating array.
All of them share one linear warmup,

    lr(t) = init + (peak - init) * t / warmup_steps        for t < warmup_steps,

with ``init`` defaulting to ``0.1 * peak`` as in Meterez et al. (2026), and then
apply their own decay to ``tau = t - warmup_steps``.

Horizon-free schedules (:func:`polynomial_decay`, :func:`constant`,
:func:`inverse_sqrt`) never look at a total step count: evaluated at any step
they are the same function, which is what lets a single run, with weight
averaging, be evaluated at every horizon. Horizon-bound schedules
(:func:`cosine`, :func:`wsd`, :func:`linear_decay`) need ``total_steps`` in
advance and hold ``final_value`` after it.

The schedules are jit- and vmap-safe (no Python control flow on the count),
compute in the default floating dtype (float64 under ``jax_enable_x64``), and
subtract the warmup in the count's integer type before converting, so int32
counts up to ``2**31 - 1`` neither overflow nor lose the warmup offset.
Arguments are validated eagerly: a bad one raises ``ValueError`` naming the
argument, its value and the allowed range.

References:
  Meterez, Nair, Morwani, Pehlevan, Kakade. "Anytime pretraining: horizon-free
  learning-rate schedules with weight averaging", arXiv 2602.03702 (2026).
  Hu et al. "MiniCPM" (WSD), arXiv 2404.06395 (2024).
  Hägele et al. "Scaling laws and compute-optimal training beyond fixed
  training durations" (1-sqrt cooldown), arXiv 2405.18392 (2024).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

__all__ = [
  "WSD_SHAPES",
  "constant",
  "cosine",
  "inverse_sqrt",
  "linear_decay",
  "polynomial_decay",
  "wsd",
]

WSD_SHAPES = ("linear", "sqrt", "cosine")

# The largest count Optax's int32 step counter can hold.
_INT32_MAX = 2**31 - 1


# ----------------------------------------------------------------------------
# Validation helpers: each names the argument, the value and what is allowed.


def _is_traced(value: Any) -> bool:
  return isinstance(value, jax.core.Tracer)


def _real(name: str, value: Any) -> float | None:
  """Returns ``value`` as a float, or None if it is traced (cannot check)."""
  if _is_traced(value):
    return None
  if isinstance(value, bool):
    raise ValueError(f"{name}={value!r} must be a real number, not a bool.")
  try:
    number = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{name}={value!r} must be a real number.") from None
  if not math.isfinite(number):
    raise ValueError(f"{name}={value!r} must be finite.")
  return number


def _positive(name: str, value: Any) -> None:
  number = _real(name, value)
  if number is not None and number <= 0:
    raise ValueError(f"{name}={value!r} must be > 0.")


def _step_count(name: str, value: Any, *, minimum: int) -> int:
  """Validates a Python integer step count in [minimum, 2**31 - 1]."""
  if isinstance(value, bool) or not isinstance(value, int | jnp.integer):
    # Accept integral floats like 1e4 but nothing fractional.
    if isinstance(value, float) and value.is_integer():
      value = int(value)
    else:
      raise ValueError(f"{name}={value!r} must be an integer in [{minimum}, {_INT32_MAX}].")
  value = int(value)
  if not minimum <= value <= _INT32_MAX:
    raise ValueError(f"{name}={value} must be an integer in [{minimum}, {_INT32_MAX}].")
  return value


def _resolve_init(peak_value: Any, init_value: Any) -> Any:
  """Default warmup start is 0.1 x peak; an explicit one must lie in [0, peak]."""
  if init_value is None:
    return 0.1 * peak_value
  init = _real("init_value", init_value)
  peak = _real("peak_value", peak_value)
  if init is not None and peak is not None and not 0.0 <= init <= peak:
    raise ValueError(f"init_value={init_value!r} must be in [0, peak_value={peak_value!r}].")
  return init_value


def _final_in_range(final_value: Any, peak_value: Any) -> None:
  final = _real("final_value", final_value)
  peak = _real("peak_value", peak_value)
  if final is not None and peak is not None and not 0.0 <= final <= peak:
    raise ValueError(f"final_value={final_value!r} must be in [0, peak_value={peak_value!r}].")


# ----------------------------------------------------------------------------
# Shared arithmetic.


def _float_dtype():
  """float64 when x64 is enabled, else float32."""
  return jnp.result_type(float)


def _steps_after(count: Any, start: int):
  """Returns ``(count < start, max(count - start, 0))``, the latter as a float.

  The subtraction happens in the count's own integer type when it has one: both
  operands are non-negative, so it cannot overflow, and it is exact.
  """
  count = jnp.asarray(count)
  before = count < start
  if jnp.issubdtype(count.dtype, jnp.integer):
    start_arr = jnp.asarray(start, dtype=count.dtype)
    after = jnp.where(before, jnp.zeros_like(count), count - start_arr)
    return before, after.astype(_float_dtype())
  count = count.astype(_float_dtype())
  return before, jnp.maximum(count - start, 0.0)


def _with_warmup(decayed_fn, peak_value, warmup_steps: int, init_value):
  """Wraps ``decayed_fn(tau)`` (tau = steps since warmup ended) with warmup."""

  def schedule(count):
    in_warmup, tau = _steps_after(count, warmup_steps)
    value = decayed_fn(tau)
    if warmup_steps == 0:
      return value
    _, t = _steps_after(count, 0)
    frac = t / warmup_steps
    warm = init_value + (peak_value - init_value) * frac
    return jnp.where(in_warmup, warm, value)

  return schedule


def _validate_common(peak_value, warmup_steps, init_value):
  _positive("peak_value", peak_value)
  warmup_steps = _step_count("warmup_steps", warmup_steps, minimum=0)
  init_value = _resolve_init(peak_value, init_value)
  return warmup_steps, init_value


# ----------------------------------------------------------------------------
# Horizon-free schedules.


def polynomial_decay(
  peak_value: float,
  exponent: float,
  *,
  offset: float,
  warmup_steps: int = 0,
  init_value: float | None = None,
) -> optax.Schedule:
  r"""Horizon-free polynomial decay ``peak * (offset / (tau + offset))**exponent``.

  With ``tau = count - warmup_steps`` after a linear warmup,

  .. math::
    \eta(t) = \eta_{\rm peak} \left(\frac{o}{t - t_w + o}\right)^{\gamma},
    \qquad t \ge t_w,

  so the step size equals ``peak_value`` when warmup ends and decays like
  ``t**-exponent`` once ``t >> offset``. ``exponent = 0`` is the constant
  schedule and ``exponent = 1/2`` the inverse square root; in linear regression
  under source/capacity conditions the best horizon-free exponent lies in
  ``[0, 1)`` (Meterez et al. 2026, Theorem 1).

  Args:
    peak_value: step size at the end of warmup; > 0.
    exponent: decay exponent gamma; >= 0.
    offset: steps over which the decay is gentle; > 0. The paper's best
      inverse-sqrt offset for its 150M model is 51,200.
    warmup_steps: length of the linear warmup; >= 0.
    init_value: step size at count 0; default ``0.1 * peak_value``.

  Returns:
    An ``optax.Schedule``.

  Example:
    >>> import anytime
    >>> lr = anytime.schedules.polynomial_decay(1.0, 0.5, offset=100.0)
    >>> round(float(lr(300)), 6)
    0.5
  """
  warmup_steps, init_value = _validate_common(peak_value, warmup_steps, init_value)
  exp = _real("exponent", exponent)
  if exp is not None and exp < 0:
    raise ValueError(f"exponent={exponent!r} must be >= 0.")
  _positive("offset", offset)

  def decayed(tau):
    return peak_value * (offset / (tau + offset)) ** exponent

  return _with_warmup(decayed, peak_value, warmup_steps, init_value)


def constant(
  peak_value: float, *, warmup_steps: int = 0, init_value: float | None = None
) -> optax.Schedule:
  """Constant step size ``peak_value`` after a linear warmup (horizon-free).

  Paired with a proportional EMA of the weights this is the paper's main
  anytime recipe (constant + EMA-25).

  Example:
    >>> import anytime
    >>> lr = anytime.schedules.constant(3e-3, warmup_steps=10)
    >>> [round(float(lr(t)), 6) for t in (0, 5, 10, 10**9)]
    [0.0003, 0.00165, 0.003, 0.003]
  """
  warmup_steps, init_value = _validate_common(peak_value, warmup_steps, init_value)

  def decayed(tau):
    return jnp.full_like(tau, peak_value)

  return _with_warmup(decayed, peak_value, warmup_steps, init_value)


def inverse_sqrt(
  peak_value: float,
  *,
  offset: float,
  warmup_steps: int = 0,
  init_value: float | None = None,
) -> optax.Schedule:
  """Inverse square root ``peak * sqrt(offset / (tau + offset))`` (horizon-free).

  ``polynomial_decay`` with exponent 1/2; see there for the arguments.

  Example:
    >>> import anytime
    >>> lr = anytime.schedules.inverse_sqrt(1.0, offset=25.0)
    >>> round(float(lr(75)), 6)
    0.5
  """
  return polynomial_decay(
    peak_value, 0.5, offset=offset, warmup_steps=warmup_steps, init_value=init_value
  )


# ----------------------------------------------------------------------------
# Horizon-bound baselines.


def _validate_horizon(peak_value, total_steps, final_value, warmup_steps, init_value):
  warmup_steps, init_value = _validate_common(peak_value, warmup_steps, init_value)
  total_steps = _step_count("total_steps", total_steps, minimum=1)
  if total_steps <= warmup_steps:
    raise ValueError(
      f"total_steps={total_steps} must be > warmup_steps={warmup_steps}: the decay "
      "needs at least one step after warmup."
    )
  _final_in_range(final_value, peak_value)
  return total_steps, warmup_steps, init_value


def cosine(
  peak_value: float,
  total_steps: int,
  *,
  final_value: float,
  warmup_steps: int = 0,
  init_value: float | None = None,
) -> optax.Schedule:
  r"""Cosine decay from ``peak_value`` to ``final_value`` at ``total_steps``.

  With ``s = (count - warmup_steps) / (total_steps - warmup_steps)`` clipped to
  ``[0, 1]``,

  .. math::
    \eta = \eta_{\rm final} + (\eta_{\rm peak} - \eta_{\rm final})
      \frac{1 + \cos(\pi s)}{2}.

  ``total_steps`` counts the warmup, as in
  ``optax.warmup_cosine_decay_schedule(decay_steps=total_steps)``; the value is
  ``final_value`` from ``total_steps`` on. The reference paper decays to
  ``0.1 * peak_value`` and tunes the peak per horizon.

  Args:
    peak_value: step size at the end of warmup; > 0.
    total_steps: the horizon; an integer > ``warmup_steps``.
    final_value: step size at and after the horizon; in ``[0, peak_value]``.
    warmup_steps: length of the linear warmup; >= 0.
    init_value: step size at count 0; default ``0.1 * peak_value``.

  Example:
    >>> import anytime
    >>> lr = anytime.schedules.cosine(1.0, 100, final_value=0.1)
    >>> [round(float(lr(t)), 6) for t in (0, 50, 100, 1000)]
    [1.0, 0.55, 0.1, 0.1]
  """
  total_steps, warmup_steps, init_value = _validate_horizon(
    peak_value, total_steps, final_value, warmup_steps, init_value
  )
  span = total_steps - warmup_steps

  def decayed(tau):
    s = jnp.minimum(tau / span, 1.0)
    return final_value + (peak_value - final_value) * 0.5 * (1.0 + jnp.cos(jnp.pi * s))

  return _with_warmup(decayed, peak_value, warmup_steps, init_value)


def wsd(
  peak_value: float,
  total_steps: int,
  *,
  decay_steps: int,
  shape: str,
  final_value: float,
  warmup_steps: int = 0,
  init_value: float | None = None,
) -> optax.Schedule:
  r"""Warmup-stable-decay: constant at peak, then a cooldown over ``decay_steps``.

  The step size is ``peak_value`` until ``total_steps - decay_steps``; with
  ``s`` in ``[0, 1]`` the fraction of the cooldown elapsed, it is then

  * ``"linear"``: :math:`\eta_p - (\eta_p - \eta_f) s`,
  * ``"sqrt"`` (1-sqrt, Hägele et al. 2024): :math:`\eta_f + (\eta_p - \eta_f)(1 - \sqrt{s})`,
  * ``"cosine"``: :math:`\eta_f + (\eta_p - \eta_f)(1 + \cos \pi s) / 2`,

  and ``final_value`` from ``total_steps`` on. Because the stable phase is the
  constant schedule, a WSD run can branch off a constant run's checkpoint at
  ``total_steps - decay_steps`` (the reference paper uses 10% cooldowns).

  Args:
    peak_value: step size of the stable phase; > 0.
    total_steps: the horizon; an integer > ``warmup_steps``.
    decay_steps: length of the cooldown; in ``[1, total_steps - warmup_steps]``.
    shape: one of ``"linear"``, ``"sqrt"``, ``"cosine"``.
    final_value: step size at and after the horizon; in ``[0, peak_value]``.
    warmup_steps: length of the linear warmup; >= 0.
    init_value: step size at count 0; default ``0.1 * peak_value``.

  Example:
    >>> import anytime
    >>> lr = anytime.schedules.wsd(1.0, 100, decay_steps=20, shape="linear", final_value=0.0)
    >>> [round(float(lr(t)), 6) for t in (0, 80, 90, 100)]
    [1.0, 1.0, 0.5, 0.0]
  """
  total_steps, warmup_steps, init_value = _validate_horizon(
    peak_value, total_steps, final_value, warmup_steps, init_value
  )
  decay_steps = _step_count("decay_steps", decay_steps, minimum=1)
  if decay_steps > total_steps - warmup_steps:
    raise ValueError(
      f"decay_steps={decay_steps} must be <= total_steps - warmup_steps = "
      f"{total_steps - warmup_steps}: the cooldown cannot overlap the warmup."
    )
  if shape not in WSD_SHAPES:
    raise ValueError(f"shape={shape!r} must be one of {WSD_SHAPES}.")
  stable_steps = total_steps - warmup_steps - decay_steps

  def decayed(tau):
    s = jnp.clip((tau - stable_steps) / decay_steps, 0.0, 1.0)
    if shape == "linear":
      frac = 1.0 - s
    elif shape == "sqrt":
      frac = 1.0 - jnp.sqrt(s)
    else:
      frac = 0.5 * (1.0 + jnp.cos(jnp.pi * s))
    return final_value + (peak_value - final_value) * frac

  return _with_warmup(decayed, peak_value, warmup_steps, init_value)


def linear_decay(
  peak_value: float,
  total_steps: int,
  *,
  final_value: float = 0.0,
  warmup_steps: int = 0,
  init_value: float | None = None,
) -> optax.Schedule:
  r"""Linear decay from ``peak_value`` (end of warmup) to ``final_value`` at ``total_steps``.

  .. math::
    \eta = \eta_{\rm peak} - (\eta_{\rm peak} - \eta_{\rm final})\, s,
    \qquad s = \min\!\left(1, \frac{t - t_w}{T - t_w}\right).

  Linear-to-zero is the horizon-bound schedule that WSD with ``decay_steps =
  total_steps - warmup_steps`` reduces to.

  Example:
    >>> import anytime
    >>> lr = anytime.schedules.linear_decay(2.0, 10)
    >>> [round(float(lr(t)), 6) for t in (0, 5, 10, 11)]
    [2.0, 1.0, 0.0, 0.0]
  """
  total_steps, warmup_steps, init_value = _validate_horizon(
    peak_value, total_steps, final_value, warmup_steps, init_value
  )
  span = total_steps - warmup_steps

  def decayed(tau):
    # The remaining fraction, not 1 - elapsed: near the end, peak - (peak - final)
    # would cancel catastrophically in float32.
    remaining = jnp.maximum(span - tau, 0.0) / span
    return final_value + (peak_value - final_value) * remaining

  return _with_warmup(decayed, peak_value, warmup_steps, init_value)
