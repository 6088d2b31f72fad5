"""experiments/laws_lm/repeat.py: the runs of both tests, and the pre-registered protocol end to
end on logs from a known multi-power law (the real runs' figures are in docs/laws.md)."""

import os

import pytest

from anytime.laws import MultiPowerLaw
from experiments.laws_lm import grid as laws_lm
from experiments.laws_lm import long as laws_lm_long
from experiments.laws_lm import repeat as lr
from tests.laws.test_laws_lm_long import _write_logs


def test_runs_are_the_stdlib_sets_on_other_splits():
  fresh = lr.fresh_runs()
  base = laws_lm_long.runs(seeds=lr.SEEDS)
  assert [r.name for r in fresh] == ["fresh_" + r.name for r in base]
  assert [r.total_steps for r in fresh] == [r.total_steps for r in base]
  quarter = lr.quarter_runs()
  assert len(quarter) == 3 * len(lr.SEEDS)
  assert {r.name.rsplit("_", 1)[1] for r in quarter} == {"constant", "h8", "h4"}
  assert all(r.name.startswith("quarter_w32_e24_") for r in quarter)
  assert all(dict(r.overrides)["data.source"] == "tokens" for r in fresh + quarter)


def test_protocol_on_a_known_law(tmp_path, capsys, monkeypatch):
  fast = (("multipower", MultiPowerLaw, dict(n_restarts=2)),)
  monkeypatch.setattr(laws_lm, "SCHEDULE_LAWS", fast)
  root, out = str(tmp_path / "runs"), str(tmp_path / "out")
  (tmp_path / "runs").mkdir()  # a --root that does not exist is refused first
  args = ["--root", root, "--out", out, "--no_train"]
  with pytest.raises(ValueError, match="have not all finished"):
    lr.main([*args, "--prereg"])
  with pytest.raises(ValueError, match="--prereg"):  # held-out runs wait for the forecast
    lr.main([*args, "--phase", "held-out"])
  with pytest.raises(ValueError, match="--phase='warm'"):
    lr.main([*args, "--phase", "warm"])
  _write_logs(root, lr.fresh_runs(laws_lm_long.FIT_SET))
  assert lr.main([*args, "--prereg"]) == 0
  with pytest.raises(ValueError, match="written once"):
    lr.main([*args, "--prereg"])
  assert lr.main([*args, "--phase", "quarter"]) == 0  # nothing finished: no outputs
  assert not os.path.exists(os.path.join(out, lr.RATIOS))

  _write_logs(root, lr.fresh_runs(laws_lm_long.HELD_OUT) + lr.quarter_runs())
  assert lr.main(args) == 0
  check = laws_lm.read_csv(os.path.join(out, "fresh_check.csv"))
  primary = [r for r in check if (r["min_step"], r["law"]) == lr.PRIMARY]
  assert {r["run"] for r in primary} == set(laws_lm_long.HELD_OUT)
  for r in primary:  # the law generated the logs: its forecast is the truth
    assert abs(float(r["final_rel_err"])) < 1e-3, r
  pairs = laws_lm.read_csv(os.path.join(out, lr.PAIRS))
  assert len(pairs) == 6
  ratios = {r["set"]: r for r in laws_lm.read_csv(os.path.join(out, lr.RATIOS))}
  assert set(ratios) == {"quarter_8u", "fresh_32u"}
  for key, r in ratios.items():
    # the multi-power law caps the short cosine's gain at the long one's
    assert float(r["ratio"]) <= 1.0
    # the seeds differ by a constant offset, which cancels in each seed's gains
    assert r["ratio_per_seed"].split() == [r["ratio"]] * len(lr.SEEDS)
    assert r["repetition_supported"] == str(key == "fresh_32u")
  assert os.path.getsize(os.path.join(out, "fresh_forecast.png")) > 10_000
  assert "refit of the forecast" in capsys.readouterr().out
