"""Schedules against closed forms written independently with `math`, plus properties."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anytime import schedules

INT32_MAX = 2**31 - 1


def warm(t, peak, warmup, init):
  return init + (peak - init) * t / warmup


def ref_polynomial(t, peak, exponent, offset, warmup=0, init=None):
  init = 0.1 * peak if init is None else init
  if t < warmup:
    return warm(t, peak, warmup, init)
  return peak * (offset / (t - warmup + offset)) ** exponent


def ref_cosine(t, peak, total, final, warmup=0, init=None):
  init = 0.1 * peak if init is None else init
  if t < warmup:
    return warm(t, peak, warmup, init)
  s = min((t - warmup) / (total - warmup), 1.0)
  return final + (peak - final) * (1 + math.cos(math.pi * s)) / 2


def ref_wsd(t, peak, total, decay, shape, final, warmup=0, init=None):
  init = 0.1 * peak if init is None else init
  if t < warmup:
    return warm(t, peak, warmup, init)
  start = total - decay
  if t <= start:
    return peak
  s = min((t - start) / decay, 1.0)
  frac = {"linear": 1 - s, "sqrt": 1 - math.sqrt(s), "cosine": (1 + math.cos(math.pi * s)) / 2}
  return final + (peak - final) * frac[shape]


def ref_linear(t, peak, total, final, warmup=0, init=None):
  init = 0.1 * peak if init is None else init
  if t < warmup:
    return warm(t, peak, warmup, init)
  s = min((t - warmup) / (total - warmup), 1.0)
  return peak + (final - peak) * s


# Hand-picked counts: start, inside warmup, both sides of the warmup boundary,
# the middle, the last update, the horizon, past it, and the int32 limit.
COUNTS = [0, 1, 499, 500, 501, 3000, 9998, 9999, 10000, 10001, 123_456, INT32_MAX]

CASES = [
  (
    "polynomial",
    lambda: schedules.polynomial_decay(3e-3, 0.7, offset=2000.0, warmup_steps=500),
    lambda t: ref_polynomial(t, 3e-3, 0.7, 2000.0, warmup=500),
  ),
  (
    "constant",
    lambda: schedules.constant(1e-3, warmup_steps=500, init_value=0.0),
    lambda t: ref_polynomial(t, 1e-3, 0.0, 1.0, warmup=500, init=0.0),
  ),
  (
    "inverse_sqrt",
    lambda: schedules.inverse_sqrt(1e-2, offset=51_200, warmup_steps=500),
    lambda t: ref_polynomial(t, 1e-2, 0.5, 51_200, warmup=500),
  ),
  (
    "cosine",
    lambda: schedules.cosine(1e-3, 10_000, final_value=1e-4, warmup_steps=500),
    lambda t: ref_cosine(t, 1e-3, 10_000, 1e-4, warmup=500),
  ),
  (
    "linear_decay",
    lambda: schedules.linear_decay(2e-3, 10_000, final_value=1e-5, warmup_steps=500),
    lambda t: ref_linear(t, 2e-3, 10_000, 1e-5, warmup=500),
  ),
] + [
  (
    f"wsd_{shape}",
    lambda shape=shape: schedules.wsd(
      1e-3, 10_000, decay_steps=2_000, shape=shape, final_value=1e-4, warmup_steps=500
    ),
    lambda t, shape=shape: ref_wsd(t, 1e-3, 10_000, 2_000, shape, 1e-4, warmup=500),
  )
  for shape in schedules.WSD_SHAPES
]


@pytest.mark.parametrize("name,make,ref", CASES, ids=[c[0] for c in CASES])
def test_closed_form_at_hand_picked_counts(name, make, ref):
  schedule = make()
  counts = jnp.asarray(COUNTS, dtype=jnp.int32)
  got = np.asarray(jax.jit(schedule)(counts), dtype=np.float64)
  want = np.array([ref(t) for t in COUNTS])
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
  # Python ints, eager, one at a time: the same values.
  for t, w in zip(COUNTS, want, strict=True):
    assert float(schedule(t)) == pytest.approx(w, rel=1e-6)


@pytest.mark.parametrize("name,make,ref", CASES, ids=[c[0] for c in CASES])
def test_float64_under_x64(name, make, ref):
  with jax.enable_x64(True):
    schedule = make()
    counts = jnp.asarray(COUNTS, dtype=jnp.int64)
    got = np.asarray(schedule(counts))
  assert got.dtype == np.float64
  np.testing.assert_allclose(got, [ref(t) for t in COUNTS], rtol=1e-12)


def test_vmap_over_counts_and_shapes():
  schedule = schedules.wsd(1.0, 100, decay_steps=30, shape="sqrt", final_value=0.0, warmup_steps=10)
  counts_2d = jnp.arange(200, dtype=jnp.int32).reshape(20, 10)
  got = jax.vmap(schedule)(counts_2d)
  assert got.shape == (20, 10)
  np.testing.assert_allclose(
    np.asarray(got).ravel(),
    [ref_wsd(t, 1.0, 100, 30, "sqrt", 0.0, warmup=10) for t in range(200)],
    rtol=1e-6,
    atol=1e-7,
  )


def test_cosine_matches_optax_where_definitions_coincide():
  ours = schedules.cosine(3e-3, 8_000, final_value=3e-4, warmup_steps=1_000, init_value=1e-4)
  theirs = optax.warmup_cosine_decay_schedule(
    init_value=1e-4, peak_value=3e-3, warmup_steps=1_000, decay_steps=8_000, end_value=3e-4
  )
  counts = jnp.arange(0, 12_000, 7, dtype=jnp.int32)
  np.testing.assert_allclose(ours(counts), theirs(counts), rtol=1e-5, atol=1e-9)


def test_inverse_sqrt_is_polynomial_half():
  a = schedules.inverse_sqrt(0.3, offset=123.0, warmup_steps=7)
  b = schedules.polynomial_decay(0.3, 0.5, offset=123.0, warmup_steps=7)
  counts = jnp.arange(0, 5000, dtype=jnp.int32)
  np.testing.assert_array_equal(a(counts), b(counts))


def test_no_overflow_at_int32_limit():
  # An int32 count + offset would wrap to a negative number if added in int32.
  schedule = schedules.polynomial_decay(1.0, 1.0, offset=1e9, warmup_steps=5_000)
  value = float(jax.jit(schedule)(jnp.int32(INT32_MAX)))
  assert value == pytest.approx(1e9 / (INT32_MAX - 5_000 + 1e9), rel=1e-6)


# ----------------------------------------------------------------------------
# Properties.


@st.composite
def any_schedule(draw):
  peak = draw(st.floats(1e-6, 10.0))
  warmup = draw(st.integers(0, 2_000))
  total = warmup + draw(st.integers(1, 100_000))
  final = peak * draw(st.sampled_from([0.0, 0.1]) | st.floats(1e-3, 1.0))
  kind = draw(st.sampled_from(["poly", "cosine", "wsd", "linear"]))
  if kind == "poly":
    schedule = schedules.polynomial_decay(
      peak, draw(st.floats(0.0, 3.0)), offset=draw(st.floats(1e-3, 1e6)), warmup_steps=warmup
    )
  elif kind == "cosine":
    schedule = schedules.cosine(peak, total, final_value=final, warmup_steps=warmup)
  elif kind == "wsd":
    decay = draw(st.integers(1, total - warmup))
    shape = draw(st.sampled_from(schedules.WSD_SHAPES))
    schedule = schedules.wsd(
      peak, total, decay_steps=decay, shape=shape, final_value=final, warmup_steps=warmup
    )
  else:
    schedule = schedules.linear_decay(peak, total, final_value=final, warmup_steps=warmup)
  return kind, schedule, peak, warmup, final


@settings(max_examples=40, deadline=None)
@given(any_schedule(), st.lists(st.integers(0, INT32_MAX), min_size=1, max_size=20))
def test_properties(drawn, extra_counts):
  kind, schedule, peak, warmup, final = drawn
  counts = np.unique(
    np.concatenate([np.arange(0, warmup + 50), np.asarray(extra_counts)]).astype(np.int64)
  )
  values = np.asarray(schedule(jnp.asarray(counts, dtype=jnp.int32)), dtype=np.float64)
  assert np.all(np.isfinite(values))
  # Positive wherever the schedule's own floor is positive.
  floor = 0.0 if kind == "poly" else final
  assert np.all(values >= min(floor, 0.1 * peak) * (1 - 1e-6))
  if kind == "poly" or final > 0:
    assert np.all(values > 0)
  assert np.all(values <= peak * (1 + 1e-6))
  after = values[counts >= warmup]
  assert np.all(np.diff(after) <= 1e-6 * peak), "must be non-increasing after warmup"
  # Continuity at the warmup boundary: the warmup's limit is the peak, and the
  # value at the boundary is the peak.
  if warmup > 0:
    last_warm, at_boundary = values[warmup - 1], values[warmup]  # counts start 0, 1, 2, ...
    assert abs(at_boundary - peak) <= 1e-6 * peak
    assert peak - last_warm <= (peak - 0.1 * peak) / warmup + 1e-6 * peak


# ----------------------------------------------------------------------------
# Validation: every bad argument names itself, its value and the allowed range.

BAD = [
  (lambda: schedules.constant(0.0), "peak_value=0.0 must be > 0"),
  (lambda: schedules.constant(-1e-3), "peak_value=-0.001 must be > 0"),
  (lambda: schedules.constant(float("nan")), "peak_value=nan must be finite"),
  (lambda: schedules.constant("big"), "peak_value='big' must be a real number"),
  (lambda: schedules.constant(1.0, warmup_steps=-1), "warmup_steps=-1 must be an integer in"),
  (lambda: schedules.constant(1.0, warmup_steps=2.5), "warmup_steps=2.5 must be an integer"),
  (lambda: schedules.constant(1.0, init_value=2.0), r"init_value=2.0 must be in \[0, peak"),
  (lambda: schedules.inverse_sqrt(1.0, offset=0.0), "offset=0.0 must be > 0"),
  (lambda: schedules.inverse_sqrt(1.0, offset=-5), "offset=-5 must be > 0"),
  (lambda: schedules.polynomial_decay(1.0, -0.5, offset=1.0), "exponent=-0.5 must be >= 0"),
  (lambda: schedules.cosine(1.0, 0, final_value=0.1), "total_steps=0 must be an integer in"),
  (lambda: schedules.cosine(1.0, 2**31, final_value=0.1), "total_steps=2147483648"),
  (
    lambda: schedules.cosine(1.0, 100, final_value=0.1, warmup_steps=100),
    "total_steps=100 must be > warmup_steps=100",
  ),
  (lambda: schedules.cosine(1.0, 100, final_value=2.0), r"final_value=2.0 must be in \[0, peak"),
  (lambda: schedules.cosine(1.0, 100, final_value=-0.1), "final_value=-0.1 must be in"),
  (
    lambda: schedules.wsd(1.0, 100, decay_steps=101, shape="linear", final_value=0.0),
    "decay_steps=101 must be <= total_steps - warmup_steps = 100",
  ),
  (
    lambda: schedules.wsd(1.0, 100, decay_steps=0, shape="linear", final_value=0.0),
    "decay_steps=0 must be an integer in",
  ),
  (
    lambda: schedules.wsd(1.0, 100, decay_steps=10, shape="exp", final_value=0.0),
    r"shape='exp' must be one of \('linear', 'sqrt', 'cosine'\)",
  ),
  (
    lambda: schedules.linear_decay(1.0, 10, warmup_steps=20),
    "total_steps=10 must be > warmup_steps=20",
  ),
]


@pytest.mark.parametrize("make,message", BAD)
def test_bad_arguments_raise_eagerly(make, message):
  with pytest.raises(ValueError, match=message):
    make()
