"""Laws: predict loss curves across LR schedules, the optimal LR in (N, D), continued pretraining.

* :mod:`anytime.laws.curves`: :class:`LossCurve` (per-update LRs + measured
  losses), validation, reading run logs (JSONL/CSV).
* :mod:`anytime.laws.fitting`: robust bounded least squares (Huber, restarts)
  with parameter covariance; residual bootstrap.
* Schedule-aware loss laws, each ``Law().fit(curves) -> FittedLaw`` whose
  ``predict(curve)`` / ``predict_schedule(schedule, T, steps)`` give loss curves:
  :class:`AnnealingLaw` (Tissue et al. 2024), :class:`MultiPowerLaw` (Luo et
  al. 2025), :class:`ForwardMomentumLaw` (Wang et al. 2025).
* :mod:`anytime.laws.optimal_lr`: quadratic fit of loss vs log LR per (N, D),
  and the power law ``LR* = C N**alpha D**beta`` with an extrapolation band.
* :mod:`anytime.laws.continued`: continued pretraining (loss-compute law,
  compute -> optimal LR, equivalent compute of a checkpoint).
"""

from anytime.laws.annealing import AnnealingLaw
from anytime.laws.base import FittedLaw, ScheduleLaw
from anytime.laws.curves import LossCurve, curve_from_records, from_schedule, read_runs
from anytime.laws.fitting import FitResult, bootstrap, fit_least_squares
from anytime.laws.forward_momentum import ForwardMomentumLaw
from anytime.laws.multipower import MultiPowerLaw

__all__ = [
  "AnnealingLaw",
  "FitResult",
  "FittedLaw",
  "ForwardMomentumLaw",
  "LossCurve",
  "MultiPowerLaw",
  "ScheduleLaw",
  "bootstrap",
  "curve_from_records",
  "fit_least_squares",
  "from_schedule",
  "read_runs",
]
