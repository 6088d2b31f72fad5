"""Robust bounded least squares shared by every law, with parameter uncertainty.

A law is fitted by minimising a robust cost of its residuals,

    cost(p) = sum_i rho_huber(r_i(p) / f_scale) * f_scale**2,

with ``scipy.optimize.least_squares(loss="huber")`` under box bounds, started
from the caller's initial point and from ``n_restarts`` further points drawn
inside the bounds (log-uniform for strictly positive ranges); the lowest cost
wins. Huber's loss is quadratic for ``|r| <= f_scale`` and linear beyond, so a
few corrupted points (a loss spike, a bad eval) cannot dominate the fit.

Uncertainty: the covariance of the estimate is the Gauss-Newton one,

    cov = s**2 (J^T J)^+,    s**2 = sum_i r_i**2 / (n - p),

with ``J`` the Jacobian of the plain residuals at the optimum (central finite
differences; scipy's own ``jac`` is rescaled by the robust loss). It is the
right covariance for independent residuals of equal variance (the synthetic
tests check its calibration); on smooth, noise-free curves (theory) the
residuals are model error, not noise, and ``stderr`` measures misfit only.
:func:`bootstrap` gives a resampling alternative. Parameters at a bound get
the covariance of the free parameters and a ``stderr`` of 0 flagged in
``at_bound``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from scipy import optimize

__all__ = ["FitResult", "bootstrap", "fit_least_squares"]


@dataclasses.dataclass(frozen=True)
class FitResult:
  """A fitted parameter vector with its uncertainty.

  Attributes:
    names: parameter names, in order.
    params: the estimate.
    stderr: one-sigma standard errors (``sqrt(diag(cov))``).
    cov: covariance matrix of the estimate.
    at_bound: True where the estimate sits on its box bound.
    cost: the robust cost at the optimum.
    rmse: root mean square of the plain residuals.
    n_obs: number of residuals.
  """

  names: tuple[str, ...]
  params: np.ndarray
  stderr: np.ndarray
  cov: np.ndarray
  at_bound: np.ndarray
  cost: float
  rmse: float
  n_obs: int

  def as_dict(self) -> dict[str, float]:
    return dict(zip(self.names, self.params.tolist(), strict=True))

  def __getitem__(self, name: str) -> float:
    return float(self.params[self.names.index(name)])

  def sigma(self, name: str) -> float:
    return float(self.stderr[self.names.index(name)])


def _check_bounds(names, init, lower, upper):
  init = np.asarray(init, dtype=np.float64)
  lower = np.asarray(lower, dtype=np.float64)
  upper = np.asarray(upper, dtype=np.float64)
  if not (init.shape == lower.shape == upper.shape == (len(names),)):
    raise ValueError(
      f"init, lower, upper must each have {len(names)} entries (one per name in {names})."
    )
  for n, lo, hi, x in zip(names, lower, upper, init, strict=True):
    if not lo < hi:
      raise ValueError(f"bounds of {n}: lower={lo} must be < upper={hi}.")
    if not lo <= x <= hi:
      raise ValueError(f"init {n}={x} must lie in [{lo}, {hi}].")
  return init, lower, upper


def _random_start(rng, lower, upper):
  x = np.empty_like(lower)
  for i, (lo, hi) in enumerate(zip(lower, upper, strict=True)):
    if lo > 0 and np.isfinite(hi):
      x[i] = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    else:
      lo_f = lo if np.isfinite(lo) else -1e3
      hi_f = hi if np.isfinite(hi) else 1e3
      x[i] = rng.uniform(lo_f, hi_f)
  return x


def _jacobian(fun, x, lower, upper):
  """Central differences, one-sided at a bound."""
  r0 = fun(x)
  jac = np.empty((r0.size, x.size))
  for j in range(x.size):
    h = 1e-6 * max(abs(x[j]), 1e-6)
    up = min(x[j] + h, upper[j])
    dn = max(x[j] - h, lower[j])
    xp, xm = x.copy(), x.copy()
    xp[j], xm[j] = up, dn
    jac[:, j] = (fun(xp) - fun(xm)) / (up - dn)
  return jac


def fit_least_squares(
  residuals: Callable[[np.ndarray], np.ndarray],
  *,
  names: Sequence[str],
  init: Sequence[float],
  lower: Sequence[float],
  upper: Sequence[float],
  f_scale: float,
  n_restarts: int = 8,
  seed: int = 0,
  max_nfev: int = 2000,
) -> FitResult:
  """Minimises the Huber cost of ``residuals(p)`` in the box ``[lower, upper]``.

  Args:
    residuals: p -> 1-D array of residuals (model - data, already weighted).
    names: parameter names.
    init: the first starting point (inside the bounds).
    lower, upper: box bounds (``-inf``/``inf`` allowed).
    f_scale: the Huber threshold, in residual units (> 0).
    n_restarts: extra random starting points inside the bounds (>= 0).
    seed: seeds the random starting points.
    max_nfev: function evaluations per start.

  Returns:
    The best :class:`FitResult` over all starts.
  """
  names = tuple(names)
  init, lower, upper = _check_bounds(names, init, lower, upper)
  if not f_scale > 0:
    raise ValueError(f"f_scale={f_scale!r} must be > 0.")
  if isinstance(n_restarts, bool) or not isinstance(n_restarts, int) or n_restarts < 0:
    raise ValueError(f"n_restarts={n_restarts!r} must be an int >= 0.")

  def safe(p):
    r = np.asarray(residuals(p), dtype=np.float64)
    return np.where(np.isfinite(r), r, 1e6)

  n_obs = safe(init).size
  if n_obs < len(names) + 1:
    raise ValueError(
      f"{n_obs} residuals cannot determine {len(names)} parameters {names}: need at least "
      f"{len(names) + 1} points."
    )
  rng = np.random.default_rng(seed)
  starts = [init] + [_random_start(rng, lower, upper) for _ in range(n_restarts)]
  best = None
  for x0 in starts:
    try:
      sol = optimize.least_squares(
        safe,
        x0,
        bounds=(lower, upper),
        loss="huber",
        f_scale=f_scale,
        max_nfev=max_nfev,
        x_scale="jac",
      )
    except (ValueError, FloatingPointError, np.linalg.LinAlgError):
      continue
    if best is None or sol.cost < best.cost:
      best = sol
  if best is None:
    raise ValueError(f"every start of the fit of {names} failed (non-finite residuals).")
  x = best.x
  r = safe(x)
  at_bound = (x - lower <= 1e-8 * (1.0 + np.abs(lower))) | (
    upper - x <= 1e-8 * (1.0 + np.abs(upper))
  )
  jac = _jacobian(safe, x, lower, upper)
  free = ~at_bound
  dof = max(r.size - int(free.sum()), 1)
  s2 = float(r @ r) / dof
  cov = np.zeros((x.size, x.size))
  if free.any():
    jf = jac[:, free]
    cov_free = s2 * np.linalg.pinv(jf.T @ jf)
    cov[np.ix_(free, free)] = cov_free
  stderr = np.sqrt(np.clip(np.diag(cov), 0.0, None))
  return FitResult(
    names=names,
    params=x,
    stderr=stderr,
    cov=cov,
    at_bound=at_bound,
    cost=float(best.cost),
    rmse=float(np.sqrt(np.mean(r**2))),
    n_obs=int(r.size),
  )


def bootstrap(
  refit: Callable[[np.ndarray], np.ndarray],
  fitted: np.ndarray,
  residuals: np.ndarray,
  *,
  n_boot: int = 50,
  seed: int = 0,
) -> np.ndarray:
  """Residual bootstrap: refits on ``fitted + resampled residuals``; returns [n_boot, p].

  ``refit(y)`` must fit the law to data ``y`` (same layout as ``fitted``) and
  return the parameter vector. The standard deviation over rows is a
  bootstrap standard error that does not rely on the Jacobian.
  """
  fitted = np.asarray(fitted, dtype=np.float64)
  residuals = np.asarray(residuals, dtype=np.float64)
  if fitted.shape != residuals.shape:
    raise ValueError(
      f"fitted {fitted.shape} and residuals {residuals.shape} must have the same shape."
    )
  if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 2:
    raise ValueError(f"n_boot={n_boot!r} must be an int >= 2.")
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(n_boot):
    y = fitted + rng.choice(residuals, size=residuals.size, replace=True).reshape(fitted.shape)
    out.append(np.asarray(refit(y), dtype=np.float64))
  return np.stack(out)
