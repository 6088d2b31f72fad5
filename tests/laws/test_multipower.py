"""The multi-power law's sum against a direct evaluation of the paper's formula, and the log
residual of the fit (the paper's) on known parameters."""

import numpy as np
import pytest

import anytime
from anytime.laws import AnnealingLaw, MultiPowerLaw
from anytime.laws.curves import from_schedule

PARAMS = np.array([2.0, 1.5, 0.4, 0.5, 2.0, 0.5, 0.6])  # L0, A, alpha, B, C, beta, gamma


def direct(params, lrs, warmup, steps, reducible=False):
  """Luo et al. (2025) term by term: L0 + A (S1 + S_W)^-alpha - B sum_k (eta_{k-1} - eta_k)
  G(eta_k^-gamma S_k(t)), post-warmup updates k = 1..t, eta_0 the LR at the end of warmup;
  ``reducible``: each term also times A (S_W + eta_1 + ... + eta_{k-1})^-alpha."""
  l0, a, alpha, b, c, beta, gamma = params
  s_w = sum(lrs[:warmup])
  eta = [lrs[warmup], *lrs[warmup:]]  # eta[0] = end of warmup, eta[k] = post-warmup k
  out = []
  for t in steps:
    n = t - warmup
    s1 = sum(eta[1 : n + 1])
    ld = 0.0
    for k in range(1, n + 1):
      s_k = sum(eta[k : n + 1])
      weight = a * (s_w + sum(eta[1:k])) ** -alpha if reducible else 1.0
      ld += weight * (eta[k - 1] - eta[k]) * (1 - (c * eta[k] ** -gamma * s_k + 1) ** -beta)
    out.append(l0 + a * (s1 + s_w) ** -alpha - b * ld)
  return np.array(out)


@pytest.mark.parametrize("shape", ["sqrt", "linear"])
def test_default_sum_is_exact_on_short_curves(shape):
  t, warmup = 600, 30
  sched = anytime.wsd(0.01, t, decay_steps=120, shape=shape, final_value=1e-3, warmup_steps=warmup)
  steps = np.array([40, 100, 300, 480, 481, 500, 550, 599, 600])
  c = from_schedule("wsd", sched, t, steps, np.ones(steps.size), warmup_steps=warmup)
  law = MultiPowerLaw()  # 9 records x 120 decreases: below exact_terms, so no binning
  feats = law.features(c, 0.01)
  assert feats.drop.size == np.count_nonzero(np.diff(c.lrs[warmup:]))  # every decrease
  got = law.predict_from(PARAMS, feats)
  want = direct(PARAMS, c.lrs / 0.01, warmup, steps)
  np.testing.assert_allclose(got, want, rtol=1e-12)
  # beyond exact_terms the same curve is binned, and then only approximately equal
  binned = MultiPowerLaw(max_bins=8, exact_terms=0)
  approx = binned.predict_from(PARAMS, binned.features(c, 0.01))
  assert binned.features(c, 0.01).drop.size < feats.drop.size
  np.testing.assert_allclose(approx, want, rtol=5e-3)


def test_log_residual_recovers_known_parameters():
  t = 1500
  steps = np.unique(np.round(np.geomspace(50, t, 40)).astype(int))
  truth = np.array([2.0, 3.0, 0.5, 0.004, 0.98])  # L0, A, alpha, C, decay
  law = AnnealingLaw()
  scheds = {
    "constant": anytime.constant(1.0, warmup_steps=20),
    "cosine": anytime.cosine(1.0, t, final_value=0.1, warmup_steps=20),
    "wsd": anytime.wsd(1.0, t, decay_steps=300, shape="linear", final_value=0.1, warmup_steps=20),
  }
  curves = []
  for name, s in scheds.items():
    c = from_schedule(name, s, t, steps, np.ones(steps.size), warmup_steps=20)
    loss = law.predict_from(truth, law.features(c, 1.0))
    curves.append(from_schedule(name, s, t, steps, loss, warmup_steps=20))
  fit = law.fit(curves, residual="log", f_scale=1e-3)
  np.testing.assert_allclose(fit.result.params, truth, rtol=1e-4)
  assert fit.result.rmse < 1e-8


@pytest.mark.parametrize("power", [0.35, 0.5, 2.0])
def test_lr_power_is_the_formula_on_powered_lrs(power):
  """lr_power = p: the paper's formula, evaluated directly on the LRs (eta / peak)**p."""
  t, warmup = 400, 20
  sched = anytime.cosine(0.02, t, final_value=2e-3, warmup_steps=warmup)
  steps = np.array([30, 100, 250, 399, 400])
  c = from_schedule("cosine", sched, t, steps, np.ones(steps.size), warmup_steps=warmup)
  law = MultiPowerLaw(lr_power=power)
  got = law.predict_from(PARAMS, law.features(c, 0.02))
  want = direct(PARAMS, (c.lrs / 0.02) ** power, warmup, steps)
  np.testing.assert_allclose(got, want, rtol=1e-12)
  # p != 1 is a different law on the same schedule: the clock changes the prediction
  plain = MultiPowerLaw()
  assert np.max(np.abs(got / plain.predict_from(PARAMS, plain.features(c, 0.02)) - 1)) > 1e-3


