r"""Scaling law with learning-rate annealing (Tissue et al. 2024, arXiv 2408.11029).

    L(s) = L0 + A * S1(s)**(-alpha) - C * S2(s),

    S1(s) = sum_{i=1}^{s} eta_i                       (forward area),
    m_i   = lam * m_{i-1} + (eta_{i-1} - eta_i),      m_0 = 0, eta_0 = eta_1,
    S2(s) = sum_{i=1}^{s} m_i                         (annealing area with momentum),

with ``eta`` in units of the largest fitted LR (see :mod:`anytime.laws.base`).
``lam`` (the paper's decay factor, 0.999 in most of its fits) delays the
effect of a decrease of the LR; it is fitted here (bounds [0, 0.99999]) unless
``decay`` is fixed. Updates inside the warmup contribute no annealing
(``eta_{i-1} - eta_i`` is set to 0 there), as in the paper.

Parameters: ``L0`` (loss at infinite area), ``A``, ``alpha`` (the power law in
the LR area), ``C`` (loss drop per unit annealing area), ``decay`` (= lam).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import signal

from anytime.laws.base import ScheduleLaw
from anytime.laws.curves import LossCurve

__all__ = ["AnnealingLaw", "annealing_areas"]


def annealing_areas(
  lrs: np.ndarray, decay: float, warmup_steps: int = 0
) -> tuple[np.ndarray, np.ndarray]:
  """(S1, S2) after every update 1..T for step sizes ``lrs`` (see the module formula)."""
  lrs = np.asarray(lrs, dtype=np.float64)
  if not 0.0 <= decay < 1.0:
    raise ValueError(f"decay={decay!r} must be in [0, 1).")
  drop = np.zeros_like(lrs)
  drop[1:] = lrs[:-1] - lrs[1:]
  drop[: warmup_steps + 1] = 0.0
  momentum = signal.lfilter([1.0], [1.0, -decay], drop)
  return np.cumsum(lrs), np.cumsum(momentum)


@dataclasses.dataclass(frozen=True)
class _Features:
  lrs: np.ndarray
  idx: np.ndarray
  warmup_steps: int
  s1: np.ndarray


class AnnealingLaw(ScheduleLaw):
  """Tissue et al. (2024): ``L = L0 + A S1**-alpha - C S2``.

  Args:
    decay: fix the momentum factor ``lam`` to this value; None fits it.
  """

  label = "annealing"

  def __init__(self, decay: float | None = None):
    if decay is not None and not 0.0 <= decay < 1.0:
      raise ValueError(f"decay={decay!r} must be None or in [0, 1).")
    self.decay = decay
    self.names = ("L0", "A", "alpha", "C") + (("decay",) if decay is None else ())

  def features(self, curve: LossCurve, lr_ref: float) -> _Features:
    lrs = curve.lrs / lr_ref
    idx = curve.steps - 1
    return _Features(lrs, idx, curve.warmup_steps, np.cumsum(lrs)[idx])

  def predict_from(self, params, feats: _Features) -> np.ndarray:
    l0, a, alpha, c = params[:4]
    decay = self.decay if self.decay is not None else params[4]
    _, s2 = annealing_areas(feats.lrs, decay, feats.warmup_steps)
    return l0 + a * feats.s1 ** (-alpha) - c * s2[feats.idx]

  def start(self, curves, feats):
    y = np.concatenate([c.loss for c in curves])
    lo, hi = float(y.min()), float(y.max())
    init = [0.5 * lo, hi, 0.5, 1e-3 * hi] + ([0.99] if self.decay is None else [])
    lower = [0.0, 1e-8 * hi, 1e-3, 0.0] + ([0.0] if self.decay is None else [])
    upper = [hi, 1e4 * hi, 3.0, 10.0 * hi] + ([0.99999] if self.decay is None else [])
    return init, lower, upper
