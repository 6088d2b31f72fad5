r"""Closed-form rates: risk exponents, the best horizon-free decay, minimax, stability.

Setting: :class:`theory.Problem` with ``lam_i = i**-a``, ``lam_i w*_i**2 = i**-b``
(``a > 1``, ``b > 1``), noise ``sigma**2 > 0``, infinite dim, step ``eta_t =
eta_0 t**-gamma`` with ``0 <= gamma < 1`` and ``eta_0`` a stable constant; rates
are exponents ``alpha`` of ``R_t ~ t**-alpha`` (constants and logs dropped).

Heuristic derivation (checked against the exact recursion in
``tests/theory/test_rates.py`` and ``experiments/linreg/slopes.py``). The
effective time is ``T_t = sum_{s<=t} eta_s ~ t**(1 - gamma)``; direction ``i`` is
*learned* once ``lam_i T_t > 1``, i.e. for ``i < N_t = t**((1 - gamma) / a)``.

* Bias: the unlearned directions keep their initial energy,
  ``sum_{i > N_t} i**-b ~ N_t**(1 - b) = t**-(1 - gamma)(b - 1)/a`` -> exponent
  ``B = (1 - gamma)(b - 1)/a`` (last and averaged iterate; the uniform average
  additionally carries ``~ t**-2`` from its earliest iterates, exponent cap 2).
* Variance of the learned directions: an equilibrated direction fluctuates with
  ``lam_i m_i ~ eta_t lam_i sigma**2``, so the last iterate has ``~ eta_t tr(H)
  sigma**2``: exponent ``gamma``. The uniform average of a direction with
  correlation time ``1 / (eta lam_i)`` has risk ``~ sigma**2 / t`` (as for least
  squares), over ``N_t`` directions: ``sigma**2 N_t / t``, exponent ``1 - (1 -
  gamma)/a``.
* Noise left in the not-yet-learned directions: direction ``i > N_t`` has absorbed
  ``m_i ~ lam_i sigma**2 sum_s eta_s**2`` and not forgotten it; summed,
  ``sigma**2 N_t**(1 - 2a) sum_s eta_s**2``. For ``gamma < 1/2``, ``sum eta**2
  ~ t**(1 - 2 gamma)`` and this is again ``~ sigma**2 N_t / t``; for ``gamma >
  1/2`` the sum converges and the term is ``t**-(1 - gamma)(2a - 1)/a``, *slower*
  than ``N_t / t``. So the noise exponent is

      V(gamma) = 1 - (1 - gamma)/a         (gamma <= 1/2)
               = (1 - gamma)(2a - 1)/a     (gamma >= 1/2, with a log t at 1/2).

Hence

    alpha_avg(gamma)  = min(B(gamma), V(gamma), 2),
    alpha_last(gamma) = min(B(gamma), gamma, V(gamma)).

Best horizon-free exponent for the averaged iterate (:func:`optimal_decay`):
``B`` falls and ``V`` rises on ``[0, 1/2]``, both fall beyond 1/2, so

* ``b <= a``:   ``gamma* = 0`` (constant step + averaging), ``alpha = (b-1)/a``
  (below the minimax ``(b-1)/b``: the step cannot exceed the stability limit);
* ``a <= b <= 2a``: ``gamma* = 1 - a/b`` (B = V), ``alpha = (b-1)/b``, minimax;
* ``b >= 2a``:  ``gamma* = 1/2``, ``alpha = 1 - 1/(2a)`` (times ``log t``), below
  minimax: the paper's ``max(0, 1 - a/b) > 1/2`` would leave ``V = (2a-1)/b`` as
  the rate, the noise parked in unlearned directions.

The paper's ``gamma* = max(0, 1 - a/b)`` (:func:`paper_optimal_decay`) is right
for ``b <= 2a`` and wrong for ``b > 2a``. Last iterate (:func:`optimal_last_decay`):
``gamma = (b-1)/(a+b-1)`` for ``b <= 2a``, ``(2a-1)/(3a-1)`` beyond.

Stability of a constant step (exact for the recursion): the map
``m -> diag(A) m + (eta**2/B) lam (lam . m)`` is a diagonal plus a rank-one
positive term, ``A_i = 1 - 2 eta lam_i + (1 + (kappa-2)/B) eta**2 lam_i**2``. Its
eigenvalues interlace the ``A_i`` and the largest solves ``sum_i (eta**2/B)
lam_i**2 / (mu - A_i) = 1``, so (for ``kappa >= 2``, where ``A_i >= 0``) the
risk stays bounded iff

    K(eta) = sum_i (eta lam_i / B) / (2 - (1 + (kappa-2)/B) eta lam_i) < 1,

the stationary risk then being ``0.5 sigma**2 K / (1 - K)``. Since ``K(eta) >=
eta tr(H) / (2B)`` this is tighter than ``eta < 2B / tr H`` when ``B = 1``.
"""

from __future__ import annotations

import math

import numpy as np

from theory.problems import Problem

__all__ = [
  "averaged_exponent",
  "bias_exponent",
  "last_exponent",
  "minimax_exponent",
  "noise_exponent",
  "optimal_decay",
  "optimal_last_decay",
  "optimal_last_rate",
  "optimal_rate",
  "paper_optimal_decay",
  "regime",
  "stability_k",
  "stability_limit",
]


def _check(a, b, gamma=None):
  if not (isinstance(a, int | float) and math.isfinite(a) and a > 1):
    raise ValueError(f"capacity={a!r} must be a real number > 1.")
  if not (isinstance(b, int | float) and math.isfinite(b) and b > 1):
    raise ValueError(f"source={b!r} must be a real number > 1 (finite risk in infinite dim).")
  if gamma is not None and not (isinstance(gamma, int | float) and 0 <= gamma < 1):
    raise ValueError(f"gamma={gamma!r} must be a real number in [0, 1).")


