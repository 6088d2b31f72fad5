r"""Optimal learning rate in (model size N, token budget D): the "fitting" paradigm.

Step 1, per (N, D): the final loss of runs that differ only in peak LR is
fitted by a quadratic in ``x = ln(lr)``,

    L(x) = c0 + c1 x + c2 x**2,      c2 > 0,      x* = -c1 / (2 c2),

(ordinary least squares). The standard error of ``x*`` comes from the
covariance of ``(c1, c2)`` by the delta method,
``grad x* = (-1 / (2 c2), c1 / (2 c2**2))``; ``lr* = exp(x*)`` with the
interval ``exp(x* -+ z se)``.

Step 2, across (N, D): the optima follow a power law,

    ln lr*(N, D) = ln C + alpha ln N + beta ln D,

fitted by weighted least squares (weights ``1 / se**2`` from step 1, plus an
extra scatter ``tau**2`` estimated from the residuals when they exceed the
per-point errors). :meth:`LRLaw.predict` extrapolates to a new (N, D) with a
band from the parameter covariance (and, optionally, the scatter).

Reference: Zhou et al. 2026, arXiv 2601.05049 (fitting the optimal LR per
(N, D) and a power law across them). The comparison with muP transfer (muP's
prediction: the optimum at the base width, unchanged) is run on LM sweeps by
experiments/laws_lm/w64.py (docs/laws.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

__all__ = ["LRLaw", "LROptimum", "fit_lr_law", "fit_lr_optimum"]


@dataclasses.dataclass(frozen=True)
class LROptimum:
  """The optimum of one LR sweep: ``lr`` with a ``z``-sigma interval ``[low, high]``."""

  lr: float
  log_lr: float
  log_lr_se: float
  low: float
  high: float
  min_loss: float
  curvature: float


def _as_1d(name: str, values) -> np.ndarray:
  arr = np.asarray(values, dtype=np.float64)
  if arr.ndim != 1:
    raise ValueError(f"{name} of shape {arr.shape} must be 1-D.")
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"{name}={arr.tolist()} must be finite.")
  return arr


def fit_lr_optimum(lrs: Sequence[float], losses: Sequence[float], *, z: float = 1.0) -> LROptimum:
  """Quadratic fit of loss vs ln(lr); the optimum with a ``z``-sigma interval.

  Raises ValueError for: mismatched lengths, LRs <= 0, fewer than 4 distinct LRs
  (a quadratic needs one spare point for its error), a fit that is not convex,
  or an optimum outside the swept range (the sweep does not bracket it).
  The interval is statistical only: an asymmetric loss around the optimum
  biases the quadratic's minimum when the grid is not centred on it (measured
  in ``tests/laws/test_optimal_lr.py``: within half an octave, not within the
  interval); centre the grid or narrow it around the optimum to reduce that. Diverged runs
  should be dropped before the fit (their loss is not on the quadratic).
  """
  lrs = _as_1d("lrs", lrs)
  losses = _as_1d("losses", losses)
  if lrs.shape != losses.shape:
    raise ValueError(f"lrs ({lrs.size}) and losses ({losses.size}) must have the same length.")
  if np.any(lrs <= 0):
    raise ValueError(f"lrs must be > 0; got {lrs[lrs <= 0].tolist()}.")
  if np.unique(lrs).size < 4:
    raise ValueError(
      f"lrs has {np.unique(lrs).size} distinct values; need >= 4 to fit a quadratic with an error."
    )
  if not z > 0:
    raise ValueError(f"z={z!r} must be > 0.")
  x = np.log(lrs)
  center = x.mean()
  xc = x - center
  design = np.stack([np.ones_like(xc), xc, xc**2], axis=1)
  coef, *_ = np.linalg.lstsq(design, losses, rcond=None)
  resid = losses - design @ coef
  dof = max(losses.size - 3, 1)
  s2 = float(resid @ resid) / dof
  cov = s2 * np.linalg.inv(design.T @ design)
  c0, c1, c2 = coef
  if not c2 > 0:
    raise ValueError(
      f"loss vs ln(lr) is not convex (curvature {c2:.3g} <= 0): the LR grid "
      f"[{lrs.min():.3g}, {lrs.max():.3g}] does not bracket an optimum."
    )
  xs = -c1 / (2 * c2)
  grad = np.array([-1 / (2 * c2), c1 / (2 * c2**2)])
  se = float(np.sqrt(max(grad @ cov[1:, 1:] @ grad, 0.0)))
  log_lr = float(xs + center)
  if not x.min() <= log_lr <= x.max():
    raise ValueError(
      f"the fitted optimum lr={np.exp(log_lr):.3g} lies outside the LR grid "
      f"[{lrs.min():.3g}, {lrs.max():.3g}]: extend the sweep rather than extrapolate."
    )
  return LROptimum(
    lr=float(np.exp(log_lr)),
    log_lr=log_lr,
    log_lr_se=se,
    low=float(np.exp(log_lr - z * se)),
    high=float(np.exp(log_lr + z * se)),
    min_loss=float(c0 - c1**2 / (4 * c2)),
    curvature=float(c2),
  )


@dataclasses.dataclass(frozen=True)
class LRLaw:
  """``ln lr* = ln C + alpha ln N + beta ln D`` with the covariance of (ln C, alpha, beta)."""

  log_c: float
  alpha: float
  beta: float
  cov: np.ndarray
  scatter: float
  n_points: int

  @property
  def alpha_se(self) -> float:
    return float(np.sqrt(self.cov[1, 1]))

  @property
  def beta_se(self) -> float:
    return float(np.sqrt(self.cov[2, 2]))

  def predict(self, n, d, *, z: float = 1.0, include_scatter: bool = True):
    """(lr*, low, high) at model size ``n`` and tokens ``d`` (arrays broadcast).

    The band is ``z`` sigma of the predicted ``ln lr*`` from the parameter
    covariance, plus the fitted extra scatter when ``include_scatter``.
    """
    n = np.asarray(n, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    if np.any(n <= 0) or np.any(d <= 0):
      raise ValueError(f"n={n.tolist()} and d={d.tolist()} must be > 0.")
    g = np.stack(np.broadcast_arrays(np.ones_like(n * d), np.log(n) + 0 * d, np.log(d) + 0 * n), -1)
    mean = g @ np.array([self.log_c, self.alpha, self.beta])
    var = np.einsum("...i,ij,...j->...", g, self.cov, g)
    if include_scatter:
      var = var + self.scatter**2
    sd = np.sqrt(var)
    return np.exp(mean), np.exp(mean - z * sd), np.exp(mean + z * sd)


def fit_lr_law(n, d, log_lr, log_lr_se=None) -> LRLaw:
  """Fits ``ln lr* = ln C + alpha ln N + beta ln D`` to optima at (n, d).

  Args:
    n, d: model sizes and token budgets (> 0), one per optimum.
    log_lr: ln of the optimal LRs.
    log_lr_se: their standard errors (> 0) for weighting; None weights equally.

  Needs at least 4 optima spanning 2 distinct N and 2 distinct D.
  """
  n = _as_1d("n", n)
  d = _as_1d("d", d)
  y = _as_1d("log_lr", log_lr)
  if not n.shape == d.shape == y.shape:
    raise ValueError(f"n ({n.size}), d ({d.size}), log_lr ({y.size}) must have the same length.")
  if np.any(n <= 0) or np.any(d <= 0):
    raise ValueError("n and d must be > 0.")
  if y.size < 4 or np.unique(n).size < 2 or np.unique(d).size < 2:
    raise ValueError(
      f"{y.size} optima over {np.unique(n).size} sizes and {np.unique(d).size} budgets: need >= 4 "
      "optima spanning >= 2 distinct n and >= 2 distinct d."
    )
  se = np.ones_like(y) if log_lr_se is None else _as_1d("log_lr_se", log_lr_se)
  if se.shape != y.shape or np.any(se <= 0):
    raise ValueError(f"log_lr_se must be > 0 with {y.size} entries.")
  design = np.stack([np.ones_like(y), np.log(n), np.log(d)], axis=1)
  dof = y.size - 3

  def solve(tau2):
    w = 1.0 / (se**2 + tau2)
    a = design.T @ (w[:, None] * design)
    coef = np.linalg.solve(a, design.T @ (w * y))
    return coef, np.linalg.inv(a), y - design @ coef, w

  tau2 = 0.0
  coef, cov, resid, w = solve(tau2)
  if log_lr_se is None:
    # equal weights: classic OLS covariance from the residual variance
    s2 = float(resid @ resid) / max(dof, 1)
    cov = cov * s2
    scatter = float(np.sqrt(s2))
  else:
    # extra scatter tau**2 such that the weighted chi2 per dof is 1 (if it exceeds 1 without)
    for _ in range(50):
      chi2 = float(np.sum(w * resid**2))
      if dof <= 0 or chi2 <= dof:
        break
      tau2 = tau2 * chi2 / dof if tau2 > 0 else float(np.mean(resid**2))
      coef, cov, resid, w = solve(tau2)
    scatter = float(np.sqrt(tau2))
  return LRLaw(
    log_c=float(coef[0]),
    alpha=float(coef[1]),
    beta=float(coef[2]),
    cov=cov,
    scatter=scatter,
    n_points=int(y.size),
  )
