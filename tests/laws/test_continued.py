"""Continued pretraining: loss-compute law, equivalent compute, planned LR on a known law."""

import numpy as np
import pytest

from anytime.laws.continued import fit_loss_compute, fit_power_law, plan_continuation

E, A, A_EXP, C_REF = 1.8, 1.2, 0.3, 1e18
LR_K, LR_P = 3e3, -0.2  # lr*(C) = LR_K * C**LR_P


def true_loss(c):
  return E + A * (np.asarray(c) / C_REF) ** (-A_EXP)


def proxies(seed, noise=2e-3):
  rng = np.random.default_rng(seed)
  compute = C_REF * np.geomspace(1, 100, 8)
  loss = true_loss(compute) * (1 + noise * rng.standard_normal(compute.size))
  lr = LR_K * compute**LR_P * np.exp(0.05 * rng.standard_normal(compute.size))
  return compute, loss, lr


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_equivalent_compute_within_25_percent_and_band(seed):
  compute, loss, _ = proxies(seed)
  law = fit_loss_compute(compute, loss)
  for c_true in (3e18, 2e19, 3e20):  # the last 3x beyond the largest proxy
    c_eq, low, high = law.equivalent_compute(float(true_loss(c_true)), z=3.0)
    assert abs(c_eq / c_true - 1) < 0.25, (c_true, c_eq)
    assert low < c_true < high


def test_planned_lr_matches_law_at_total_compute():
  compute, loss, lr = proxies(7)
  plan = plan_continuation(
    fit_loss_compute(compute, loss), fit_power_law(compute, lr), float(true_loss(2e19)), 5e19
  )
  truth = LR_K * (2e19 + 5e19) ** LR_P
  assert abs(np.log2(plan.lr / truth)) < 0.5
  assert plan.lr_band[0] < truth < plan.lr_band[1]
  assert abs(plan.total_compute / 7e19 - 1) < 0.25


def test_errors():
  compute, loss, lr = proxies(0)
  law = fit_loss_compute(compute, loss)
  with pytest.raises(ValueError, match="irreducible"):
    law.equivalent_compute(E - 0.1)
  with pytest.raises(ValueError, match="same length"):
    fit_loss_compute(compute, loss[:-1])
  with pytest.raises(ValueError, match="need >= 4"):
    fit_loss_compute(compute[:3], loss[:3])
  with pytest.raises(ValueError, match="> 0"):
    fit_power_law(compute, -lr)
  with pytest.raises(ValueError, match="extra_compute"):
    plan_continuation(law, fit_power_law(compute, lr), float(loss[3]), -1.0)


B_K, B_P = 128 / C_REF**0.3, 0.3  # B*(C) = B_K * C**B_P


def batch_proxies(seed, noise=0.1):
  rng = np.random.default_rng(100 + seed)
  compute = C_REF * np.geomspace(1, 100, 8)
  return compute, B_K * compute**B_P * np.exp(noise * rng.standard_normal(compute.size))


def test_batch_law_exponent_within_its_error():
  # Over 20 noisy draws the fitted exponent's z-score follows N(0, 1): all within 3.5 sigma and
  # the spread of z about 1 (the reported error is neither far too small nor far too large).
  z = []
  for seed in range(20):
    law = fit_power_law(*batch_proxies(seed))
    z.append((law.p - B_P) / np.sqrt(law.cov[1, 1]))
  z = np.array(z)
  assert np.all(np.abs(z) < 3.5), z
  assert 0.5 < np.std(z) < 1.6, np.std(z)


def test_planned_batch_size_matches_law_at_total_compute():
  compute, loss, lr = proxies(7)
  batch_law = fit_power_law(*batch_proxies(7))
  loss_law, lr_law = fit_loss_compute(compute, loss), fit_power_law(compute, lr)
  c_true, extra = 2e19, 5e19
  plan = plan_continuation(loss_law, lr_law, float(true_loss(c_true)), extra, batch_law=batch_law)
  truth = B_K * (c_true + extra) ** B_P
  assert abs(np.log2(plan.batch_size / truth)) < 0.5
  lo, hi = plan.batch_size_band
  assert lo < plan.batch_size < hi
  plan2 = plan_continuation(
    loss_law, lr_law, float(true_loss(c_true)), extra, batch_law=batch_law, z=3.0
  )
  assert plan2.batch_size_band[0] < truth < plan2.batch_size_band[1]
  # The LR part is unchanged by adding a batch law, and without one there is no batch size.
  plain = plan_continuation(loss_law, lr_law, float(true_loss(c_true)), extra)
  assert plain.batch_size is None and plain.lr == plan.lr and plain.lr_band == plan.lr_band