@pytest.mark.parametrize("bad", [0, -0.5, 4.5, float("nan"), True, "0.5", None])
def test_lr_power_rejects_bad_values(bad):
  with pytest.raises(ValueError, match="lr_power"):
    MultiPowerLaw(lr_power=bad)


def test_reducible_gain_is_the_formula_term_by_term():
  t, warmup = 500, 25
  sched = anytime.wsd(0.01, t, decay_steps=150, shape="sqrt", final_value=0.0, warmup_steps=warmup)
  steps = np.array([30, 200, 350, 351, 420, 499, 500])
  c = from_schedule("wsd", sched, t, steps, np.ones(steps.size), warmup_steps=warmup)
  law = MultiPowerLaw(gain="reducible")
  got = law.predict_from(PARAMS, law.features(c, 0.01))
  np.testing.assert_allclose(got, direct(PARAMS, c.lrs / 0.01, warmup, steps, True), rtol=1e-12)
  # the same parameters under the paper's gain differ once the LR has decreased
  plain = MultiPowerLaw()
  paper = plain.predict_from(PARAMS, plain.features(c, 0.01))
  np.testing.assert_allclose(got[:2], paper[:2], rtol=1e-12)  # before the cooldown
  assert np.all(got[4:] > paper[4:])  # A S^-alpha < 1 here: each decrease gains less


def test_reducible_gain_favours_an_early_anneal():
  """The same cooldown (LR 1 -> 0.5 over 100 steps) at the end of a 1000- and a 2000-step run,
  with G saturated: the paper's annealing term is B * 0.5 at both lengths; the reducible gain
  scales it by A S^-alpha at the cooldown, so the early one gains more by about the ratio of
  the areas to the -alpha (the area at mid-cooldown is about t - 62)."""
  params = np.array([2.0, 1.5, 0.4, 0.5, 1e3, 1.0, 0.0])  # L0, A, alpha, B, C, beta, gamma
  no_anneal = params.copy()
  no_anneal[3] = 0.0
  ld = {}
  for gain in ("constant", "reducible"):
    law = MultiPowerLaw(gain=gain)
    for t in (1000, 2000):
      sched = anytime.wsd(1.0, t, decay_steps=100, shape="linear", final_value=0.5)
      steps = np.arange(t - 4, t + 1)
      feats = law.features(from_schedule("w", sched, t, steps, np.ones(5)), 1.0)
      ld[gain, t] = (law.predict_from(no_anneal, feats) - law.predict_from(params, feats))[-1]
  assert ld["constant", 1000] == pytest.approx(0.25, rel=0.02)  # B * drop, G ~ 1
  assert ld["constant", 2000] == pytest.approx(ld["constant", 1000], rel=1e-3)
  for t in (1000, 2000):
    assert ld["reducible", t] == pytest.approx(0.25 * 1.5 * (t - 62) ** -0.4, rel=0.02)
  ratio = ld["reducible", 1000] / ld["reducible", 2000]
  assert ratio == pytest.approx((1938 / 938) ** 0.4, rel=2e-3), ratio


@pytest.mark.parametrize("bad", ["paper", "", None, 1])
def test_gain_rejects_bad_values(bad):
  with pytest.raises(ValueError, match="gain"):
    MultiPowerLaw(gain=bad)


@pytest.mark.parametrize("bad", [0, -1.0, 10.5, float("nan"), True, "1.5", None])
def test_gamma_max_rejects_bad_values(bad):
  with pytest.raises(ValueError, match="gamma_max"):
    MultiPowerLaw(gamma_max=bad)


def _reducible_curves(params, t=1200, warmup=20):
  """A cosine and a WSD 10% cooldown whose losses follow the reducible-gain law exactly."""
  law = MultiPowerLaw(gain="reducible", max_bins=None)
  steps = np.unique(np.round(np.geomspace(100, t, 30)).astype(int))
  scheds = {
    "cosine": anytime.cosine(1.0, t, final_value=0.0, warmup_steps=warmup),
    "wsd": anytime.wsd(
      1.0, t, decay_steps=t // 10, shape="sqrt", final_value=0.0, warmup_steps=warmup
    ),
  }
  out = []
  for name, s in scheds.items():
    c = from_schedule(name, s, t, steps, np.ones(steps.size), warmup_steps=warmup)
    loss = law.predict_from(params, law.features(c, 1.0))
    out.append(from_schedule(name, s, t, steps, loss, warmup_steps=warmup))
  return out


def test_gamma_max_bounds_the_fit_and_lets_it_reach_past_the_default():
  truth = np.array([2.0, 1.5, 0.4, 1.0, 2.0, 0.5, 2.6])  # gamma 2.6: above the default bound 2
  curves = _reducible_curves(truth)
  free = MultiPowerLaw(gain="reducible", gamma_max=4.0).fit(curves, n_restarts=3)
  default = MultiPowerLaw(gain="reducible").fit(curves, n_restarts=3)
  capped = MultiPowerLaw(gain="reducible", gamma_max=1.0).fit(curves, n_restarts=3)
  assert free.params["gamma"] == pytest.approx(2.6, rel=0.05)
  assert free.result.rmse < 1e-5
  # below the truth each bound binds, and the fit it forces is worse the tighter it is
  assert default.params["gamma"] == pytest.approx(2.0, abs=1e-6)
  assert capped.params["gamma"] == pytest.approx(1.0, abs=1e-6)
  assert free.result.rmse < default.result.rmse < capped.result.rmse
