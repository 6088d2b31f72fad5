"""theory: SGD on linear regression under source/capacity conditions (see docs/design.md).

* :class:`Problem`: the data distribution (capacity, source, dim, noise, kurtosis, batch).
* :func:`risk_curve`: exact expected excess risk of SGD with any ``anytime.schedules``
  schedule and ``anytime.averaging`` rule (second-moment recursion, float64);
  :func:`theory.recursion.run` is the vectorised low-level form on step-size arrays.
* :mod:`theory.compressed`: exact head + geometric bins (+ analytic remainder) for
  huge or infinite dim.
* :func:`simulate_sgd`: Monte-Carlo SGD over many seeds, to validate the recursion.
* :mod:`theory.rates`: closed-form exponents, optimal horizon-free decay, stability.

Excess risk convention: ``0.5 * E[(x . (w - w*))**2]``, SGD from ``w_0 = 0``.
"""

from theory import compressed, rates, recursion
from theory.montecarlo import MonteCarlo, simulate_sgd
from theory.problems import Problem
from theory.recursion import Curves, lr_array, risk_curve

__all__ = [
  "Curves",
  "MonteCarlo",
  "Problem",
  "compressed",
  "lr_array",
  "rates",
  "recursion",
  "risk_curve",
  "simulate_sgd",
]
