"""experiments/laws_lm/area.py: the equal-area gain on curves with a known annealing term, the
annealing terms against the laws' formulas evaluated by direct loops, and the bound LD(short
cosine) <= LD(long cosine) the module reports (the real runs' figures are in docs/laws.md)."""

import numpy as np
import pytest

import anytime
from anytime.laws.curves import LossCurve
from experiments.laws_lm import area as la

PEAK, WARMUP, T = 1e-2, 50, 1920


def _cosine(total: int, horizon_steps: int | None = None) -> np.ndarray:
  sched = anytime.cosine(PEAK, horizon_steps or total, final_value=1e-3, warmup_steps=WARMUP)
  return np.asarray(sched(np.arange(total)), dtype=np.float64)


def _constant(total: int) -> np.ndarray:
  return np.asarray(anytime.constant(PEAK, warmup_steps=WARMUP)(np.arange(total)), dtype=np.float64)


def _curve(name, lrs, loss_of_area, every=24):
  steps = np.arange(every, lrs.size + 1, every)
  s = np.concatenate([[0.0], np.cumsum(lrs / PEAK)])[steps]
  return LossCurve(name, lrs, steps, loss_of_area(s, steps), warmup_steps=WARMUP)


def test_gains_read_off_a_known_annealing_term():
  # the constant run's loss is linear in its area, so interpolating between evals is exact; the
  # cosine's loss is the same function of its own area minus 0.1: its equal-area gain is 0.1
  def law(s, _):
    return 4.0 - 1e-4 * s

  const = _curve("constant", _constant(T), law)
  cos = _curve("cosine", _cosine(T), lambda s, k: law(s, k) - 0.1)
  got = la.gains(const, cos)
  s_cos = np.sum(_cosine(T)) / PEAK
  assert got["area"] == pytest.approx(s_cos, rel=1e-6)  # float32 schedule
  assert got["gain_area"] == pytest.approx(0.1, abs=1e-9)
  # equal step: the constant run's area at T exceeds the cosine's, so its loss there is lower
  gap = (np.sum(_constant(T)) - np.sum(_cosine(T))) / PEAK
  assert got["gain_step"] == pytest.approx(0.1 - 1e-4 * gap, abs=1e-6)
  # the equal-area step: the constant run's area is WARMUP ramp + one unit per later step
  ramp = np.sum(_constant(T)[:WARMUP]) / PEAK
  assert got["t_eq"] == pytest.approx(WARMUP + (s_cos - ramp), rel=1e-6)


def test_gains_refuse_a_run_outside_the_constant_runs_areas():
  const = _curve("constant", _constant(960), lambda s, k: 4 - 1e-4 * s)
  longer = _curve("cosine", _cosine(T), lambda s, k: 4 - 1e-4 * s)
  with pytest.raises(ValueError, match="exceeds the constant run's"):
    la.gains(const, longer)


def _multipower_ld(lrs, b, c, beta, gamma):
  """LD at the last update, by the formula's double loop (LRs in units of the peak; eta_0 is
  the LR at the end of warmup, so the first post-warmup update has no drop)."""
  eta = lrs / PEAK
  total = 0.0
  for k in range(WARMUP + 2, eta.size + 1):  # update k (1-based) uses eta[k - 1]
    drop = eta[k - 2] - eta[k - 1]
    if drop != 0.0:
      since = sum(eta[k - 1 :])
      total += drop * (1 - (c * eta[k - 1] ** -gamma * since + 1) ** -beta)
  return b * total


def _annealing_ld(lrs, c, decay):
  """C * S2 at the last update, by the momentum recursion step by step."""
  eta = lrs / PEAK
  m = s2 = 0.0
  for i in range(eta.size):
    drop = eta[i - 1] - eta[i] if i > WARMUP else 0.0  # none into or at the end of warmup
    m = decay * m + drop
    s2 += m
  return c * s2


