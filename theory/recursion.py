r"""Exact expected excess risk of one-pass SGD with any schedule and averaging rule.

SGD on :class:`theory.Problem` from ``w_0 = 0``: update ``k = 1..steps`` uses the
step ``eta_k = schedule(k - 1)`` (Optax's count) and a fresh batch of ``B``
samples,

    w_k = w_{k-1} - (eta_k / B) sum_j x_j (x_j . w_{k-1} - y_j),

and the averaging rule's weight ``rho_k = c_k`` gives ``wbar_k = (1 - rho_k)
wbar_{k-1} + rho_k w_k`` with ``wbar_0 = w_0``.

Derivation. With ``e = w - w*`` the step is ``e' = e - eta g``, ``g = (1/B) sum_j
(x_j x_j^T e - x_j eps_j)``, ``E[g | e] = H e``. For ``x = sqrt(lam) z`` with
independent, zero-mean coordinates,

    E[(x_i (x . e))**2] = sum_{j,l} E[x_i**2 x_j x_l] e_j e_l
                        = lam_i sum_j lam_j e_j**2 + (kappa - 1) lam_i**2 e_i**2,

because only ``j = l`` survives. Only diagonal entries of ``E[e e^T]`` enter, so
with ``m = diag E[e e^T]``,

    m' = (1 - 2 eta lam + (1 + (kappa - 2)/B) eta**2 lam**2) m
         + (eta**2 / B) lam (lam . m + sigma**2)                          (1)

(``-2 eta lam m`` from the mean, ``eta**2 lam**2 m`` from ``(He)_i**2`` for the
``B - 1`` cross pairs, the rest from the single-sample terms). For the average,
``E[e'_i ebar_i] = (1 - eta lam_i) c_i`` with ``c = diag E[e ebar^T]``, and
``ebar' = (1 - rho) ebar + rho e'`` gives, with ``q = (1 - eta lam) c``,

    c'    = (1 - rho) q + rho m',
    mbar' = (1 - rho)**2 mbar + 2 rho (1 - rho) q + rho**2 m',             (2)

from ``m_0 = c_0 = mbar_0 = w***2``. The excess risk is ``0.5 lam . m`` (last
iterate) and ``0.5 lam . mbar`` (averaged iterate); the ``0.5`` belongs to the
risk only, the ``lam . m`` inside (1) is the full ``E[(x . e)**2]``. The
recursion is exact (no approximation beyond float64), independent of the
distribution of ``z`` beyond its fourth moment, and verified against Monte
Carlo in ``tests/theory/test_montecarlo.py``.

Numerics: float64 (``jax.enable_x64`` inside the call, never globally) and the
increment form ``m += delta`` (float32 drifts by 0.1% at 1e6 steps). A run whose
risk overflows or exceeds ``DIVERGED`` is reported as ``inf`` from the first
recorded step where that happens on (never NaN).

Cost: O(groups) per step per run. :func:`run` vectorises over runs (rows of an
``lrs`` array: many schedules and peak step sizes share one compiled scan).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from theory import compressed
from theory.problems import Problem

__all__ = ["DIVERGED", "Curves", "lr_array", "risk_curve", "run", "spectrum_for"]

# Risks above this (or non-finite) count as diverged.
DIVERGED = 1e100
# Above this dim, mode="auto" uses the compressed spectrum.
AUTO_FULL_MAX_DIM = 65536


@dataclasses.dataclass(frozen=True)
class Curves:
  """Excess risks at ``record_steps``: ``last`` and ``averaged`` of shape [runs, records]."""

  record_steps: np.ndarray
  last: np.ndarray
  averaged: np.ndarray | None


def default_record_steps(steps: int, num: int = 60) -> np.ndarray:
  """About ``num`` log-spaced integers in [1, steps], always including ``steps``."""
  pts = np.unique(np.round(np.geomspace(1, steps, num)).astype(np.int64))
  return np.unique(np.append(pts, steps))


def _check_steps(steps) -> int:
  if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
    raise ValueError(f"steps={steps!r} must be an int >= 1.")
  if steps > 2**31 - 1:
    raise ValueError(f"steps={steps!r} must be <= 2**31 - 1.")
  return int(steps)


def _check_record_steps(record_steps, steps: int) -> np.ndarray:
  if record_steps is None:
    return default_record_steps(steps)
  rec = np.asarray(record_steps)
  if rec.ndim != 1 or rec.size == 0 or not np.issubdtype(rec.dtype, np.integer):
    raise ValueError(f"record_steps={record_steps!r} must be a non-empty 1-D sequence of ints.")
  if np.any(np.diff(rec) <= 0) or rec[0] < 0 or rec[-1] > steps:
    raise ValueError(
      f"record_steps={record_steps!r} must be strictly increasing ints in [0, steps={steps}]."
    )
  return rec.astype(np.int64)


def lr_array(schedules: Callable | Sequence[Callable], steps: int) -> np.ndarray:
  """Evaluates schedules at counts 0..steps-1 in float64; shape [n_schedules, steps]."""
  steps = _check_steps(steps)
  single = callable(schedules)
  scheds = [schedules] if single else list(schedules)
  if not scheds or not all(callable(s) for s in scheds):
    raise ValueError(f"schedule={schedules!r} must be a schedule or a non-empty list of them.")
  with jax.enable_x64(True):
    counts = jnp.arange(steps, dtype=jnp.int32)
    out = np.stack([np.asarray(s(counts), dtype=np.float64) for s in scheds])
  if not np.all(np.isfinite(out)) or np.any(out < 0):
    raise ValueError("schedule values must be finite and >= 0 at every step.")
  return out


def _rho_array(averaging: Callable | None, steps: int) -> np.ndarray | None:
  if averaging is None:
    return None
  if not callable(averaging):
    raise ValueError(f"averaging={averaging!r} must be an averaging rule (k -> c_k) or None.")
  with jax.enable_x64(True):
    rho = np.asarray(averaging(jnp.arange(1, steps + 1, dtype=jnp.float64)), dtype=np.float64)
  rho = np.broadcast_to(rho, (steps,)).copy()
  if np.any(~np.isfinite(rho)) or np.any(rho <= 0) or np.any(rho > 1):
    raise ValueError(f"averaging={averaging!r} must give weights c_k in (0, 1].")
  return rho


def spectrum_for(problem: Problem, mode: str = "auto", **compress_kw) -> compressed.Spectrum:
  """The spectrum the recursion runs on: "full", "compressed" or "auto".

  "auto" is full for ``dim <= AUTO_FULL_MAX_DIM`` and compressed otherwise
  (always for ``dim = inf``); the compressed error is measured in
  ``experiments/bench/recursion.py`` (<= 1% on the paper's settings).
  """
  if mode not in ("auto", "full", "compressed"):
    raise ValueError(f"mode={mode!r} must be one of 'auto', 'full', 'compressed'.")
  if mode == "full" or (mode == "auto" and problem.finite and problem.dim <= AUTO_FULL_MAX_DIM):
    if compress_kw:
      raise ValueError(f"compression options {sorted(compress_kw)} need mode='compressed'.")
    return compressed.full_spectrum(problem)
  return compressed.spectrum(problem, **compress_kw)


@partial(jax.jit, static_argnames=("track_avg", "n_rec"))
def _scan(lam, weight, m0, lrs_t, rho, rec_flag, coef, inv_b, sigma2, *, track_avg, n_rec):
  """lrs_t: [T, R]; rho: [T]; rec_flag: [T] int (1 where step t+1 is recorded, n_rec of them)."""
  runs = lrs_t.shape[1]
  wl = weight * lam
  m = jnp.broadcast_to(m0, (runs, m0.shape[0]))
  out_last = jnp.zeros((runs, n_rec))
  out_avg = jnp.zeros((runs, n_rec))

  def risk(x):
    return 0.5 * jnp.sum(x * wl, axis=-1)

  def body(carry, inp):
    m, c, mbar, j, o_last, o_avg = carry
    eta, r, flag = inp
    eta = eta[:, None]
    s = jnp.sum(m * wl, axis=-1, keepdims=True)
    m_new = m + eta * (coef * eta * lam - 2.0) * lam * m + (eta * eta * inv_b) * lam * (s + sigma2)
    if track_avg:
      q = c - eta * lam * c
      mbar = mbar + r * ((r - 2.0) * mbar + 2.0 * (1.0 - r) * q + r * m_new)
      c = q + r * (m_new - q)

    o_last, o_avg = record(
      (o_last, o_avg), flag, j, lambda: risk(m_new), (lambda: risk(mbar)) if track_avg else None
    )
    return (m_new, c, mbar, j + flag, o_last, o_avg), None

  init = (m, m if track_avg else m[:, :0], m if track_avg else m[:, :0], 0, out_last, out_avg)
  (m, _, _, _, out_last, out_avg), _ = lax.scan(body, init, (lrs_t, rho, rec_flag))
  return out_last, out_avg


def record(outs, flag, j, last_fn, avg_fn=None):
  """Writes ``last_fn()`` (and ``avg_fn()``) into column ``j`` of ``outs`` when ``flag > 0``.

  Shared by the recursion and the Monte-Carlo scans: the risks are computed
  only at recorded steps (inside the ``lax.cond``), into buffers of one column
  per record.
  """

  def write(outs):
    o_last, o_avg = outs
    o_last = lax.dynamic_update_index_in_dim(o_last, last_fn(), j, axis=1)
    if avg_fn is not None:
      o_avg = lax.dynamic_update_index_in_dim(o_avg, avg_fn(), j, axis=1)
    return o_last, o_avg

  return lax.cond(flag > 0, write, lambda outs: outs, outs)


def _mark_divergence(last: np.ndarray, avg: np.ndarray | None):
  bad = ~np.isfinite(last) | (last > DIVERGED)
  if avg is not None:
    bad |= ~np.isfinite(avg) | (avg > DIVERGED)
  bad = np.maximum.accumulate(bad, axis=-1)
  last = np.where(bad, np.inf, last)
  if avg is not None:
    avg = np.where(bad, np.inf, avg)
  return last, avg


def run(
  problem: Problem,
  lrs: Any,
  *,
  averaging: Callable | None = None,
  record_steps: Sequence[int] | None = None,
  mode: str = "auto",
  spectrum: compressed.Spectrum | None = None,
  **compress_kw,
) -> Curves:
  """Exact risk curves for step-size arrays ``lrs`` of shape [runs, steps] (or [steps]).

  Row ``r`` of ``lrs`` holds ``eta_1..eta_steps`` of run ``r`` (``eta_k`` is
  ``schedule(k - 1)``; see :func:`lr_array`). Returns the last-iterate risk and,
  if ``averaging`` is given, the averaged-iterate risk at ``record_steps``
  (values of k in [0, steps]; default ~60 log-spaced). Diverged runs are inf.
  """
  if not isinstance(problem, Problem):
    raise ValueError(f"problem={problem!r} must be a theory.Problem.")
  lrs = np.asarray(lrs, dtype=np.float64)
  if lrs.ndim == 1:
    lrs = lrs[None]
  if lrs.ndim != 2 or lrs.shape[1] < 1 or lrs.shape[0] < 1:
    raise ValueError(f"lrs of shape {lrs.shape} must be [runs, steps] with runs, steps >= 1.")
  if not np.all(np.isfinite(lrs)) or np.any(lrs < 0):
    raise ValueError("lrs must be finite and >= 0.")
  steps = lrs.shape[1]
  rec = _check_record_steps(record_steps, steps)
  rho = _rho_array(averaging, steps)
  spec = spectrum if spectrum is not None else spectrum_for(problem, mode, **compress_kw)
  flags = np.zeros(steps, dtype=np.int32)
  flags[rec[rec >= 1] - 1] = 1
  n_in = int(flags.sum())
  coef = 1.0 + (problem.kurtosis - 2.0) / problem.batch_size
  with jax.enable_x64(True):
    out_last, out_avg = _scan(
      jnp.asarray(spec.lam),
      jnp.asarray(spec.weight),
      jnp.asarray(spec.m0),
      jnp.asarray(lrs.T),
      jnp.asarray(rho if rho is not None else np.zeros(steps)),
      jnp.asarray(flags),
      coef,
      1.0 / problem.batch_size,
      problem.noise_variance,
      track_avg=rho is not None,
      n_rec=max(n_in, 1),
    )
    out_last = np.asarray(out_last)[:, :n_in]
    out_avg = np.asarray(out_avg)[:, :n_in] if rho is not None else None
  if rec[0] == 0:  # k = 0: the initial risk
    r0 = np.full((lrs.shape[0], 1), float(spec.risk(spec.m0)))
    out_last = np.concatenate([r0, out_last], axis=1)
    if out_avg is not None:
      out_avg = np.concatenate([r0, out_avg], axis=1)
  out_last, out_avg = _mark_divergence(out_last, out_avg)
  return Curves(record_steps=rec, last=out_last, averaged=out_avg)


def risk_curve(
  problem: Problem,
  schedule: Callable | Sequence[Callable],
  *,
  steps: int,
  averaging: Callable | None = None,
  record_steps: Sequence[int] | None = None,
  mode: str = "auto",
  **compress_kw,
) -> np.ndarray:
  """Exact expected excess risk ``0.5 E[(x . (w - w*))**2]`` at ``record_steps``.

  Args:
    problem: a :class:`theory.Problem`.
    schedule: an ``optax.Schedule`` (update k uses ``schedule(k - 1)``), or a list
      of them (vectorised in one scan).
    steps: number of SGD updates; an int >= 1.
    averaging: an ``anytime.averaging`` rule (k -> c_k) for the averaged iterate,
      or None for the last iterate.
    record_steps: increasing values of k in [0, steps]; default ~60 log-spaced.
    mode: "auto" (full up to dim 65536, else compressed), "full" or "compressed".
    **compress_kw: ``head``, ``ratio``, ``tail_end`` of :func:`theory.compressed.spectrum`.

  Returns:
    float64 array [records] (one schedule) or [schedules, records]; inf where diverged.

  Example:
    >>> import anytime, theory
    >>> p = theory.Problem(capacity=2.0, source=2.0, dim=1, noise_variance=0.0, kurtosis=1.0)
    >>> # one coordinate, lam = 1, x**2 = 1: e_k = (1 - eta) e_{k-1}, risk 0.5 * 0.25**k
    >>> theory.risk_curve(p, anytime.constant(0.5), steps=2, record_steps=[0, 1, 2]).tolist()
    [0.5, 0.125, 0.03125]
  """
  steps = _check_steps(steps)
  lrs = lr_array(schedule, steps)
  curves = run(
    problem, lrs, averaging=averaging, record_steps=record_steps, mode=mode, **compress_kw
  )
  out = curves.last if averaging is None else curves.averaged
  return out[0] if callable(schedule) else out


def peak_grid(problem: Problem, multipliers: Sequence[float]) -> np.ndarray:
  """Peak step sizes ``multiplier / tr(H)`` (the paper's parametrisation)."""
  return np.asarray(multipliers, dtype=np.float64) / problem.trace()


def best_index(values: np.ndarray) -> int:
  """Index of the smallest finite value (diverged runs are inf); -1 if none."""
  values = np.asarray(values, dtype=np.float64)
  if not np.any(np.isfinite(values)):
    return -1
  return int(np.argmin(np.where(np.isfinite(values), values, math.inf)))
