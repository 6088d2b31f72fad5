"""Compressed spectrum vs the full recursion: error bounded (speed: experiments.bench recursion)."""

import math

import numpy as np
import pytest

import anytime
import theory
from theory import compressed, recursion


@pytest.mark.parametrize("a, b", [(1.1, 2.2), (1.5, 1.5), (1.9, 3.8)])
def test_compressed_within_one_percent_of_full_at_every_recorded_step(a, b):
  p = theory.Problem(capacity=a, source=b, dim=100_000, noise_variance=0.01)
  peak = 0.5 / p.trace()
  gamma = theory.rates.optimal_decay(a, b)
  scheds = [
    anytime.constant(peak),
    anytime.inverse_sqrt(peak, offset=1.0),
    anytime.polynomial_decay(peak, max(gamma, 0.1), offset=1.0),
  ]
  lrs = recursion.lr_array(scheds, 1500)
  full = recursion.run(p, lrs, averaging=anytime.polyak(), mode="full")
  comp = recursion.run(p, lrs, averaging=anytime.polyak(), mode="compressed")
  assert compressed.spectrum(p).size < 1000  # >100x fewer groups than coordinates
  for f, c in ((full.last, comp.last), (full.averaged, comp.averaged)):
    err = np.max(np.abs(c / f - 1))
    assert err < 1e-2
  # Coarse bins are measurably worse than the default: the error is real, and shrinks.
  coarse = recursion.run(p, lrs, averaging=anytime.polyak(), mode="compressed", head=4, ratio=2.0)
  assert np.max(np.abs(coarse.last / full.last - 1)) > np.max(np.abs(comp.last / full.last - 1))


def test_single_coordinate_bins_reproduce_the_full_recursion():
  p = theory.Problem(capacity=1.5, source=2.0, dim=300, noise_variance=0.1)
  full = recursion.run(p, np.full(200, 0.3), averaging=anytime.polyak(), mode="full")
  # ratio so small that every bin holds one coordinate: identical up to rounding.
  spec = compressed.spectrum(p, head=10, ratio=1.0 + 1e-9)
  assert spec.size == 300
  comp = recursion.run(p, np.full(200, 0.3), averaging=anytime.polyak(), spectrum=spec)
  np.testing.assert_allclose(comp.last, full.last, rtol=1e-12)
  np.testing.assert_allclose(comp.averaged, full.averaged, rtol=1e-12)


def test_infinite_dim_is_the_limit_of_large_finite_dim():
  # With source 3 the tail beyond 1e6 holds 0.5 * zeta(3, 1e6) ~ 2.5e-13 of risk.
  inf = theory.Problem(capacity=1.5, source=3.0, dim=math.inf, noise_variance=0.01)
  big = theory.Problem(capacity=1.5, source=3.0, dim=10**7, noise_variance=0.01)
  s = anytime.inverse_sqrt(0.3, offset=1.0)
  r_inf = theory.risk_curve(inf, s, steps=3000, averaging=anytime.polyak())
  r_big = theory.risk_curve(big, s, steps=3000, averaging=anytime.polyak())
  np.testing.assert_allclose(r_inf, r_big, rtol=1e-3)
  # The analytic remainder matters when the tail is heavy (source close to 1).
  heavy = theory.Problem(capacity=1.5, source=1.2, dim=math.inf, noise_variance=0.0)
  spec = compressed.spectrum(heavy)
  assert spec.risk(spec.m0) == pytest.approx(heavy.initial_risk(), rel=1e-10)
  remainder = 0.5 * spec.weight[-1] * spec.lam[-1] * spec.m0[-1]
  assert remainder > 0.005 * heavy.initial_risk()  # d = inf differs from a 1e10 cut


def test_spectrum_validates_arguments():
  p = theory.Problem(capacity=1.5, source=2.0, dim=100, noise_variance=0.0)
  with pytest.raises(ValueError, match="ratio"):
    compressed.spectrum(p, ratio=1.0)
  with pytest.raises(ValueError, match="head"):
    compressed.spectrum(p, head=0)
  with pytest.raises(ValueError, match="mode"):
    recursion.spectrum_for(p, "fast")


@pytest.mark.slow
def test_compressed_on_the_paper_workload():
  # d = 500k, 50k steps (several minutes): the target of <= 1% at every recorded step.
  p = theory.Problem(capacity=1.1, source=2.2, dim=500_000, noise_variance=0.01)
  peak = 0.5 / p.trace()
  lrs = recursion.lr_array([anytime.constant(peak), anytime.inverse_sqrt(peak, offset=1.0)], 50_000)
  full = recursion.run(p, lrs, averaging=anytime.polyak(), mode="full")
  comp = recursion.run(p, lrs, averaging=anytime.polyak(), mode="compressed")
  assert np.max(np.abs(comp.last / full.last - 1)) < 1e-2
  assert np.max(np.abs(comp.averaged / full.averaged - 1)) < 1e-2
