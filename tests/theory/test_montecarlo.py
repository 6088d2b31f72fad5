"""Recursion vs Monte Carlo: 20k seeds, small d, within 3 standard errors at every recorded step."""

import numpy as np
import pytest

import anytime
import theory

SEEDS = 20_000
STEPS = 300
RECORD = [1, 2, 5, 10, 30, 100, 300]


def _cases():
  for kurtosis in (3.0, 1.0):
    yield kurtosis, "constant", "polyak"
    yield kurtosis, "inv_sqrt", "ema"
  yield 3.0, "cosine", "proportional_ema"


def _schedule(name, eta):
  return {
    "constant": anytime.constant(eta),
    "inv_sqrt": anytime.inverse_sqrt(eta, offset=5.0),
    "cosine": anytime.cosine(eta, STEPS, final_value=0.1 * eta),
  }[name]


def _rule(name):
  return {
    "polyak": anytime.polyak(),
    "ema": anytime.ema(0.9),
    "proportional_ema": anytime.proportional_ema(4.0),
  }[name]


@pytest.mark.parametrize("kurtosis, sched, rule", list(_cases()))
def test_recursion_within_three_standard_errors_of_monte_carlo(kurtosis, sched, rule):
  # A step at half the stability limit: the fourth-moment (kurtosis) terms matter.
  p = theory.Problem(capacity=1.5, source=2.0, dim=8, noise_variance=0.5, kurtosis=kurtosis)
  eta = 0.5 * theory.rates.stability_limit(p)
  s, avg = _schedule(sched, eta), _rule(rule)
  mc = theory.simulate_sgd(p, s, steps=STEPS, averaging=avg, seeds=SEEDS, record_steps=RECORD)
  last = theory.risk_curve(p, s, steps=STEPS, record_steps=RECORD)
  averaged = theory.risk_curve(p, s, steps=STEPS, averaging=avg, record_steps=RECORD)
  z_last = (mc.last_mean - last) / mc.last_stderr
  z_avg = (mc.avg_mean - averaged) / mc.avg_stderr
  assert np.all(np.abs(z_last) < 3), z_last
  assert np.all(np.abs(z_avg) < 3), z_avg
  # The comparison has power: a recursion with the other feature law is rejected.
  wrong = theory.Problem(capacity=1.5, source=2.0, dim=8, noise_variance=0.5, kurtosis=4 - kurtosis)
  wrong_last = theory.risk_curve(wrong, s, steps=STEPS, record_steps=RECORD)
  assert np.max(np.abs(mc.last_mean - wrong_last) / mc.last_stderr) > 5


def test_batch_size_monte_carlo():
  p = theory.Problem(capacity=2.0, source=3.0, dim=6, noise_variance=1.0, batch_size=4)
  eta = 0.6 * theory.rates.stability_limit(p)
  s = anytime.constant(eta)
  mc = theory.simulate_sgd(
    p, s, steps=60, averaging=anytime.polyak(), seeds=SEEDS, record_steps=[1, 10, 60]
  )
  last = theory.risk_curve(p, s, steps=60, record_steps=[1, 10, 60])
  avg = theory.risk_curve(p, s, steps=60, averaging=anytime.polyak(), record_steps=[1, 10, 60])
  assert np.all(np.abs(mc.last_mean - last) < 3 * mc.last_stderr)
  assert np.all(np.abs(mc.avg_mean - avg) < 3 * mc.avg_stderr)


def test_monte_carlo_validates_arguments():
  p = theory.Problem(capacity=1.5, source=2.0, dim=4, noise_variance=0.1, kurtosis=2.0)
  with pytest.raises(ValueError, match="kurtosis"):
    theory.simulate_sgd(p, anytime.constant(0.1), steps=5, seeds=10, record_steps=[5])
  q = theory.Problem(capacity=1.5, source=2.0, dim=4, noise_variance=0.1)
  with pytest.raises(ValueError, match="seeds"):
    theory.simulate_sgd(q, anytime.constant(0.1), steps=5, seeds=1, record_steps=[5])
  with pytest.raises(ValueError, match="record_steps"):
    theory.simulate_sgd(q, anytime.constant(0.1), steps=5, seeds=10, record_steps=[0, 5])
