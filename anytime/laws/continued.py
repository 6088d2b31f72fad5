r"""Continued pretraining: loss-compute law, compute -> optimal LR, equivalent compute.

Following the recipe of Zhou et al. 2026 ("Predictable Scaling Laws of Optimal
Hyperparameters for LLM Continued Pre-training") as the issue states it:

1. Loss-compute law, fitted on proxy runs (each trained with its own tuned
   hyperparameters) of compute ``C`` (FLOPs, or tokens for a fixed model):

       L(C) = E + A * (C / C_ref)**(-a),       C_ref = the smallest fitted C.

2. Compute -> optimal hyperparameter laws, for the LR and the batch size:

       ln h*(C) = ln k + p ln C       (h = LR*, B*).

3. Equivalent compute of a checkpoint with validation loss ``L_ckpt`` on the
   proxies' data: the compute at which the law reaches that loss,

       C_eq = C_ref * ((L_ckpt - E) / A)**(-1 / a)     (needs L_ckpt > E).

4. Planned continuation of ``Delta C`` more compute: the continued run is
   treated as a run of total compute ``C_eq + Delta C`` on the law, so its
   predicted optimal LR is ``h*(C_eq + Delta C)`` (and, given a batch-size law,
   its optimal batch size ``B*(C_eq + Delta C)``).

The per-proxy optima themselves (the ``h*`` the step-2 laws are fitted on) come
from sweeps: :func:`anytime.laws.optimal_lr.fit_lr_optimum` fits loss vs
``ln h`` by a quadratic for any positive hyperparameter, batch size included.

Uncertainties: the loss law's covariance (robust fit, :mod:`~anytime.laws.fitting`)
is propagated to ``C_eq`` by the delta method (in ``ln C_eq``); the LR law's
covariance and residual scatter to the predicted ``ln LR``. Step 4 is our
reading of the method (the paper's exact treatment of the continuation's
data-distribution shift is not modelled): treat it as an estimate to validate
on real continued runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from anytime.laws.fitting import FitResult, fit_least_squares

__all__ = [
  "ContinuationPlan",
  "LossComputeLaw",
  "PowerLaw",
  "fit_loss_compute",
  "fit_power_law",
  "plan_continuation",
]


def _arrays(**named) -> list[np.ndarray]:
  out = []
  size = None
  for name, v in named.items():
    a = np.asarray(v, dtype=np.float64)
    if a.ndim != 1 or not np.all(np.isfinite(a)):
      raise ValueError(f"{name} must be a finite 1-D sequence; got {v!r}.")
    if size is not None and a.size != size:
      raise ValueError(f"{', '.join(named)} must have the same length; {name} has {a.size}.")
    size = a.size
    out.append(a)
  return out


@dataclasses.dataclass(frozen=True)
class LossComputeLaw:
  """``L(C) = E + A (C / c_ref)**-a`` with its fit (names E, A, a)."""

  fit: FitResult
  c_ref: float

  def loss(self, compute) -> np.ndarray:
    e, a_coef, a = self.fit.params
    return e + a_coef * (np.asarray(compute, dtype=np.float64) / self.c_ref) ** (-a)

  def _log_c_eq(self, params, loss):
    e, a_coef, a = params
    return np.log(self.c_ref) - np.log((loss - e) / a_coef) / a

  def equivalent_compute(self, loss: float, *, z: float = 1.0) -> tuple[float, float, float]:
    """(C_eq, low, high): the compute at which the law reaches ``loss``; ``z``-sigma band."""
    e = self.fit["E"]
    loss = float(loss)
    if not np.isfinite(loss) or loss <= e:
      raise ValueError(
        f"loss={loss!r} must be finite and above the law's irreducible loss E={e:.6g}."
      )
    p = self.fit.params
    grad = np.empty(3)
    for i in range(3):
      h = 1e-6 * max(abs(p[i]), 1e-9)
      dp = np.zeros(3)
      dp[i] = h
      grad[i] = (self._log_c_eq(p + dp, loss) - self._log_c_eq(p - dp, loss)) / (2 * h)
    sd = float(np.sqrt(max(grad @ self.fit.cov @ grad, 0.0)))
    mid = float(self._log_c_eq(p, loss))
    return float(np.exp(mid)), float(np.exp(mid - z * sd)), float(np.exp(mid + z * sd))


def fit_loss_compute(
  compute: Sequence[float], loss: Sequence[float], *, f_scale: float = 0.01, seed: int = 0
) -> LossComputeLaw:
  """Robust fit of ``L = E + A (C / C_ref)**-a`` (relative residuals) on >= 4 runs."""
  compute, loss = _arrays(compute=compute, loss=loss)
  if compute.size < 4:
    raise ValueError(f"{compute.size} runs cannot fit E, A, a with an error; need >= 4.")
  if np.any(compute <= 0) or np.any(loss <= 0):
    raise ValueError("compute and loss must be > 0.")
  c_ref = float(compute.min())
  x = compute / c_ref
  lo, hi = float(loss.min()), float(loss.max())

  def residuals(p):
    return (p[0] + p[1] * x ** (-p[2])) / loss - 1.0

  fit = fit_least_squares(
    residuals,
    names=("E", "A", "a"),
    init=[0.5 * lo, hi - 0.5 * lo, 0.3],
    lower=[0.0, 1e-9 * hi, 1e-3],
    upper=[lo, 1e3 * hi, 3.0],
    f_scale=f_scale,
    seed=seed,
  )
  return LossComputeLaw(fit=fit, c_ref=c_ref)


@dataclasses.dataclass(frozen=True)
class PowerLaw:
  """``ln y = ln k + p ln x`` with the covariance of (ln k, p) and the residual scatter."""

  log_k: float
  p: float
  cov: np.ndarray
  scatter: float

  def predict(self, x, *, z: float = 1.0, include_scatter: bool = True):
    """(y, low, high) at ``x`` with a ``z``-sigma band on ln y."""
    x = np.asarray(x, dtype=np.float64)
    if np.any(x <= 0):
      raise ValueError(f"x={x.tolist()} must be > 0.")
    g = np.stack([np.ones_like(x), np.log(x)], -1)
    mean = g @ np.array([self.log_k, self.p])
    var = np.einsum("...i,ij,...j->...", g, self.cov, g) + (
      self.scatter**2 if include_scatter else 0.0
    )
    sd = np.sqrt(var)
    return np.exp(mean), np.exp(mean - z * sd), np.exp(mean + z * sd)


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> PowerLaw:
  """OLS fit of ``ln y = ln k + p ln x`` on >= 3 points with >= 2 distinct x (e.g. C -> LR*)."""
  x, y = _arrays(x=x, y=y)
  if np.any(x <= 0) or np.any(y <= 0):
    raise ValueError("x and y must be > 0 (both enter through their logs).")
  if x.size < 3 or np.unique(x).size < 2:
    raise ValueError(f"{x.size} points with {np.unique(x).size} distinct x: need >= 3 and >= 2.")
  design = np.stack([np.ones_like(x), np.log(x)], 1)
  coef, *_ = np.linalg.lstsq(design, np.log(y), rcond=None)
  resid = np.log(y) - design @ coef
  s2 = float(resid @ resid) / (x.size - 2)
  cov = s2 * np.linalg.inv(design.T @ design)
  return PowerLaw(log_k=float(coef[0]), p=float(coef[1]), cov=cov, scatter=float(np.sqrt(s2)))


@dataclasses.dataclass(frozen=True)
class ContinuationPlan:
  """Equivalent compute of the checkpoint, the total, and the predicted optimal LR (and batch
  size, None without a batch-size law)."""

  equivalent_compute: float
  equivalent_compute_band: tuple[float, float]
  total_compute: float
  lr: float
  lr_band: tuple[float, float]
  batch_size: float | None = None
  batch_size_band: tuple[float, float] | None = None


def _at_total(law: PowerLaw, c_eq, c_band, total, z) -> tuple[float, tuple[float, float]]:
  """``law`` at the total compute; its band combines the law's own band there with the
  equivalent-compute band moved through the law (in quadrature, in ln h)."""
  h, lo, hi = (float(v) for v in law.predict(total, z=z))
  # sensitivity of ln h to ln C_eq: p * C_eq / total
  half_ceq = 0.5 * (np.log(c_band[1]) - np.log(c_band[0])) * abs(law.p) * c_eq / total
  half_law = 0.5 * (np.log(hi) - np.log(lo))
  half = float(np.hypot(half_ceq, half_law))
  return h, (float(h * np.exp(-half)), float(h * np.exp(half)))


def plan_continuation(
  loss_law: LossComputeLaw,
  lr_law: PowerLaw,
  checkpoint_loss: float,
  extra_compute: float,
  *,
  batch_law: PowerLaw | None = None,
  z: float = 1.0,
) -> ContinuationPlan:
  """Predicted optimal LR (and, with ``batch_law``, batch size) for continuing a checkpoint
  by ``extra_compute`` (module step 4).

  Each band combines its law's band at the total compute with the
  equivalent-compute band moved through the law (added in quadrature, in ln h).
  """
  if not np.isfinite(extra_compute) or extra_compute <= 0:
    raise ValueError(f"extra_compute={extra_compute!r} must be finite and > 0.")
  c_eq, c_lo, c_hi = loss_law.equivalent_compute(checkpoint_loss, z=z)
  total = c_eq + extra_compute
  lr, lr_band = _at_total(lr_law, c_eq, (c_lo, c_hi), total, z)
  batch, batch_band = None, None
  if batch_law is not None:
    batch, batch_band = _at_total(batch_law, c_eq, (c_lo, c_hi), total, z)
  return ContinuationPlan(
    equivalent_compute=c_eq,
    equivalent_compute_band=(c_lo, c_hi),
    total_compute=total,
    lr=lr,
    lr_band=lr_band,
    batch_size=batch,
    batch_size_band=batch_band,
  )
