"""experiments/laws_lm/cap.py: the two new schedule sets, and the pre-registered protocol end to
end on logs from a known reducible-gain multi-power law (the real runs' figures are in
docs/laws.md)."""

import os

import pytest

from anytime.laws import MultiPowerLaw
from anytime.sweeps import common as sc
from experiments.laws_lm import cap
from experiments.laws_lm import grid as laws_lm
from experiments.laws_lm import long as laws_lm_long
from tests.laws.test_laws_lm_gain import TRUTH
from tests.laws.test_laws_lm_long import SEED_OFFSET, _write_logs

SET_8U, SET_32U = cap.SETS["8u"], cap.SETS["32u"]


@pytest.mark.parametrize(
  ("sset", "total", "every", "peak", "prefix", "seeds"),
  [
    (SET_8U, 8 * 240, 24, 2e-2, "lr0.02_", 6),
    (SET_32U, 32 * 240, 96, 1.414e-2, "lr0.01414_", 3),
  ],
)
def test_sets_are_new_runs_at_their_peak(sset, total, every, peak, prefix, seeds):
  rs = cap.runs(sset)
  names = [r.name for r in rs]
  assert len(names) == len(set(names)) == 7 * seeds
  assert all(n.startswith(prefix) for n in names)
  for r in rs:
    cfg = sc.lm_config(r.lm_arg, r.overrides)
    assert r.lr == peak and cfg.opt.lr == peak, r.name
    assert dict(r.overrides)["eval_every"] == str(every), r.name
    if r.parent is not None:  # branches start from the renamed parent, which trains first
      assert r.parent in names and names.index(r.parent) < names.index(r.name)
      assert dict(r.overrides)["init_from"] == r.parent
  for seed in sset.seeds:
    at = cap._by_label(sset, rs, seed)
    assert set(at) == set(sset.labels)
    assert at["constant"].total_steps == at[sset.long_cosine].total_steps == total
    assert at[f"cosine_h{sset.horizon / 2:g}"].total_steps == total // 2
    for label, frac, _ in laws_lm.COOLDOWNS:
      assert at[label].start_step == round(total * (1 - frac)), label
  # none of these runs exists in the sets the law was tuned on
  seen = {r.name for r in laws_lm_long.runs()} | {r.name for r in laws_lm.grid((0, 1, 2, 3))}
  assert not seen & set(names)
  # the fit phase trains the fit pair and the cooldowns' parent, nothing held out
  fit_labels = {lb for s in sset.seeds for lb in cap._by_label(sset, cap.fit_runs(sset), s)}
  assert fit_labels == {"constant", *sset.fit_set}
  assert set(sset.held_out) == {"wsd10_linear", "wsd20_linear", "wsd20_1-sqrt",
                                f"cosine_h{sset.horizon / 2:g}"}  # fmt: skip


def test_protocol_on_a_known_reducible_gain_law(tmp_path, capsys, monkeypatch):
  # 2 restarts instead of 8: the fits are most of the test's time
  monkeypatch.setattr(
    cap,
    "fit",
    lambda curves, fit_set, gain_kind, gamma_max: MultiPowerLaw(
      gain=gain_kind, gamma_max=gamma_max
    ).fit([curves[k] for k in fit_set], n_restarts=2),
  )
  sset = SET_8U
  root, out = str(tmp_path / "runs"), str(tmp_path / "out")
  (tmp_path / "runs").mkdir()  # a --root that does not exist is refused first
  args = ["--set", "8u", "--root", root, "--out", out, "--no_train"]
  paths = {k: os.path.join(out, v) for k, v in cap.files(sset).items()}
  with pytest.raises(ValueError, match="--set='4u'"):
    cap.main(["--set", "4u", *args[2:]])
  with pytest.raises(ValueError, match="unfinished"):
    cap.main([*args, "--prereg"])
  with pytest.raises(ValueError, match="--prereg"):  # held-out runs wait for the forecast
    cap.main([*args, "--phase", "held-out"])
  truth = MultiPowerLaw(max_bins=None, gain="reducible", gamma_max=1.5)
  params = TRUTH.copy()
  params[6] = 1.2  # gamma inside the primary forecast's bound
  _write_logs(root, cap.fit_runs(sset), law=truth, lr_ref=sset.peak_lr, params=params,
              every=sset.every)  # fmt: skip
  assert cap.main([*args, "--prereg"]) == 0
  with pytest.raises(ValueError, match="written once"):
    cap.main([*args, "--prereg"])
  pre = laws_lm.read_csv(paths["prereg"])
  assert [r["forecast"] for r in pre] == [k for k, _, _ in cap.FORECASTS for _ in sset.held_out]
  assert {r["run"] for r in pre if r["judged"] == "True"} == set(sset.held_out)
  assert all(r["forecast"] == cap.PRIMARY for r in pre if r["judged"] == "True")
  assert cap.main(args) == 0  # no held-out runs yet: no check
  assert not os.path.exists(paths["check"])

  _write_logs(root, cap.held_out_runs(sset), law=truth, lr_ref=sset.peak_lr, params=params,
              every=sset.every)  # fmt: skip
  assert cap.main(args) == 0
  rows = laws_lm.read_csv(paths["check"])
  primary = [r for r in rows if r["forecast"] == cap.PRIMARY]
  assert {r["run"] for r in primary} == set(sset.held_out)
  for r in primary:  # the law that generated the logs forecasts them: errors near zero
    assert abs(float(r["final_rel_err"])) < 1e-3, r
  # the truth is the seed mean: the law (computed here directly) plus the mean offset of
  # seeds 0-5, 1.5 x the offset
  run = cap.runs(sset, ("cosine_h4",), (0,))[0]
  feats = truth.features(laws_lm_long._final_only(run), sset.peak_lr)
  want = float(truth.predict_from(params, feats)[-1]) + 1.5 * SEED_OFFSET
  got = next(float(r["final_true"]) for r in primary if r["run"] == "cosine_h4")
  assert got == pytest.approx(want, abs=1e-5)
  pairs = laws_lm.read_csv(paths["pairs"])
  assert len(pairs) == 3  # the three held-out cooldowns
  # the seeds differ by a constant offset: every paired difference is resolved
  assert all(p["resolved"] == "True" and p["forecast_agrees"] == "True" for p in pairs)
  printed = capsys.readouterr().out
  assert "'primary_all_within_target': True" in printed
  assert "'primary_resolved_pairs_ordered': True" in printed
  assert "'resolved_pairs': 3" in printed
  assert os.path.getsize(os.path.join(out, "cap_8u_forecast.png")) > 10_000


def test_verdict_reads_each_criterion():
  rows = [
    dict(forecast=cap.PRIMARY, within_target=True),
    dict(forecast=cap.PRIMARY, within_target=True),
    dict(forecast="paper", within_target=False),  # only the primary forecast is judged
  ]
  pairs = [dict(resolved=True, forecast_agrees=True), dict(resolved=False, forecast_agrees=False)]
  assert cap.verdict(rows, pairs) == dict(
    primary_all_within_target=True,
    primary_resolved_pairs_ordered=True,  # the unresolved pair's order does not count
    resolved_pairs=1,
  )
  rows[1]["within_target"] = False
  pairs[0]["forecast_agrees"] = False
  assert cap.verdict(rows, pairs) == dict(
    primary_all_within_target=False, primary_resolved_pairs_ordered=False, resolved_pairs=1
  )
