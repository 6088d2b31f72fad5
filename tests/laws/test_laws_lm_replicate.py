"""experiments/laws_lm/replicate.py: the paired test against scipy's, and the check end to end on
logs from a known multi-power law (the real runs' figures are in docs/laws.md)."""

import json
import os

import numpy as np
import pytest
from scipy import stats

from anytime.laws import MultiPowerLaw
from experiments.laws_lm import grid as laws_lm
from experiments.laws_lm import long as laws_lm_long
from experiments.laws_lm import replicate as laws_lm_replicate
from tests.laws.test_laws_lm_long import SEED_OFFSET, TRUTH, _write_logs


def test_paired_test_matches_scipy():
  rng = np.random.default_rng(0)
  for n, shift in ((3, 0.0), (8, 0.002), (8, 0.0005), (20, 0.001)):
    a = rng.normal(3.1, 0.02, n)
    b = a - shift + rng.normal(0, 0.001, n)
    got = laws_lm_replicate.paired_test(a, b)
    ref = stats.ttest_rel(a, b)
    assert got["t"] == pytest.approx(ref.statistic, rel=1e-10)
    assert got["resolved"] == (ref.pvalue < 0.05)
    assert got["mean"] == pytest.approx(np.mean(a - b), rel=1e-12)
    swapped = laws_lm_replicate.paired_test(b, a)
    assert swapped["t"] == pytest.approx(-got["t"]) and swapped["resolved"] == got["resolved"]
  assert laws_lm_replicate.paired_test([1.0, 2.0], [0.0, 1.0])["t"] == np.inf  # a constant gap
  assert laws_lm_replicate.paired_test([1.0, 2.0], [1.0, 2.0])["resolved"] is False


def test_paired_test_refuses_bad_samples():
  with pytest.raises(ValueError, match=r"equal length >= 2: got shapes \(3,\) and \(2,\)"):
    laws_lm_replicate.paired_test([1, 2, 3], [1, 2])
  with pytest.raises(ValueError, match=r"shapes \(1,\)"):
    laws_lm_replicate.paired_test([1], [2])
  with pytest.raises(ValueError, match=r"alpha=1\.5 is invalid"):
    laws_lm_replicate.paired_test([1, 2], [2, 3], alpha=1.5)


def _law_final(label: str) -> float:
  run = laws_lm_long.runs((label,), (0,))[0]
  law = MultiPowerLaw(max_bins=None)
  c = laws_lm_long._final_only(run)
  return float(law.predict_from(TRUTH, law.features(c, 1e-2))[-1])


def _shift_final(root: str, name: str, delta: float) -> None:
  path = os.path.join(root, name, "eval.jsonl")
  with open(path) as f:
    records = [json.loads(line) for line in f]
  records[-1]["loss"]["raw"] += delta
  with open(path, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)


def test_check_on_a_known_law(tmp_path, capsys):
  root, out = str(tmp_path / "runs"), str(tmp_path / "out")
  (tmp_path / "runs").mkdir()  # a --root that does not exist is refused first
  args = ["--root", root, "--out", out, "--no_train"]
  with pytest.raises(ValueError, match=r"long_prereg\.csv missing"):
    laws_lm_replicate.main(args)
  law = {k: _law_final(k) for k in laws_lm_long.WSD}
  offset = SEED_OFFSET * (np.mean(laws_lm_replicate.ALL_SEEDS) - 1)  # the seed offsets' mean
  # the primary forecast is the law (so the seed-mean truth); a second one reverses its order
  prereg = [
    dict(min_step=m, law=name, run=k, final_pred=f"{sign * law[k] + offset:.6f}")
    for m, name, sign in (("1920", "multipower", 1), ("100", "reversed", -1))
    for k in (*laws_lm_long.WSD, "cosine_h16")
    if k in law
  ]
  os.makedirs(out)
  laws_lm._write_csv(os.path.join(out, laws_lm_long.PREREG), prereg)
  _write_logs(root, laws_lm_long.runs(laws_lm_replicate.LABELS, laws_lm_long.SEEDS))
  assert laws_lm_replicate.main(args) == 0  # seeds 3-7 missing: no check yet
  assert "no check yet" in capsys.readouterr().out
  _write_logs(root, laws_lm_replicate.runs())
  # seed noise of up to 4e-4 on every cooldown; WSD 20% linear: WSD 20% 1-sqrt's final +- 1e-3
  # by seed, so their pair is a tie
  seeds = laws_lm_replicate.ALL_SEEDS
  noise = {k: 2e-4 * ((7 * np.arange(8) + 3 * j) % 5 - 2) for j, k in enumerate(law)}
  noise["wsd20_linear"] = noise["wsd20_1-sqrt"] + 1e-3 * (-1.0) ** np.arange(8)
  noise["wsd20_linear"] += law["wsd20_1-sqrt"] - law["wsd20_linear"]
  for k, by_seed in noise.items():
    for s, delta in zip(seeds, by_seed, strict=True):
      _shift_final(root, laws_lm_long.name(k, s), delta)
  assert laws_lm_replicate.main(args) == 0
  rows = laws_lm.read_csv(os.path.join(out, laws_lm_replicate.CHECK))
  pairs = laws_lm.read_csv(os.path.join(out, laws_lm_replicate.PAIRS))
  assert len(rows) == 8 and len(pairs) == 12
  finals = laws_lm_replicate.per_seed_finals(root)
  for p in pairs:
    a, b = p["pair"].split(" - ")
    ref = stats.ttest_rel(finals[a], finals[b])
    assert (p["resolved"] == "True") == (ref.pvalue < 0.05), p
  by_pair = {(p["law"], p["pair"]): p for p in pairs}
  assert by_pair[("multipower", "wsd20_linear - wsd20_1-sqrt")]["resolved"] == "False"
  resolved = [p for p in pairs if p["resolved"] == "True"]
  assert len(resolved) == 10  # the other 5 pairs, under both forecasts
  assert all(p["forecast_agrees"] == str(p["law"] == "multipower") for p in resolved)
  for r in rows:
    primary = r["law"] == "multipower"
    assert r["resolved_pairs_ranked"] == str(primary)
    if primary:
      k = r["run"]
      want = law[k] + offset + noise[k].mean()
      assert float(r["final_true_8seeds"]) == pytest.approx(want, abs=1e-5)
      new_offset = SEED_OFFSET * (np.mean(laws_lm_replicate.NEW_SEEDS) - 1)
      want_new = law[k] + new_offset + noise[k][3:].mean()
      assert float(r["final_true_new5"]) == pytest.approx(want_new, abs=1e-5)
      if k != "wsd20_linear":
        assert abs(float(r["rel_err_8seeds"])) < 1e-4
