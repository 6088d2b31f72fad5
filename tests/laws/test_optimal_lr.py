"""Optimal-LR law on synthetic (N, D) grids with a known generating law.

Truth: ln lr* = ln C + alpha ln N + beta ln D with alpha = -0.30, beta = -0.10.
Each (N, D) is swept over 7 LRs a half-octave apart on a grid *not* centred on
the optimum (offset up to +-0.35 octave); the final loss is asymmetric in ln lr
(a cubic term, as real sweeps are steeper on the high side) plus 0.1% noise.
"""

import numpy as np
import pytest

from anytime.laws.optimal_lr import fit_lr_law, fit_lr_optimum

ALPHA, BETA, LOG_C = -0.30, -0.10, np.log(0.5)


def true_log_lr(n, d):
  return LOG_C + ALPHA * np.log(n) + BETA * np.log(d)


def sweep(n, d, rng):
  x_star = true_log_lr(n, d)
  offset = rng.uniform(-0.35, 0.35) * np.log(2)
  x = x_star + offset + np.log(2) * 0.5 * np.arange(-3, 4)
  u = x - x_star
  loss = 2.0 + 0.05 * u**2 + 0.004 * u**3 + 5.0 * n**-0.1
  return np.exp(x), loss * (1 + 1e-3 * rng.standard_normal(x.size))


def grid(seed):
  rng = np.random.default_rng(seed)
  rows = []
  for n in (1e7, 3e7, 1e8, 3e8):
    for d in (1e9, 4e9, 1.6e10):
      lrs, loss = sweep(n, d, rng)
      opt = fit_lr_optimum(lrs, loss)
      rows.append((n, d, opt))
  return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lr_law_recovers_exponents_and_extrapolates_within_half_octave(seed):
  rows = grid(seed)
  for n, d, opt in rows:  # each optimum within half an octave and inside its grid
    assert abs(np.log2(opt.lr) - true_log_lr(n, d) / np.log(2)) < 0.5
  law = fit_lr_law(
    [r[0] for r in rows],
    [r[1] for r in rows],
    [r[2].log_lr for r in rows],
    [r[2].log_lr_se for r in rows],
  )
  assert abs(law.alpha - ALPHA) < 3 * law.alpha_se, (law.alpha, law.alpha_se)
  assert abs(law.beta - BETA) < 3 * law.beta_se, (law.beta, law.beta_se)
  # held-out, larger (N, D): 3x beyond the largest size and budget
  n_new, d_new = 1e9, 5e10
  lr, low, high = law.predict(n_new, d_new, z=3.0)
  true_lr = np.exp(true_log_lr(n_new, d_new))
  assert abs(np.log2(lr / true_lr)) < 0.5
  assert low < true_lr < high


def test_optimum_interval_is_calibrated_on_a_symmetric_loss():
  """With a quadratic loss and 0.1% noise, the 1-sigma interval covers the truth ~68%."""
  rng = np.random.default_rng(5)
  truth = np.exp(true_log_lr(1e8, 4e9))
  lrs = truth * 2.0 ** (0.5 * np.arange(-3, 4) + 0.3)
  base = 2.0 + 0.05 * np.log(lrs / truth) ** 2
  hits = []
  for _ in range(200):
    opt = fit_lr_optimum(lrs, base * (1 + 1e-3 * rng.standard_normal(lrs.size)))
    hits.append(opt.low < truth < opt.high)
  assert 0.55 < np.mean(hits) < 0.8, np.mean(hits)
  clean = fit_lr_optimum(lrs, base)
  assert clean.log_lr_se < 1e-6 and abs(clean.lr / truth - 1) < 1e-6


def test_errors_name_the_problem():
  lrs = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
  with pytest.raises(ValueError, match="same length"):
    fit_lr_optimum(lrs, [1.0, 2.0])
  with pytest.raises(ValueError, match="must be > 0"):
    fit_lr_optimum([0.0, *lrs[1:]], [3, 2, 1, 2, 3])
  with pytest.raises(ValueError, match="distinct values"):
    fit_lr_optimum([1e-3, 1e-3, 2e-3, 2e-3], [1, 1, 2, 2])
  with pytest.raises(ValueError, match="outside the LR grid"):
    fit_lr_optimum(lrs, [3.0, 2.5, 2.0, 1.5, 1.0])  # monotone: optimum off the grid
  with pytest.raises(ValueError, match="not convex"):
    fit_lr_optimum(lrs, [1.0, 2.0, 2.5, 2.0, 1.0])  # a maximum
  with pytest.raises(ValueError, match="finite"):
    fit_lr_optimum(lrs, [3.0, np.nan, 2.0, 1.5, 1.0])
  with pytest.raises(ValueError, match="distinct n"):
    fit_lr_law([1e7, 1e7, 1e7, 1e7], [1e9, 2e9, 3e9, 4e9], [0, 0, 0, 0])
  law = fit_lr_law([1e7, 1e8, 1e7, 1e8], [1e9, 1e9, 1e10, 1e10], [-5, -6, -5.2, -6.3])
  with pytest.raises(ValueError, match="must be > 0"):
    law.predict(-1.0, 1e9)
