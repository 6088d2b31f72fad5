"""The exact recursion against closed forms, a dense-matrix derivation and its own contract."""

import math

import jax
import numpy as np
import pytest

import anytime
import theory
from theory import recursion


def _dense_gaussian_recursion(lam, wstar, lrs, sigma2, batch, rhos):
  """Full covariance recursion via Isserlis (Gaussian x): independent of the diagonal closure.

  E[x x^T M x x^T] = 2 H M H + tr(H M) H, so for g = (1/B) sum_j x_j (x_j . e - eps_j):
  E[e' e'^T] = M - eta (H M + M H) + eta**2 [(1 - 1/B) H M H + (1/B)(2 H M H + tr(HM) H + s2 H)].
  """
  h = np.diag(lam)
  e0 = -wstar
  m = np.outer(e0, e0)
  cross = m.copy()  # E[e ebar^T]
  mbar = m.copy()
  last, avg = [], []
  for eta, r in zip(lrs, rhos, strict=True):
    hm, mh = h @ m, m @ h
    hmh = h @ m @ h
    noise = (1 - 1 / batch) * hmh + (2 * hmh + np.trace(hm) * h + sigma2 * h) / batch
    m_new = m - eta * (hm + mh) + eta**2 * noise
    q = cross - eta * h @ cross  # E[e' ebar^T] = (I - eta H) E[e ebar^T]
    mbar = (1 - r) ** 2 * mbar + r * (1 - r) * (q + q.T) + r**2 * m_new
    cross = (1 - r) * q + r * m_new
    m = m_new
    last.append(0.5 * np.trace(h @ m))
    avg.append(0.5 * np.trace(h @ mbar))
  return np.array(last), np.array(avg)


@pytest.mark.parametrize("batch", [1, 3])
def test_diagonal_recursion_equals_dense_isserlis_recursion(batch):
  p = theory.Problem(capacity=1.3, source=1.7, dim=6, noise_variance=0.3, batch_size=batch)
  steps = 40
  sched = anytime.inverse_sqrt(0.6, offset=3.0)
  lrs = recursion.lr_array(sched, steps)[0]
  rule = anytime.proportional_ema(2.0)
  with jax.enable_x64(True):
    rhos = np.asarray(rule(np.arange(1.0, steps + 1)), dtype=np.float64)
  want_last, want_avg = _dense_gaussian_recursion(
    p.eigenvalues(), p.target(), lrs, 0.3, batch, rhos
  )
  rec = np.arange(1, steps + 1)
  got = recursion.run(p, lrs, averaging=rule, record_steps=rec)
  np.testing.assert_allclose(got.last[0], want_last, rtol=1e-12)
  np.testing.assert_allclose(got.averaged[0], want_avg, rtol=1e-12)


def test_one_gaussian_coordinate_closed_form():
  # d = 1, lam = 1: m' = (1 - 2 eta + 3 eta**2) m + eta**2 sigma2 (kappa = 3, B = 1).
  p = theory.Problem(capacity=2.0, source=2.0, dim=1, noise_variance=0.5)
  eta, k = 0.2, np.arange(0, 31)
  rho = 1 - 2 * eta + 3 * eta**2
  fixed = eta**2 * 0.5 / (1 - rho)
  want = 0.5 * (fixed + (1.0 - fixed) * rho**k)
  got = theory.risk_curve(p, anytime.constant(eta), steps=30, record_steps=k)
  np.testing.assert_allclose(got, want, rtol=1e-13)


def test_update_k_uses_schedule_of_k_minus_1():
  # A schedule that is 0 at count 0: the first update must not move, the second must.
  p = theory.Problem(capacity=2.0, source=2.0, dim=3, noise_variance=0.0)
  sched = anytime.constant(0.3, warmup_steps=5, init_value=0.0)
  r = theory.risk_curve(p, sched, steps=2, record_steps=[0, 1, 2])
  assert r[1] == r[0]
  assert r[2] < r[1]


def test_averaging_with_weight_one_is_the_last_iterate_and_polyak_is_smoother():
  p = theory.Problem(capacity=1.5, source=2.0, dim=20, noise_variance=0.1)
  s = anytime.constant(0.3)
  last = theory.risk_curve(p, s, steps=5000)
  same = theory.risk_curve(p, s, steps=5000, averaging=anytime.ema(0.0))
  np.testing.assert_allclose(same, last, rtol=1e-14)
  polyak = theory.risk_curve(p, s, steps=5000, averaging=anytime.polyak())
  assert polyak[-1] < 0.5 * last[-1]  # averaging removes most of the noise floor


def test_vectorised_list_matches_individual_calls():
  p = theory.Problem(capacity=1.5, source=3.0, dim=30, noise_variance=0.01)
  scheds = [anytime.constant(0.2), anytime.cosine(0.4, 100, final_value=0.04)]
  both = theory.risk_curve(p, scheds, steps=100, averaging=anytime.polyak())
  assert both.shape[0] == 2
  for i, s in enumerate(scheds):
    one = theory.risk_curve(p, s, steps=100, averaging=anytime.polyak())
    np.testing.assert_allclose(both[i], one, rtol=1e-14)


def test_divergence_is_inf_never_nan():
  p = theory.Problem(capacity=1.5, source=2.0, dim=200, noise_variance=0.01)
  limit = theory.rates.stability_limit(p)
  scheds = [anytime.constant(0.5 * limit), anytime.constant(3.0 * limit)]
  rec = np.unique(np.geomspace(1, 20000, 30).astype(int))
  r = theory.risk_curve(p, scheds, steps=20000, averaging=anytime.polyak(), record_steps=rec)
  assert not np.any(np.isnan(r))
  assert np.all(np.isfinite(r[0]))
  assert np.isinf(r[1, -1])
  first = int(np.argmax(np.isinf(r[1])))
  assert np.all(np.isinf(r[1, first:]))


def test_float64_increment_form_keeps_long_runs_exact():
  # Noise-free single coordinate: risk 0.5 * (1 - eta)**(2k) in closed form after 1e5 steps.
  p = theory.Problem(capacity=2.0, source=2.0, dim=1, noise_variance=0.0, kurtosis=1.0)
  eta = 1e-4
  k = np.array([10**4, 10**5])
  got = theory.risk_curve(p, anytime.constant(eta), steps=10**5, record_steps=k)
  np.testing.assert_allclose(got, 0.5 * (1 - eta) ** (2 * k), rtol=1e-10)


@pytest.mark.parametrize(
  "kwargs, field",
  [
    (dict(steps=0), "steps"),
    (dict(steps=10, record_steps=[5, 3]), "record_steps"),
    (dict(steps=10, record_steps=[11]), "record_steps"),
    (dict(steps=10, averaging=3), "averaging"),
    (dict(steps=10, mode="exactish"), "mode"),
  ],
)
def test_invalid_arguments_name_the_field(kwargs, field):
  p = theory.Problem(capacity=1.5, source=2.0, dim=5, noise_variance=0.0)
  with pytest.raises(ValueError, match=field):
    theory.risk_curve(p, anytime.constant(0.1), **kwargs)


def test_infinite_dim_runs_on_compressed_spectrum():
  p = theory.Problem(capacity=1.5, source=2.0, dim=math.inf, noise_variance=0.01)
  r = theory.risk_curve(p, anytime.constant(0.2), steps=100, record_steps=[0, 100])
  assert r[0] == pytest.approx(p.initial_risk(), rel=1e-12)
  assert 0 < r[1] < r[0]
