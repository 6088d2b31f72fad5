"""theory.Problem: validation and the power-law spectrum."""

import math

import numpy as np
import pytest

import theory


def test_spectrum_and_target_follow_the_power_laws():
  p = theory.Problem(capacity=1.5, source=2.5, dim=50, noise_variance=0.1)
  i = np.arange(1, 51)
  np.testing.assert_allclose(p.eigenvalues(), i**-1.5, rtol=1e-15)
  np.testing.assert_allclose(p.eigenvalues() * p.target() ** 2, i**-2.5, rtol=1e-14)
  np.testing.assert_allclose(p.initial_risk(), 0.5 * np.sum(i**-2.5), rtol=1e-14)


def test_infinite_dim_sums_are_limits_of_finite_ones():
  inf = theory.Problem(capacity=2.0, source=3.0, dim=math.inf, noise_variance=0.0)
  assert inf.trace() == pytest.approx(math.pi**2 / 6, rel=1e-12)
  big = theory.Problem(capacity=2.0, source=3.0, dim=10**6, noise_variance=0.0)
  assert big.initial_risk() == pytest.approx(inf.initial_risk(), rel=1e-11)


@pytest.mark.parametrize(
  "kwargs, field",
  [
    (dict(capacity=1.0), "capacity"),
    (dict(capacity=float("nan")), "capacity"),
    (dict(source=0.0), "source"),
    (dict(source=1.0, dim=math.inf), "source"),
    (dict(dim=0), "dim"),
    (dict(dim=2.5), "dim"),
    (dict(dim=True), "dim"),
    (dict(noise_variance=-1e-3), "noise_variance"),
    (dict(kurtosis=0.5), "kurtosis"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=2.0), "batch_size"),
  ],
)
def test_invalid_parameters_name_the_field(kwargs, field):
  base = dict(capacity=1.5, source=2.0, dim=10, noise_variance=0.1)
  base.update(kwargs)
  with pytest.raises(ValueError, match=field):
    theory.Problem(**base)
