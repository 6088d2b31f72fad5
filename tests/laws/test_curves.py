"""LossCurve validation, reading run logs, the multi-power binning, clear errors."""

import json

import numpy as np
import pytest

import anytime
from anytime.laws import AnnealingLaw, LossCurve, MultiPowerLaw, from_schedule, read_runs

STEPS = np.arange(10, 110, 10)


def curve(**kw):
  args = dict(name="c", lrs=np.full(100, 1e-3), steps=STEPS, loss=np.linspace(3, 2, STEPS.size))
  args.update(kw)
  return LossCurve(**args)


@pytest.mark.parametrize(
  ("kw", "match"),
  [
    (dict(steps=STEPS[:3], loss=[3.0, 2.5, 2.0]), "too short"),
    (dict(loss=np.ones(4)), "same length"),
    (dict(lrs=np.full(100, -1e-3)), "lrs must be finite, >= 0"),
    (dict(lrs=np.zeros(100)), "not all 0"),
    (dict(steps=STEPS[::-1]), "strictly increasing"),
    (dict(steps=STEPS + 100), r"\[1, len\(lrs\)=100\]"),
    (dict(loss=np.r_[np.ones(9), np.nan]), r"loss\[9\]=nan at step 100"),
    (dict(steps=STEPS + 0.5), "must be integers"),
    (dict(warmup_steps=100), "warmup_steps=100"),
    (dict(model_size=-5), "model_size=-5"),
  ],
)
def test_curve_validation_names_field_value_and_allowed(kw, match):
  with pytest.raises(ValueError, match=match):
    curve(**kw)


def test_fit_rejects_bad_input():
  c = curve()
  with pytest.raises(ValueError, match="distinct"):
    AnnealingLaw().fit([c, c])
  with pytest.raises(ValueError, match="non-empty"):
    AnnealingLaw().fit([])
  with pytest.raises(ValueError, match="losses > 0"):
    AnnealingLaw().fit([curve(loss=np.linspace(1, -1, STEPS.size))])
  with pytest.raises(ValueError, match="residual="):
    AnnealingLaw().fit([c], residual="squared")
  with pytest.raises(ValueError, match="need at least 6 points"):
    AnnealingLaw().fit([curve(steps=STEPS[:5], loss=np.ones(5))])


def test_read_runs_jsonl_and_csv(tmp_path):
  sched = anytime.wsd(1e-3, 200, decay_steps=40, shape="linear", final_value=1e-4)
  steps = np.arange(10, 201, 10)
  lrs = np.asarray(sched(steps - 1))  # the LR of update k is schedule(k - 1)
  loss = 3 - 0.002 * steps
  path = tmp_path / "runs.jsonl"
  with open(path, "w") as f:
    for s, lr, lo in zip(steps, lrs, loss, strict=True):
      f.write(json.dumps({"run": "wsd", "step": int(s), "lr": float(lr), "loss": float(lo)}) + "\n")
      f.write(json.dumps({"run": "const", "step": int(s), "lr": 1e-3, "loss": float(lo)}) + "\n")
  runs = read_runs(str(path))
  assert set(runs) == {"wsd", "const"}
  # piecewise-linear schedule: the interpolated LRs equal it except in the one logging
  # interval holding the kink (the decay starts at update 161, logs at 160 and 170)
  got, want = runs["wsd"].lrs, np.asarray(sched(np.arange(200)))
  exact = (np.arange(1, 201) >= 10) & ((np.arange(1, 201) <= 160) | (np.arange(1, 201) >= 170))
  np.testing.assert_allclose(got[exact], want[exact], rtol=1e-6)
  assert np.max(np.abs(got / want - 1)[10:]) < 0.03
  csv_path = tmp_path / "runs.csv"
  csv_path.write_text(
    "step,lr,loss\n"
    + "".join(f"{s},{lr},{lo}\n" for s, lr, lo in zip(steps, lrs, loss, strict=True))
  )
  single = read_runs(str(csv_path))
  np.testing.assert_allclose(single["runs"].loss, loss)
  dup = tmp_path / "dup.jsonl"
  dup.write_text('{"step": 5, "lr": 1, "loss": 2}\n' * 6)
  with pytest.raises(ValueError, match="recorded twice"):
    read_runs(str(dup))
  bad_lr = tmp_path / "bad_lr.jsonl"
  bad_lr.write_text("".join(f'{{"step": {s}, "lr": -1e-3, "loss": 2}}\n' for s in range(1, 8)))
  with pytest.raises(ValueError, match=r"lr=-0\.001 at step 1 is < 0"):
    read_runs(str(bad_lr))
  with pytest.raises(ValueError, match="no record has 'step' and the loss field 'eval_loss'"):
    read_runs(str(path), loss_key="eval_loss")
  with pytest.raises(ValueError, match="does not exist"):
    read_runs(str(tmp_path / "nope.jsonl"))


def test_multipower_binning_error_is_small():
  """Binning 4000 decreasing steps into 256 blocks changes the prediction by < 1e-4 relative."""
  t = 4000
  steps = np.unique(np.round(np.geomspace(20, t, 50)).astype(int))
  c = from_schedule("cos", anytime.cosine(1.0, t, final_value=0.0), t, steps, np.ones(steps.size))
  params = np.array([2.0, 1.5, 0.4, 0.5, 2.0, 0.5, 0.5])
  exact = MultiPowerLaw(max_bins=None)
  binned = MultiPowerLaw(exact_terms=0)
  a = exact.predict_from(params, exact.features(c, 1.0))
  b = binned.predict_from(params, binned.features(c, 1.0))
  assert np.max(np.abs(b / a - 1)) < 1e-4
  assert binned.features(c, 1.0).drop.size <= 256 + steps.size
