"""experiments/laws_lm/clock.py: the runs at peak 2e-2, and the pre-registered protocol end to end
on logs from a known multi-power law at clock exponent 0.35 (the real runs' figures are in
docs/laws.md)."""

import os

import pytest

from anytime.laws import MultiPowerLaw
from anytime.sweeps import common as sc
from experiments.laws_lm import clock as lc
from experiments.laws_lm import grid as laws_lm
from experiments.laws_lm import long as laws_lm_long
from tests.laws.test_laws_lm_long import TRUTH, _write_logs


def test_runs_are_the_32_unit_set_at_the_new_peak():
  mine, base = lc.runs(), laws_lm_long.runs(seeds=lc.SEEDS)
  assert [r.name for r in mine] == ["lr0.02_" + r.name for r in base]
  assert [(r.total_steps, r.start_step) for r in mine] == [
    (r.total_steps, r.start_step) for r in base
  ]
  names = {r.name for r in mine}
  for r in mine:
    assert r.lr == 2e-2 and sc.lm_config(r.lm_arg, r.overrides).opt.lr == 2e-2, r
    if r.parent is not None:  # branches start from the renamed parent's checkpoint
      assert r.parent in names and dict(r.overrides)["init_from"] == r.parent
  assert not names & {r.name for r in base}  # never collides with the 1e-2 runs
  with pytest.raises(ValueError, match="not in the schedule set"):
    lc.runs(("cosine_h8",))


def test_protocol_on_a_known_clock(tmp_path, capsys, monkeypatch):
  # 2 restarts instead of 8: the fits are most of the test's time
  monkeypatch.setattr(
    lc,
    "fit",
    lambda curves, power: MultiPowerLaw(lr_power=power).fit(
      [curves[k] for k in laws_lm_long.FIT_SET], n_restarts=2
    ),
  )
  root, out = str(tmp_path / "runs"), str(tmp_path / "out")
  (tmp_path / "runs").mkdir()  # a --root that does not exist is refused first
  args = ["--root", root, "--out", out, "--no_train"]
  with pytest.raises(ValueError, match="unfinished"):
    lc.main([*args, "--prereg"])
  with pytest.raises(ValueError, match="--prereg"):  # held-out runs wait for the forecast
    lc.main([*args, "--phase", "held-out"])
  with pytest.raises(ValueError, match="--phase='warm'"):
    lc.main([*args, "--phase", "warm"])
  truth = MultiPowerLaw(max_bins=None, lr_power=lc.PRIMARY)
  _write_logs(root, lc.runs(laws_lm_long.FIT_SET), law=truth, lr_ref=lc.PEAK_LR)
  assert lc.main([*args, "--prereg"]) == 0
  with pytest.raises(ValueError, match="written once"):
    lc.main([*args, "--prereg"])
  pre = laws_lm.read_csv(os.path.join(out, lc.PREREG))
  assert {(float(r["power"]), r["run"]) for r in pre} == {
    (p, k) for p in lc.POWERS for k in laws_lm_long.HELD_OUT
  }
  assert lc.main(args) == 0  # no held-out runs yet: no check
  assert not os.path.exists(os.path.join(out, lc.CHECK))

  _write_logs(root, lc.runs(laws_lm_long.HELD_OUT), law=truth, lr_ref=lc.PEAK_LR)
  assert lc.main(args) == 0
  rows = laws_lm.read_csv(os.path.join(out, lc.CHECK))
  primary = [r for r in rows if float(r["power"]) == lc.PRIMARY]
  assert {r["run"] for r in primary} == set(laws_lm_long.HELD_OUT)
  for r in primary:  # the law at p = 0.35 generated the logs: its forecast is the truth
    assert abs(float(r["final_rel_err"])) < 1e-3, r
  # the truth is the seed mean of the held-out finals, computed here from the law directly
  run = lc.runs(("cosine_h16",), (0,))[0]
  want = float(
    truth.predict_from(TRUTH, truth.features(laws_lm_long._final_only(run), lc.PEAK_LR))[-1]
  )
  got = next(float(r["final_true"]) for r in primary if r["run"] == "cosine_h16")
  assert got == pytest.approx(want, abs=1e-5)
  # under a p < 1 clock the shorter cosine gains more per unit of area than the long one
  assert float(primary[0]["gain_ratio"]) > 1.0
  pairs = laws_lm.read_csv(os.path.join(out, lc.PAIRS))
  assert len(pairs) == 6
  # the seeds differ by a constant offset: every paired difference is resolved
  assert all(p["resolved"] == "True" and p["forecast_agrees"] == "True" for p in pairs)
  printed = capsys.readouterr().out
  assert "'primary_all_within_target': True" in printed
  assert "'primary_resolved_pairs_ordered': True" in printed
  assert os.path.getsize(os.path.join(out, lc.FIGURE)) > 10_000


def _row(power, run, err, ratio="1.200"):
  return dict(
    power=power,
    run=run,
    final_rel_err=f"{err:+.5f}",
    all_within_target=False,
    gain_ratio=ratio,
  )


def test_verdict_reads_each_criterion():
  short = laws_lm_long.HELD_OUT[-1]
  rows = [_row(lc.PRIMARY, short, 0.004), _row(1.0, short, 0.006, "1.050")]
  rows[0]["all_within_target"] = True
  pairs = [dict(resolved=True, forecast_agrees=True), dict(resolved=False, forecast_agrees=False)]
  got = lc.verdict(rows, pairs)
  assert got == dict(
    primary_all_within_target=True,
    primary_resolved_pairs_ordered=True,  # the unresolved pair's order does not count
    p1_overpredicts_short_cosine=True,
    gain_ratio_above=False,
  )
  pairs[0]["forecast_agrees"] = False
  rows[1]["final_rel_err"] = "+0.00400"
  got = lc.verdict(rows, pairs)
  assert not got["primary_resolved_pairs_ordered"]
  assert not got["p1_overpredicts_short_cosine"]


def test_area_diagnosis_reads_these_runs():
  from experiments.laws_lm import area as la

  setting = next(s for s in la.SETTINGS if s[0] == "lr0.02_w32_32u")
  assert setting[2] == lc.PEAK_LR and setting[-1] == lc.PREFIX + "_"
  # laws_lm_area reads the run names (seed 0's) that this module trains
  built = la.lld.prefixed(
    la.ll._schedule_runs(0, dense=True, width=32, peak_lr=2e-2, horizon=32, every=96), "lr0.02_"
  )
  assert {r.name for r in lc.runs(seeds=(0,))} <= {r.name for r in built}
