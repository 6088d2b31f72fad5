r"""Forward-momentum scaling law (Wang et al. 2025, arXiv 2512.13705, AAAI 2026).

    L = L0 + A * S**(-alpha_S) + B * N**(-alpha_N) - C * M,

    S(t) = sum_{i<=t} eta_i                               (forward effect, the LR area)
    d_i  = eta_{i-1} - eta_i                              (the LR decrease at update i)
    m_i  = beta1 m_{i-1} + (1 - beta1) d_i,  v_i = beta2 v_{i-1} + (1 - beta2) d_i**2
    M(t) = sum_{i<=t} mhat_i / (sqrt(vhat_i) + eps)       (annealing momentum)

with Adam's bias-corrected moments ``mhat_i = m_i / (1 - beta1**i)``, ``vhat_i
= v_i / (1 - beta2**i)`` (beta1 = 0.9, beta2 = 0.999), ``N`` the model size.

Source of the formula: the paper's abstract gives only the ingredients
(training steps, maximum LR, annealing behaviour, model size); the form above
is the one stated in the authors' public reference implementation
(github.com/siqi-wang25/fm-annealing, README and ``Forward-Momentum Scaling
Law.py``), which we read but did not copy. Two choices of ours, stated because
they can matter: (1) that implementation adds ``eps`` = 1e-8 inside the
square root after scaling ``vhat`` by 1e5, which for real LRs (~1e-3) makes
``M`` depend on the LR magnitude; we use the scale-free ratio with ``eps``
1e-12 on LRs in units of the peak, so ``M`` counts decaying steps weighted by
how steadily the LR decreases, and is the same for a decay to 0 and to 0.1x
peak; (2) warmup updates are excluded from ``d_i`` as in the annealing law.

The model-size term is fitted only when the curves carry at least three
distinct ``model_size`` values (two parameters ``B, alpha_N`` plus the shared
``L0`` need three sizes); otherwise it is absorbed into ``L0`` and the fitted
law predicts only at the fitted size.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from anytime.laws.base import ScheduleLaw
from anytime.laws.curves import LossCurve

__all__ = ["ForwardMomentumLaw", "annealing_momentum"]

BETA1 = 0.9
BETA2 = 0.999
EPS = 1e-12


def annealing_momentum(lrs: np.ndarray, warmup_steps: int = 0) -> np.ndarray:
  """M after every update 1..T (module formula); ``lrs`` in units of the peak LR."""
  lrs = np.asarray(lrs, dtype=np.float64)
  d = np.zeros_like(lrs)
  d[1:] = lrs[:-1] - lrs[1:]
  d[: warmup_steps + 1] = 0.0
  m = v = 0.0
  ratio = np.zeros_like(lrs)
  # An explicit loop: the bias corrections make this a time-varying filter, and it
  # runs once per curve (features are parameter-free).
  for i in range(1, lrs.size):
    m = BETA1 * m + (1.0 - BETA1) * d[i]
    v = BETA2 * v + (1.0 - BETA2) * d[i] ** 2
    mhat = m / (1.0 - BETA1 ** (i + 1))
    vhat = v / (1.0 - BETA2 ** (i + 1))
    ratio[i] = mhat / (np.sqrt(vhat) + EPS)
  return np.cumsum(ratio)


@dataclasses.dataclass(frozen=True)
class _Features:
  s: np.ndarray
  m: np.ndarray
  n: float | None


class ForwardMomentumLaw(ScheduleLaw):
  """Wang et al. (2025): ``L = L0 + A S**-alpha_S + B N**-alpha_N - C M``."""

  label = "forward_momentum"
  _BASE = ("L0", "A", "alpha_S", "C")
  _SIZE = ("B", "alpha_N")

  def __init__(self):
    self.names = self._BASE
    self.size_ref = None

  def prepare(self, curves):
    sizes = {c.model_size for c in curves if c.model_size is not None}
    if len(sizes) >= 3:
      if any(c.model_size is None for c in curves):
        raise ValueError("model_size must be set on every curve or on none.")
      self.names = self._BASE + self._SIZE
      self.size_ref = float(min(sizes))
    else:
      self.names = self._BASE
      self.size_ref = None

  def features(self, curve: LossCurve, lr_ref: float) -> _Features:
    lrs = curve.lrs / lr_ref
    idx = curve.steps - 1
    if self.size_ref is not None and curve.model_size is None:
      raise ValueError(
        f"curve {curve.name!r}: model_size is None but the law was fitted with a size term."
      )
    n = None if self.size_ref is None else float(curve.model_size) / self.size_ref
    return _Features(np.cumsum(lrs)[idx], annealing_momentum(lrs, curve.warmup_steps)[idx], n)

  def predict_from(self, params, feats: _Features) -> np.ndarray:
    l0, a, alpha_s, c = params[:4]
    out = l0 + a * feats.s ** (-alpha_s) - c * feats.m
    if len(params) > 4:
      b, alpha_n = params[4:6]
      out = out + b * feats.n ** (-alpha_n)
    return out

  def start(self, curves, feats):
    y = np.concatenate([c.loss for c in curves])
    lo, hi = float(y.min()), float(y.max())
    init = [0.5 * lo, hi, 0.5, 1e-4 * hi]
    lower = [0.0, 1e-8 * hi, 1e-3, 0.0]
    upper = [hi, 1e4 * hi, 3.0, hi]
    if len(self.names) > 4:
      init += [0.1 * hi, 0.3]
      lower += [0.0, 1e-3]
      upper += [10.0 * hi, 3.0]
    return init, lower, upper
