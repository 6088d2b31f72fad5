"""Laws fitted on exact theory curves (constant + cosine) predict held-out schedules.

Population loss (excess risk + sigma**2/2) of theory.Problem(capacity 1.5, source
1.5, dim 2000, noise 0.01), 2000 steps, peak 0.5 / tr(H), measured from step 100.
Thresholds from the measurement (experiments/laws/theory.py gives the full
table at 4000 steps): fitted curves within 1.5% on average; the held-out WSD
curves within 1.1% on average (bound 2%) but their *final* value 10-11% too low
(bound 15%): these laws, made for LMs, over-credit a short cooldown in linear
regression, where the noise-driven risk relaxes more slowly than they assume.
"""

import numpy as np
import pytest

import anytime
import theory
from anytime.laws import AnnealingLaw, MultiPowerLaw, from_schedule

T = 2000


@pytest.fixture(scope="module")
def curves():
  prob = theory.Problem(capacity=1.5, source=1.5, dim=2000, noise_variance=0.01)
  peak = 0.5 / prob.trace()
  fin = 0.1 * peak
  rec = np.unique(
    np.round(np.concatenate([np.geomspace(T // 20, T, 20), np.linspace(T // 20, T, 30)]))
  ).astype(int)
  scheds = {
    "constant": anytime.constant(peak),
    "cosine": anytime.cosine(peak, T, final_value=fin),
    "wsd20_linear": anytime.wsd(peak, T, decay_steps=T // 5, shape="linear", final_value=fin),
    "wsd10_sqrt": anytime.wsd(peak, T, decay_steps=T // 10, shape="sqrt", final_value=fin),
  }
  risks = 0.005 + theory.risk_curve(prob, list(scheds.values()), steps=T, record_steps=rec)
  return {
    n: from_schedule(n, s, T, rec, r) for (n, s), r in zip(scheds.items(), risks, strict=True)
  }


@pytest.mark.parametrize("law", [AnnealingLaw(), MultiPowerLaw()], ids=lambda x: x.label)
def test_fit_on_constant_cosine_predicts_held_out_wsd(curves, law):
  fitted = law.fit([curves["constant"], curves["cosine"]], n_restarts=3)
  for name in ("constant", "cosine"):
    rel = fitted.predict(curves[name]) / curves[name].loss - 1
    assert np.mean(np.abs(rel)) < 0.015, (name, np.mean(np.abs(rel)))
  for name in ("wsd20_linear", "wsd10_sqrt"):
    rel = fitted.predict(curves[name]) / curves[name].loss - 1
    assert np.mean(np.abs(rel)) < 0.02, (name, np.mean(np.abs(rel)))
    assert abs(rel[-1]) < 0.15, (name, rel[-1])
    # the cooldown's benefit over the constant run is predicted in the right direction
    assert fitted.predict(curves[name])[-1] < fitted.predict(curves["constant"])[-1]
