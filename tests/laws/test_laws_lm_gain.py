"""experiments/laws_lm/gain.py: the runs at peak 5e-3, and the pre-registered protocol end to end
on logs from a known reducible-gain multi-power law (the real runs' figures are in docs/laws.md)."""

import os

import pytest

from anytime.laws import MultiPowerLaw
from anytime.sweeps import common as sc
from experiments.laws_lm import gain as lg
from experiments.laws_lm import grid as laws_lm
from experiments.laws_lm import long as laws_lm_long
from tests.laws.test_laws_lm_long import SEED_OFFSET, _write_logs
from tests.laws.test_laws_lm_long import TRUTH as PAPER_TRUTH

# the reducible gain scales B by A S^-alpha (about 0.08 at these runs' ends): a larger B keeps
# the held-out finals apart by several times the fits' error
TRUTH = PAPER_TRUTH.copy()
TRUTH[3] = 8.0


def test_runs_are_the_32_unit_set_at_the_new_peak():
  mine, base = lg.runs(), laws_lm_long.runs(seeds=lg.SEEDS)
  assert [r.name for r in mine] == ["lr0.005_" + r.name for r in base]
  assert [(r.total_steps, r.start_step) for r in mine] == [
    (r.total_steps, r.start_step) for r in base
  ]
  names = {r.name for r in mine}
  for r in mine:
    assert r.lr == 5e-3 and sc.lm_config(r.lm_arg, r.overrides).opt.lr == 5e-3, r
    if r.parent is not None:  # branches start from the renamed parent's checkpoint
      assert r.parent in names and dict(r.overrides)["init_from"] == r.parent
  assert not names & {r.name for r in base}
  # the fit phase trains the fit pair and the cooldown's parent, nothing held out
  fit_labels = {r.name.split("_", 5)[-1] for r in lg.fit_runs()}
  assert fit_labels == {"constant", *lg.FIT_SET}
  assert not fit_labels & set(lg.HELD_OUT)
  assert set(lg.HELD_OUT) | set(lg.FIT_SET) == set(laws_lm_long.HELD_OUT + laws_lm_long.FIT_SET[1:])
  with pytest.raises(ValueError, match="not in the schedule set"):
    lg.runs(("cosine_h8",))


def test_protocol_on_a_known_reducible_gain_law(tmp_path, capsys, monkeypatch):
  # 2 restarts instead of 8: the fits are most of the test's time
  monkeypatch.setattr(
    lg,
    "fit",
    lambda curves, gain, fit_set: MultiPowerLaw(gain=gain).fit(
      [curves[k] for k in fit_set], n_restarts=2
    ),
  )
  root, out = str(tmp_path / "runs"), str(tmp_path / "out")
  (tmp_path / "runs").mkdir()  # a --root that does not exist is refused first
  args = ["--root", root, "--out", out, "--no_train"]
  with pytest.raises(ValueError, match="unfinished"):
    lg.main([*args, "--prereg"])
  with pytest.raises(ValueError, match="--prereg"):  # held-out runs wait for the forecast
    lg.main([*args, "--phase", "held-out"])
  with pytest.raises(ValueError, match="--phase='warm'"):
    lg.main([*args, "--phase", "warm"])
  truth = MultiPowerLaw(max_bins=None, gain="reducible")
  _write_logs(root, lg.fit_runs(), law=truth, lr_ref=lg.PEAK_LR, params=TRUTH)
  assert lg.main([*args, "--prereg"]) == 0
  with pytest.raises(ValueError, match="written once"):
    lg.main([*args, "--prereg"])
  pre = laws_lm.read_csv(os.path.join(out, lg.PREREG))
  assert {(r["forecast"], r["run"]) for r in pre if r["judged"] == "True"} == {
    (lg.PRIMARY, k) for k in lg.HELD_OUT
  }
  assert lg.main(args) == 0  # no held-out runs yet: no check
  assert not os.path.exists(os.path.join(out, lg.CHECK))

  _write_logs(root, lg.runs(lg.HELD_OUT), law=truth, lr_ref=lg.PEAK_LR, params=TRUTH)
  assert lg.main(args) == 0
  rows = laws_lm.read_csv(os.path.join(out, lg.CHECK))
  primary = [r for r in rows if r["forecast"] == lg.PRIMARY]
  assert {r["run"] for r in primary} == {*lg.HELD_OUT, "constant"}
  for r in primary:  # the reducible-gain law generated the logs: its forecast is the truth
    assert abs(float(r["final_rel_err"])) < 1e-3, r
  # the truth is the seed mean of the held-out finals, computed here from the law directly
  run = lg.runs((lg.SHORT_COSINE,), (0,))[0]
  want = float(
    truth.predict_from(TRUTH, truth.features(laws_lm_long._final_only(run), lg.PEAK_LR))[-1]
  )
  got = next(float(r["final_true"]) for r in primary if r["run"] == lg.SHORT_COSINE)
  assert got == pytest.approx(want, abs=1e-5)
  pairs = laws_lm.read_csv(os.path.join(out, lg.PAIRS))
  assert len(pairs) == 3  # the three held-out cooldowns
  # the seeds differ by a constant offset: every paired difference is resolved
  assert all(p["resolved"] == "True" and p["forecast_agrees"] == "True" for p in pairs)
  printed = capsys.readouterr().out
  assert "'primary_all_within_target': True" in printed
  assert "'primary_resolved_pairs_ordered': True" in printed
  assert os.path.getsize(os.path.join(out, lg.FIGURE)) > 10_000
  assert not os.path.exists(os.path.join(out, lg.REPLICATE))  # seeds 3-5 not trained yet

  # the replication: the same forecast against seeds 0-5, whose offsets average to 1.5 x 0.02
  _write_logs(root, lg.runs(("constant", *lg.HELD_OUT), lg.REPLICATE_SEEDS), law=truth,
              lr_ref=lg.PEAK_LR, params=TRUTH)  # fmt: skip
  assert lg.main(args) == 0
  rep = laws_lm.read_csv(os.path.join(out, lg.REPLICATE))
  assert {r["run"] for r in rep} == {"constant", *lg.HELD_OUT}  # not the fit pair's cooldown
  got = next(float(r["final_true"]) for r in rep if r["run"] == lg.SHORT_COSINE)
  assert got == pytest.approx(want + 1.5 * SEED_OFFSET, abs=1e-5)
  assert len(laws_lm.read_csv(os.path.join(out, lg.REPLICATE_PAIRS))) == 3
  assert "replication: {'primary_all_within_target': False" in capsys.readouterr().out


def _row(forecast, err, all_within=False):
  return dict(
    forecast=forecast,
    run=lg.SHORT_COSINE,
    final_rel_err=f"{err:+.5f}",
    held_out_all_within_target=all_within,
  )


def test_verdict_reads_each_criterion():
  rows = [_row(lg.PRIMARY, 0.004, True), _row("paper", 0.006)]
  pairs = [dict(resolved=True, forecast_agrees=True), dict(resolved=False, forecast_agrees=False)]
  assert lg.verdict(rows, pairs) == dict(
    primary_all_within_target=True,
    primary_resolved_pairs_ordered=True,  # the unresolved pair's order does not count
    paper_overpredicts_short_cosine=True,
  )
  pairs[0]["forecast_agrees"] = False
  rows = [_row(lg.PRIMARY, 0.006), _row("paper", -0.006)]
  assert lg.verdict(rows, pairs) == dict(
    primary_all_within_target=False,
    primary_resolved_pairs_ordered=False,
    paper_overpredicts_short_cosine=False,
  )
