"""Closed-form rates and stability against the exact recursion."""

import math

import numpy as np
import pytest

import anytime
import theory
from theory import rates, recursion

# Measured log-log slopes of the exact recursion (d = inf, compressed) over [T/10, T].
T = 300_000
RECORD = np.unique(np.round(np.geomspace(T // 10, T, 40)).astype(np.int64))

# (capacity a, source b, [gammas]): per problem one vectorised scan over the gammas.
SLOPE_SETTINGS = [
  (1.5, 1.2, [0.0]),  # b < a: constant + averaging optimal, bias-limited (b-1)/a
  (2.0, 1.5, [0.0, 0.3]),  # b < a: constant optimal; a decay only slows the bias
  (1.5, 2.25, [0.0, 1 / 3]),  # a < b < 2a: decay needed, gamma* = 1 - a/b reaches minimax
  (1.5, 6.0, [0.25, 0.6]),  # b > 2a: noise-limited; gamma > 1/2 leaves noise unlearned
  (1.2, 6.0, [0.6]),  # b > 2a, gamma > 1/2: the (1-gamma)(2a-1)/a regime
  (1.5, 3.0, [0.3]),
]


def _slope(y):
  return -np.polyfit(np.log(RECORD), np.log(y), 1)[0]


@pytest.fixture(scope="module")
def measured():
  out = {}
  for a, b, gammas in SLOPE_SETTINGS:
    p = theory.Problem(capacity=a, source=b, dim=math.inf, noise_variance=1.0)
    eta = 0.5 * rates.stability_limit(p)
    scheds = [
      anytime.polynomial_decay(eta, g, offset=1.0) if g > 0 else anytime.constant(eta)
      for g in gammas
    ]
    c = recursion.run(
      p,
      recursion.lr_array(scheds, T),
      averaging=anytime.polyak(),
      record_steps=RECORD,
      mode="compressed",
      head=128,
      ratio=1.05,
    )
    for i, g in enumerate(gammas):
      out[(a, b, g)] = (_slope(c.averaged[i]), _slope(c.last[i]))
  return out


def test_averaged_slopes_match_predicted_exponents(measured):
  rows = [(k, v[0], rates.averaged_exponent(*k)) for k, v in measured.items()]
  assert len(rows) >= 6
  bad = [(k, round(m, 3), round(p, 3)) for k, m, p in rows if abs(m - p) > 0.05]
  assert not bad, bad
  # Both regimes are covered: constant optimal (b <= a) and decay needed (b > a).
  assert any(b <= a and g == rates.optimal_decay(a, b) for (a, b, g) in measured)
  assert any(b > a and g > 0 for (a, b, g) in measured)


def test_last_iterate_slopes_match_predicted_exponents(measured):
  keys = [(2.0, 1.5, 0.3), (1.5, 6.0, 0.25), (1.5, 3.0, 0.3), (1.2, 6.0, 0.6)]
  for k in keys:
    assert measured[k][1] == pytest.approx(rates.last_exponent(*k), abs=0.05), k


def test_unlearned_noise_term_is_needed_beyond_gamma_one_half(measured):
  # Without the (1-gamma)(2a-1)/a term the averaged exponent would be 1 - (1-gamma)/a.
  for a, b, g in [(1.2, 6.0, 0.6), (1.5, 6.0, 0.6)]:
    naive = min(rates.bias_exponent(a, b, g), 1 - (1 - g) / a)
    assert abs(measured[(a, b, g)][0] - naive) > 0.1


def test_optimal_decay_maximises_the_exponent():
  gammas = np.linspace(0, 0.999, 9991)
  for a in (1.1, 1.5, 1.9, 2.5):
    for b in (1.05, 0.8 * a, a, 1.5 * a, 2 * a, 3 * a, 6.0):
      if b <= 1:
        continue
      vals = np.array([rates.averaged_exponent(a, b, g) for g in gammas])
      best = rates.averaged_exponent(a, b, rates.optimal_decay(a, b))
      assert best == pytest.approx(rates.optimal_rate(a, b), abs=1e-12)
      assert best >= vals.max() - 1e-12  # no gamma on the grid beats gamma*
      assert best == pytest.approx(vals.max(), abs=1e-3)
      assert rates.optimal_rate(a, b) <= rates.minimax_exponent(a, b) + 1e-12
      last = np.array([rates.last_exponent(a, b, g) for g in gammas])
      assert rates.optimal_last_rate(a, b) == pytest.approx(last.max(), abs=1e-3)


def test_paper_gamma_star_holds_exactly_up_to_b_equal_2a():
  for a in (1.1, 1.5, 1.9):
    for b in (max(1.05, 0.9 * a), a, 1.5 * a, 2 * a):
      assert rates.optimal_decay(a, b) == pytest.approx(rates.paper_optimal_decay(a, b))
    b = 3 * a
    assert rates.optimal_decay(a, b) == 0.5 < rates.paper_optimal_decay(a, b)
    assert rates.optimal_rate(a, b) < rates.minimax_exponent(a, b)
    # the paper's exponent is strictly worse there
    assert rates.averaged_exponent(a, b, rates.paper_optimal_decay(a, b)) < rates.optimal_rate(a, b)


@pytest.mark.parametrize("a", [1.5, 2.5])
def test_stability_limit_separates_bounded_from_diverging(a):
  p = theory.Problem(capacity=a, source=2.0, dim=2000, noise_variance=0.01)
  limit = rates.stability_limit(p)
  assert rates.stability_k(p, limit) == pytest.approx(1.0, rel=1e-6)
  assert limit < 2 / p.trace()  # tighter than 2 / tr H
  rec = [20_000, 40_000]
  r = theory.risk_curve(
    p,
    [anytime.constant(0.97 * limit), anytime.constant(1.03 * limit)],
    steps=40_000,
    record_steps=rec,
  )
  k = rates.stability_k(p, 0.97 * limit)
  assert np.all(r[0] < 0.5 * 0.01 * k / (1 - k) + p.initial_risk())  # bounded
  assert r[1, 1] > 1e6 * r[1, 0] or np.isinf(r[1, 1])  # geometric growth above the limit
  far = theory.risk_curve(p, anytime.constant(1.5 * limit), steps=40_000, record_steps=rec)
  assert np.all(np.isinf(far)) and not np.any(np.isnan(far))


def test_step_one_over_trace_unstable_for_large_capacity():
  # docs/design.md section 7: for Gaussian features 1/tr H is unstable from capacity ~2.01.
  for a, stable in [(1.5, True), (2.0, True), (2.5, False), (3.0, False)]:
    p = theory.Problem(capacity=a, source=2.0, dim=100_000, noise_variance=0.01)
    assert (rates.stability_k(p, 1 / p.trace()) < 1) == stable


def test_stationary_risk_matches_closed_form():
  # Constant step: R_inf = 0.5 sigma2 K / (1 - K), reached by the recursion.
  p = theory.Problem(capacity=2.0, source=2.0, dim=50, noise_variance=0.2, batch_size=2)
  eta = 0.5 * rates.stability_limit(p)
  k = rates.stability_k(p, eta)
  r = theory.risk_curve(p, anytime.constant(eta), steps=200_000, record_steps=[200_000])
  assert r[0] == pytest.approx(0.5 * 0.2 * k / (1 - k), rel=1e-9)


def test_rates_validate_arguments():
  with pytest.raises(ValueError, match="gamma"):
    rates.averaged_exponent(1.5, 2.0, 1.0)
  with pytest.raises(ValueError, match="capacity"):
    rates.optimal_decay(1.0, 2.0)
  with pytest.raises(ValueError, match="source"):
    rates.optimal_decay(1.5, 1.0)


@pytest.mark.parametrize("kurtosis, batch", [(3.0, 1), (1.0, 1), (1.0, 2), (3.0, 4)])
def test_stability_limit_equals_spectral_radius_one(kurtosis, batch):
  # Independent check: the second-moment map as a dense matrix, its spectral radius by numpy.
  p = theory.Problem(
    capacity=1.2, source=2.0, dim=3, noise_variance=0.1, kurtosis=kurtosis, batch_size=batch
  )
  lam = p.eigenvalues()

  def radius(eta):
    coef = 1 + (kurtosis - 2) / batch
    m = np.diag(1 - 2 * eta * lam + coef * eta**2 * lam**2) + (eta**2 / batch) * np.outer(lam, lam)
    return np.max(np.abs(np.linalg.eigvals(m)))

  limit = rates.stability_limit(p)
  assert radius(limit * (1 - 1e-6)) < 1 < radius(limit * (1 + 1e-6))