def test_annealing_terms_match_the_formulas():
  lrs = _cosine(480)
  curve = _curve("cosine", lrs, lambda s, k: 4 - 1e-4 * s)
  mp = la.MultiPowerLaw(max_bins=None)
  params = np.array([2.0, 1.0, 0.5, 0.7, 2.0, 0.6, 0.4])
  got = la.annealing_term(mp, params, mp.features(curve, PEAK), "B")
  assert got == pytest.approx(_multipower_ld(lrs, 0.7, 2.0, 0.6, 0.4), rel=1e-9)
  an = la.AnnealingLaw()
  params = np.array([2.0, 1.0, 0.5, 0.3, 0.99])
  got = la.annealing_term(an, params, an.features(curve, PEAK), "C")
  assert got == pytest.approx(_annealing_ld(lrs, 0.3, 0.99), rel=1e-6)


@pytest.mark.parametrize("law", [name for name, *_ in la.LAWS])
def test_a_faster_anneal_never_earns_more(law):
  # the cosine at half the horizon (run to its end) against the full one: every draw <= 1
  def flat(s, k):
    return np.ones(k.size)

  short = _curve("short", _cosine(960), flat)
  full = _curve("full", _cosine(T), flat)
  ratio = la.largest_ratio(short, full, law, n=300)
  assert 0.3 < ratio <= 1.0 + 1e-9
  # a WSD cooldown's term is bounded by the same total drop: the ratio to itself is 1
  assert la.largest_ratio(full, full, law, n=50) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.slow  # the area command end to end on synthetic logs (~3 min on 2 cores)
def test_command_on_logs_from_a_known_law(tmp_path, monkeypatch):
  # the 32-unit schedule set's logs from a known multi-power law (p = 1, seeds offset around it)
  from experiments.laws_lm import grid as laws_lm
  from experiments.laws_lm import long as laws_lm_long
  from tests.laws.test_laws_lm_long import _write_logs

  monkeypatch.setattr(la, "POWERS", (1.0, 0.5))
  monkeypatch.setattr(la, "N_DRAWS", 200)
  root, out = str(tmp_path / "runs"), str(tmp_path / "out")
  (tmp_path / "runs").mkdir()  # a --root that does not exist is refused first
  with pytest.raises(ValueError, match="no complete schedule set"):
    la.main(["--root", root, "--out", out])
  _write_logs(root, laws_lm_long.runs())
  assert la.main(["--root", root, "--out", out]) == 0
  clock = laws_lm.read_csv(f"{out}/area_clock.csv")
  assert {r["setting"] for r in clock} == {"w32_32u"}  # the 8-unit sets have no logs here
  for r in clock:  # the law made the data: its fit's LD is the measured equal-area gain
    assert float(r["ld_fit"]) == pytest.approx(float(r["gain_area"]), abs=2e-3), r
  short = next(r for r in clock if r["run"] == "cosine_h16")
  assert float(short["gain_ratio_short_long"]) <= float(short["law_max_ratio_multipower"]) + 1e-3
  fits = laws_lm.read_csv(f"{out}/area_fit.csv")
  assert max(abs(float(r["final_rel_err"])) for r in fits) < 1e-3
  power = {float(r["power"]): r for r in laws_lm.read_csv(f"{out}/area_power.csv")}
  assert float(power[1.0]["largest_abs_err"]) < 1e-3
  for key in ("fit_rmse_rel", "fit_rmse_rel_two_cosines", "fit_rmse_rel_three"):
    assert float(power[1.0][key]) < float(power[0.5][key])  # the generating clock fits best
  # ... and forecasts the long cosine from the short one
  assert abs(float(power[1.0]["err_long_cosine_from_short"])) < 1e-3
  # in sample, the generating clock reaches every final; the other does not
  cap = {float(r["power"]): r for r in laws_lm.read_csv(f"{out}/area_capacity.csv")}
  assert float(cap[1.0]["largest_abs_err"]) < 1e-3 < float(cap[0.5]["largest_abs_err"])
  assert (tmp_path / "out" / "area_clock.png").stat().st_size > 10_000