def bias_exponent(a: float, b: float, gamma: float) -> float:
  """``(1 - gamma)(b - 1)/a``: energy left in unlearned directions."""
  _check(a, b, gamma)
  return (1 - gamma) * (b - 1) / a


def noise_exponent(a: float, gamma: float) -> float:
  """``V(gamma)``: ``1 - (1-gamma)/a`` for gamma <= 1/2, ``(1-gamma)(2a-1)/a`` beyond."""
  _check(a, 2.0, gamma)
  if gamma <= 0.5:
    return 1 - (1 - gamma) / a
  return (1 - gamma) * (2 * a - 1) / a


def averaged_exponent(a: float, b: float, gamma: float) -> float:
  """Exponent of the Polyak-averaged risk for ``eta_t ~ t**-gamma`` (noisy labels).

  Example:
    >>> round(averaged_exponent(1.5, 3.0, 0.5), 6)  # b = 2a: gamma* = 1/2 gives minimax (b-1)/b
    0.666667
  """
  return min(bias_exponent(a, b, gamma), noise_exponent(a, gamma), 2.0)


def last_exponent(a: float, b: float, gamma: float) -> float:
  """Exponent of the last-iterate risk for ``eta_t ~ t**-gamma`` (noisy labels)."""
  return min(bias_exponent(a, b, gamma), float(gamma), noise_exponent(a, gamma))


def regime(a: float, b: float, gamma: float, averaged: bool = True) -> str:
  """Which term sets the rate: "bias", "noise" (learned/unlearned) or "step" (last iterate)."""
  terms = {"bias": bias_exponent(a, b, gamma), "noise": noise_exponent(a, gamma)}
  if not averaged:
    terms["step"] = float(gamma)
  return min(terms, key=terms.get)


def optimal_decay(a: float, b: float) -> float:
  """Best horizon-free exponent gamma* for the averaged iterate (general form)."""
  _check(a, b)
  if b <= a:
    return 0.0
  if b <= 2 * a:
    return 1 - a / b
  return 0.5


def optimal_rate(a: float, b: float) -> float:
  """``averaged_exponent(a, b, optimal_decay(a, b))`` in closed form."""
  _check(a, b)
  if b <= a:
    return (b - 1) / a
  if b <= 2 * a:
    return (b - 1) / b
  return 1 - 1 / (2 * a)


def paper_optimal_decay(a: float, b: float) -> float:
  """The paper's ``max(0, 1 - a/b)`` (correct for b <= 2a)."""
  _check(a, b)
  return max(0.0, 1 - a / b)


def optimal_last_decay(a: float, b: float) -> float:
  """Best horizon-free exponent for the last iterate."""
  _check(a, b)
  if b <= 2 * a:
    return (b - 1) / (a + b - 1)
  return (2 * a - 1) / (3 * a - 1)


def optimal_last_rate(a: float, b: float) -> float:
  """Last-iterate exponent at :func:`optimal_last_decay` (equal to that gamma)."""
  return optimal_last_decay(a, b)


def minimax_exponent(a: float, b: float) -> float:
  """Minimax exponent ``(b - 1)/b`` (bias ``N**(1-b)`` vs variance ``sigma**2 N / t``)."""
  _check(a, b)
  return (b - 1) / b


def _spectrum(problem: Problem):
  from theory.recursion import spectrum_for

  s = spectrum_for(problem, "auto")
  return s.lam, s.weight


def stability_k(problem: Problem, eta: float) -> float:
  """``K(eta)``; inf where a denominator is <= 0."""
  lam, w = _spectrum(problem)
  coef = 1 + (problem.kurtosis - 2) / problem.batch_size
  den = 2 - coef * eta * lam
  if np.any(den <= 0):
    return math.inf
  return float(np.sum(w * (eta * lam / problem.batch_size) / den))


def stability_limit(problem: Problem, *, rtol: float = 1e-10) -> float:
  """Largest constant step with bounded risk (``K(eta) < 1``; see the module docstring).

  Example:
    >>> p = Problem(capacity=2.0, source=2.0, dim=1, noise_variance=1.0, kurtosis=1.0)
    >>> round(stability_limit(p), 6)  # x**2 = 1: m' = (1 - eta)**2 m + eta**2 sigma**2 -> eta < 2
    2.0
  """
  lam, w = _spectrum(problem)
  coef = 1 + (problem.kurtosis - 2) / problem.batch_size

  def stable(eta):
    # Eigenvalues of diag(A) + c (n lam)^T / n interlace the A_i (c_i = eta**2 lam_i**2 n_i / B):
    # the largest is < 1 iff max A < 1 and K = sum c_i / (1 - A_i) < 1; the smallest is > -1
    # iff min A > -1, or exactly one coordinate has A <= -1 and sum c_i / (-1 - A_i) > 1.
    a_i = 1 - 2 * eta * lam + coef * eta**2 * lam**2
    if stability_k(problem, eta) >= 1:  # also covers some A_i >= 1 (a denominator <= 0)
      return False
    low = a_i <= -1
    if not np.any(low):
      return True
    if np.sum(w[low]) > 1 + 1e-9:
      return False
    c = eta**2 * lam**2 * w / problem.batch_size
    with np.errstate(divide="ignore"):
      return float(np.sum(c / (-1 - a_i))) > 1

  lo, hi = 0.0, 4.0 * problem.batch_size / float(np.sum(w * lam))
  while stable(hi):
    hi *= 2
  while hi - lo > rtol * hi:
    mid = 0.5 * (lo + hi)
    lo, hi = (mid, hi) if stable(mid) else (lo, mid)
  return lo
