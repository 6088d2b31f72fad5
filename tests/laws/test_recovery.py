"""Laws fitted on synthetic curves generated from known parameters recover them within 3 sigma.

Curves: constant, cosine and WSD (20% linear cooldown) runs of 2000 updates,
70 measured points each, with independent Gaussian noise of 0.3% relative
(an LM eval on ~1M tokens has about this much). The reported one-sigma errors
are the Jacobian covariance of :mod:`anytime.laws.fitting`; every parameter
must be within 3 sigma of the truth, and the sigmas must be finite and > 0.
"""

import dataclasses

import numpy as np
import pytest

import anytime
from anytime.laws import (
  AnnealingLaw,
  ForwardMomentumLaw,
  MultiPowerLaw,
  bootstrap,
  from_schedule,
)

T = 2000
PEAK = 1e-3
NOISE = 0.003
STEPS = np.unique(np.round(np.geomspace(50, T, 70)).astype(int))


def schedules():
  return {
    "constant": anytime.constant(PEAK),
    "cosine": anytime.cosine(PEAK, T, final_value=0.1 * PEAK),
    "wsd": anytime.wsd(PEAK, T, decay_steps=T // 5, shape="linear", final_value=0.1 * PEAK),
  }


def synthetic(law, true, seed, model_size=None, names=None):
  """Noisy curves from ``law`` with ``true`` params; lr_ref = PEAK (the largest LR)."""
  rng = np.random.default_rng(seed)
  out = []
  for name, sched in schedules().items():
    clean_curve = from_schedule(name, sched, T, STEPS, np.ones(STEPS.size), model_size=model_size)
    clean = law.predict_from(np.asarray(true), law.features(clean_curve, PEAK))
    noisy = clean * (1 + NOISE * rng.standard_normal(clean.size))
    label = name if names is None else f"{name}{names}"
    out.append(from_schedule(label, sched, T, STEPS, noisy, model_size=model_size))
  return out


def assert_recovered(fitted, true, k=3.0):
  res = fitted.result
  assert np.all(np.isfinite(res.stderr)) and np.all(res.stderr[~res.at_bound] > 0)
  z = np.abs(res.params - np.asarray(true)) / np.where(res.stderr > 0, res.stderr, np.inf)
  assert np.all(z < k), dict(zip(res.names, np.round(z, 2).tolist(), strict=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_annealing_law_recovers_parameters(seed):
  true = [2.5, 1.5, 0.35, 2e-4, 0.995]  # L0, A, alpha, C, decay
  law = AnnealingLaw()
  fitted = law.fit(synthetic(law, true, seed), seed=seed)
  assert_recovered(fitted, true)
  # and the errors are informative: alpha is pinned to better than 0.1
  assert fitted.result.sigma("alpha") < 0.1


@pytest.mark.parametrize("seed", [0, 1])
def test_multipower_law_recovers_power_law_and_predicts_held_out_curve(seed):
  """The multi-power law's annealing shape (B, C, beta, gamma) is weakly identified by
  three curves at 0.3% noise (measured: C, beta, gamma run to their bounds, so their
  Jacobian errors are meaningless); its power-law part and its predictions are not."""
  true = [2.5, 1.5, 0.35, 0.4, 2.0, 0.6, 0.5]  # L0, A, alpha, B, C, beta, gamma
  law = MultiPowerLaw()
  fitted = law.fit(synthetic(law, true, seed), seed=seed, n_restarts=4)
  res = fitted.result
  for i, name in enumerate(("L0", "A", "alpha")):
    assert abs(res.params[i] - true[i]) < 3 * res.stderr[i], (name, res.params[i], res.stderr[i])
  held = anytime.wsd(PEAK, T, decay_steps=T // 10, shape="sqrt", final_value=0.1 * PEAK)
  curve = from_schedule("held", held, T, STEPS, np.ones(STEPS.size))
  truth = law.predict_from(np.asarray(true), law.features(curve, PEAK))
  rel = fitted.predict(curve) / truth - 1
  assert np.max(np.abs(rel)) < NOISE, np.max(np.abs(rel))


@pytest.mark.parametrize("seed", [0, 1])
def test_reducible_gain_law_fitted_on_a_cosine_and_a_cooldown_predicts_other_schedules(seed):
  """laws_lm_gain's design on synthetic curves: the reducible-gain law fitted on the cosine and
  the WSD run alone recovers its power-law part and forecasts a 10% 1-sqrt cooldown and the
  cosine at half the horizon within the noise."""
  true = [2.5, 1.5, 0.35, 0.5, 2.0, 0.6, 0.5]  # L0, A, alpha, B, C, beta, gamma
  law = MultiPowerLaw(gain="reducible")
  curves = {c.name: c for c in synthetic(law, true, seed)}
  fitted = law.fit([curves["cosine"], curves["wsd"]], seed=seed, n_restarts=4)
  res = fitted.result
  for i, name in enumerate(("L0", "A", "alpha")):
    assert abs(res.params[i] - true[i]) < 3 * res.stderr[i], (name, res.params[i], res.stderr[i])
  half = T // 2
  held = {
    "wsd10_sqrt": (
      anytime.wsd(PEAK, T, decay_steps=T // 10, shape="sqrt", final_value=0.1 * PEAK),
      T,
    ),
    "cosine_half": (anytime.cosine(PEAK, half, final_value=0.1 * PEAK), half),
  }
  for name, (sched, t) in held.items():
    steps = STEPS[: np.searchsorted(STEPS, t, side="right")]
    curve = from_schedule(name, sched, t, steps, np.ones(steps.size))
    truth = law.predict_from(np.asarray(true), law.features(curve, PEAK))
    rel = fitted.predict(curve) / truth - 1
    assert np.max(np.abs(rel)) < NOISE, (name, np.max(np.abs(rel)))


def test_forward_momentum_law_recovers_parameters_across_sizes():
  # three model sizes (the size term needs >= 3); N in units of the smallest size
  true = [2.0, 1.5, 0.35, 1e-4, 0.8, 0.3]  # L0, A, alpha_S, C, B, alpha_N
  law = ForwardMomentumLaw()
  curves = []
  for i, size in enumerate([1e7, 4e7, 1.6e8]):
    law.names = ForwardMomentumLaw._BASE + ForwardMomentumLaw._SIZE
    law.size_ref = 1e7
    curves += synthetic(law, true, seed=10 + i, model_size=size, names=f"_{size:.0e}")
  fitted = ForwardMomentumLaw().fit(curves)
  assert fitted.result.names == ("L0", "A", "alpha_S", "C", "B", "alpha_N")
  assert_recovered(fitted, true)


def test_jacobian_errors_are_calibrated_over_seeds():
  """Over 12 seeds, |z| < 1 for about 68% of the (seed, parameter) pairs (not far off)."""
  true = [2.5, 1.5, 0.35, 2e-4]
  law = AnnealingLaw(decay=0.995)
  zs = []
  for seed in range(12):
    fitted = law.fit(synthetic(law, true, 100 + seed), n_restarts=2, seed=seed)
    zs.append((fitted.result.params - true) / fitted.result.stderr)
  frac = float(np.mean(np.abs(np.array(zs)) < 1.0))
  assert 0.45 < frac < 0.9, frac


def test_prediction_band_covers_held_out_truth_and_bootstrap_agrees_with_jacobian():
  true = [2.5, 1.5, 0.35, 2e-4, 0.995]
  law = AnnealingLaw()
  curves = synthetic(law, true, 21)
  fitted = law.fit(curves, seed=0)
  held = from_schedule(
    "held",
    anytime.wsd(PEAK, T, decay_steps=T // 10, shape="sqrt", final_value=0.1 * PEAK),
    T,
    STEPS,
    np.ones(STEPS.size),
  )
  truth = law.predict_from(np.asarray(true), law.features(held, PEAK))
  mid, low, high = fitted.predict_interval(held, z=3.0)
  assert np.all((low < truth) & (truth < high))
  assert np.max((high - low) / mid) < 0.02  # and the band is informative (< 2% wide)

  # residual bootstrap of the same fit: its standard errors match the Jacobian's within 2x
  y = np.concatenate([c.loss for c in curves])
  pred = np.concatenate([fitted.predict(c) for c in curves])

  def refit(sample):
    parts = np.split(sample, np.cumsum([c.loss.size for c in curves])[:-1])
    again = [dataclasses.replace(c, loss=part) for c, part in zip(curves, parts, strict=True)]
    return law.fit(again, n_restarts=0).result.params

  rel_resid = y / pred - 1  # relative noise, resampled multiplicatively
  boot = bootstrap(lambda r: refit(pred * (1 + r)), np.zeros_like(y), rel_resid, n_boot=16)
  ratio = boot.std(axis=0, ddof=1) / fitted.result.stderr
  assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio
