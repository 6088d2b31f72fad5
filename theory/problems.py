"""Linear-regression problems under source and capacity conditions.

A :class:`Problem` is the data distribution of one-pass SGD on least squares:

* features ``x = sqrt(lam) * z`` with independent coordinates ``z_i`` of mean 0,
  variance 1 and fourth moment ``kurtosis = E z**4`` (3 for Gaussian, 1 for
  Rademacher signs), so the covariance is ``H = diag(lam)``;
* capacity: ``lam_i = i**-capacity`` (``capacity > 1`` so ``tr H`` is finite);
* source: ``lam_i * w*_i**2 = i**-source`` (the target's energy in direction
  ``i``), ``w*_i > 0``;
* labels ``y = x . w* + eps`` with ``E eps = 0``, ``E eps**2 = noise_variance``;
* mini-batches of ``batch_size`` independent samples per step.

``dim`` is an int or ``math.inf``. For ``dim = inf`` the exact recursion runs on
the compressed spectrum of :mod:`theory.compressed` (it needs ``source > 1`` so
that the initial risk ``0.5 * sum_i i**-source`` is finite).

Excess risk convention (used everywhere in :mod:`theory`): for iterate ``w``,

    R(w) = 0.5 * E_x[(x . (w - w*))**2] = 0.5 * sum_i lam_i (w_i - w*_i)**2,

the population loss minus the noise floor ``0.5 * noise_variance`` (the
paper's convention). SGD starts from ``w_0 = 0``, so ``R(w_0) = 0.5 * sum_i
i**-source``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["Problem"]

# The largest finite dimension the package accepts (arrays of this length are built).
MAX_FINITE_DIM = 10**8


def _check_real(name, value, *, low=None, low_open=True, high=None, high_open=False):
  """Raises ValueError naming ``name`` unless ``value`` is a real in the range."""
  if isinstance(value, bool):
    raise ValueError(f"{name}={value!r} must be a real number, not a bool.")
  try:
    number = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{name}={value!r} must be a real number.") from None
  lo = "-inf" if low is None else f"{low}"
  hi = "inf" if high is None else f"{high}"
  interval = ("(" if low_open else "[") + f"{lo}, {hi}" + (")" if high_open else "]")
  if not math.isfinite(number):
    raise ValueError(f"{name}={value!r} must be finite, in {interval}.")
  bad_low = low is not None and (number <= low if low_open else number < low)
  bad_high = high is not None and (number >= high if high_open else number > high)
  if bad_low or bad_high:
    raise ValueError(f"{name}={value!r} must be in {interval}.")
  return number


@dataclasses.dataclass(frozen=True)
class Problem:
  """Least squares with ``lam_i = i**-capacity`` and ``lam_i w*_i**2 = i**-source``.

  Args:
    capacity: eigenvalue decay exponent ``a``; > 1.
    source: target decay exponent ``b`` (``lam_i w*_i**2 = i**-b``); > 0, and > 1
      when ``dim`` is infinite.
    dim: number of coordinates; an int in [1, 1e8], or ``math.inf``.
    noise_variance: label-noise variance ``sigma**2``; >= 0.
    kurtosis: feature fourth moment ``kappa = E z**4``; >= 1 (3 Gaussian,
      1 Rademacher). Monte Carlo (:func:`theory.simulate_sgd`) supports 1 and 3.
    batch_size: samples per SGD step; an int >= 1.

  Example:
    >>> p = Problem(capacity=2.0, source=3.0, dim=3, noise_variance=0.0)
    >>> p.eigenvalues().tolist()
    [1.0, 0.25, 0.1111111111111111]
    >>> round(p.initial_risk(), 6)  # 0.5 * (1 + 1/8 + 1/27)
    0.581019
  """

  capacity: float
  source: float
  dim: int | float
  noise_variance: float
  kurtosis: float = 3.0
  batch_size: int = 1

  def __post_init__(self):
    a = _check_real("capacity", self.capacity, low=1.0)
    b = _check_real("source", self.source, low=0.0)
    _check_real("noise_variance", self.noise_variance, low=0.0, low_open=False)
    _check_real("kurtosis", self.kurtosis, low=1.0, low_open=False)
    dim = self.dim
    if isinstance(dim, float) and math.isinf(dim) and dim > 0:
      if b <= 1.0:
        raise ValueError(
          f"source={self.source!r} must be > 1 when dim=inf (the initial risk "
          "0.5 * sum_i i**-source must be finite)."
        )
      object.__setattr__(self, "dim", math.inf)
    else:
      if isinstance(dim, bool) or not (
        isinstance(dim, int | np.integer) or (isinstance(dim, float) and dim.is_integer())
      ):
        raise ValueError(f"dim={dim!r} must be an int in [1, {MAX_FINITE_DIM}] or math.inf.")
      if not 1 <= int(dim) <= MAX_FINITE_DIM:
        raise ValueError(f"dim={dim!r} must be an int in [1, {MAX_FINITE_DIM}] or math.inf.")
      object.__setattr__(self, "dim", int(dim))
    bs = self.batch_size
    if isinstance(bs, bool) or not isinstance(bs, int | np.integer) or bs < 1:
      raise ValueError(f"batch_size={bs!r} must be an int >= 1.")
    object.__setattr__(self, "batch_size", int(bs))
    object.__setattr__(self, "capacity", a)
    object.__setattr__(self, "source", b)
    object.__setattr__(self, "noise_variance", float(self.noise_variance))
    object.__setattr__(self, "kurtosis", float(self.kurtosis))

  @property
  def finite(self) -> bool:
    return not math.isinf(self.dim)

  def _indices(self) -> np.ndarray:
    if not self.finite:
      raise ValueError("dim=inf has no explicit coordinates; use theory.compressed.spectrum.")
    return np.arange(1, self.dim + 1, dtype=np.float64)

  def eigenvalues(self) -> np.ndarray:
    """``lam_i = i**-capacity``, i = 1..dim (float64)."""
    return self._indices() ** -self.capacity

  def target(self) -> np.ndarray:
    """``w*_i = sqrt(i**-source / lam_i) = i**((capacity - source) / 2)``."""
    return self._indices() ** (0.5 * (self.capacity - self.source))

  def initial_moments(self) -> np.ndarray:
    """``m_0 = diag E[e_0 e_0^T] = w*_i**2`` for ``w_0 = 0``."""
    return self._indices() ** (self.capacity - self.source)

  def trace(self) -> float:
    """``tr H = sum_i i**-capacity`` (Hurwitz zeta for dim = inf)."""
    from scipy.special import zeta

    if self.finite:
      return float(math.fsum(self.eigenvalues()))
    return float(zeta(self.capacity, 1.0))

  def initial_risk(self) -> float:
    """``R(w_0) = 0.5 * sum_i i**-source``."""
    from scipy.special import zeta

    if self.finite:
      return 0.5 * float(math.fsum(self._indices() ** -self.source))
    return 0.5 * float(zeta(self.source, 1.0))
