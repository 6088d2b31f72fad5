"""What the three schedule-aware loss laws share: fitting on curves, predicting curves.

A law maps a run's learning-rate sequence to its loss curve, ``L(t) =
f(params; eta_1..eta_t)``. :class:`ScheduleLaw` fits the parameters on a set
of :class:`~anytime.laws.curves.LossCurve` (robust bounded least squares, see
:mod:`anytime.laws.fitting`) and returns a :class:`FittedLaw` that predicts the
loss curve of any other LR sequence.

Learning rates are divided by ``lr_ref``, the largest LR over the fitted
curves, so areas are in "steps at peak LR" and the parameters are well scaled;
the same ``lr_ref`` is used for prediction, so the fitted law compares
schedules of different peak LRs correctly.

Residuals are relative, ``(L_pred - L) / L``, by default: the laws are judged
on relative errors, and the loss spans orders of magnitude on theory curves.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from anytime.laws.curves import LossCurve, from_schedule
from anytime.laws.fitting import FitResult, fit_least_squares

__all__ = ["FittedLaw", "ScheduleLaw", "check_curves"]


def check_curves(curves: Sequence[LossCurve]) -> list[LossCurve]:
  """Validates a non-empty sequence of LossCurve with distinct names."""
  if isinstance(curves, LossCurve):
    curves = [curves]
  curves = list(curves)
  if not curves or not all(isinstance(c, LossCurve) for c in curves):
    raise ValueError(f"curves={curves!r} must be a non-empty sequence of LossCurve.")
  names = [c.name for c in curves]
  if len(set(names)) != len(names):
    raise ValueError(f"curve names {names} must be distinct.")
  return curves


class ScheduleLaw:
  """Base class: subclasses define ``names``, ``features``, ``predict_from`` and ``start``."""

  names: tuple[str, ...] = ()
  label: str = ""

  def features(self, curve: LossCurve, lr_ref: float) -> Any:
    """Parameter-free quantities of a curve (areas, momenta), computed once."""
    raise NotImplementedError

  def predict_from(self, params: np.ndarray, feats: Any) -> np.ndarray:
    """The law's loss at the curve's steps."""
    raise NotImplementedError

  def start(self, curves: Sequence[LossCurve], feats: Sequence[Any]):
    """(init, lower, upper) for the parameters."""
    raise NotImplementedError

  def prepare(self, curves: Sequence[LossCurve]) -> None:
    """Hook to adapt ``names`` to the data (e.g. the model-size term); default: nothing."""

  def fit(
    self,
    curves: Sequence[LossCurve],
    *,
    residual: str = "relative",
    f_scale: float = 0.01,
    n_restarts: int = 8,
    seed: int = 0,
  ) -> FittedLaw:
    """Fits the law jointly on ``curves``.

    Args:
      curves: LossCurve(s); together they need more points than parameters.
      residual: "relative" ((pred - loss) / loss), "log" (ln pred - ln loss: the
        multi-power paper's residual; a prediction <= 0 counts as a huge residual) or
        "absolute" (pred - loss).
      f_scale: Huber threshold in residual units (default 1%, relative; the multi-power
        paper uses 1e-3 on log loss).
      n_restarts: random restarts besides the data-driven start.
      seed: seeds the restarts.
    """
    curves = check_curves(curves)
    if residual not in ("relative", "log", "absolute"):
      raise ValueError(f"residual={residual!r} must be 'relative', 'log' or 'absolute'.")
    if residual != "absolute" and any(np.any(c.loss <= 0) for c in curves):
      raise ValueError(f"residual={residual!r} needs losses > 0; use residual='absolute'.")
    law = copy.deepcopy(self)  # prepare() may adapt the copy to the data
    law.prepare(curves)
    lr_ref = max(float(c.lrs.max()) for c in curves)
    feats = [law.features(c, lr_ref) for c in curves]
    y = np.concatenate([c.loss for c in curves])
    scale = y if residual == "relative" else np.ones_like(y)

    def residuals(p):
      pred = np.concatenate([law.predict_from(p, f) for f in feats])
      if residual == "log":
        with np.errstate(invalid="ignore", divide="ignore"):
          return np.log(pred) - np.log(y)  # NaN where pred <= 0: the fit's 1e6 penalty
      return (pred - y) / scale

    init, lower, upper = law.start(curves, feats)
    result = fit_least_squares(
      residuals,
      names=law.names,
      init=init,
      lower=lower,
      upper=upper,
      f_scale=f_scale,
      n_restarts=n_restarts,
      seed=seed,
    )
    return FittedLaw(law=law, result=result, lr_ref=lr_ref, fitted_on=tuple(c.name for c in curves))


@dataclasses.dataclass(frozen=True)
class FittedLaw:
  """A law with fitted parameters; predicts loss curves of other schedules."""

  law: ScheduleLaw
  result: FitResult
  lr_ref: float
  fitted_on: tuple[str, ...]

  @property
  def params(self) -> dict[str, float]:
    return self.result.as_dict()

  def predict(self, curve: LossCurve) -> np.ndarray:
    """Predicted loss at ``curve.steps`` from ``curve.lrs`` (its ``loss`` is not used)."""
    return self.law.predict_from(self.result.params, self.law.features(curve, self.lr_ref))

  def predict_interval(self, curve: LossCurve, *, z: float = 1.0):
    """(prediction, low, high) at ``curve.steps``: a ``z``-sigma band from the parameter
    covariance (delta method, central differences). Parameters at a bound carry no
    variance, so the band is too narrow when some are (see ``result.at_bound``)."""
    if not z > 0:
      raise ValueError(f"z={z!r} must be > 0.")
    feats = self.law.features(curve, self.lr_ref)
    p = self.result.params
    mid = self.law.predict_from(p, feats)
    grad = np.zeros((mid.size, p.size))
    for j in np.flatnonzero(~self.result.at_bound):
      h = 1e-6 * max(abs(p[j]), 1e-6)
      up, dn = p.copy(), p.copy()
      up[j] += h
      dn[j] -= h
      grad[:, j] = (self.law.predict_from(up, feats) - self.law.predict_from(dn, feats)) / (2 * h)
    sd = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", grad, self.result.cov, grad), 0.0, None))
    return mid, mid - z * sd, mid + z * sd

  def predict_schedule(
    self,
    schedule: Callable,
    total_steps: int,
    steps: Sequence[int],
    *,
    warmup_steps: int = 0,
    model_size: float | None = None,
  ) -> np.ndarray:
    """Predicted loss at ``steps`` of a run with ``schedule`` (update k uses schedule(k - 1))."""
    steps = np.asarray(steps)
    dummy = from_schedule(
      "prediction",
      schedule,
      total_steps,
      steps,
      np.ones(steps.shape),
      warmup_steps=warmup_steps,
      model_size=model_size,
    )
    return self.predict(dummy)
