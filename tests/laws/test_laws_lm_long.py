"""experiments/laws_lm/long.py: the 32-unit schedule set, and its forecast-then-check protocol end
to end on logs from a known multi-power law (the real runs' figures are in docs/laws.md)."""

import json
import os

import numpy as np
import pytest

from anytime import optim
from anytime.laws import MultiPowerLaw
from anytime.laws.curves import LossCurve
from anytime.sweeps import common as sc
from experiments.laws_lm import grid as laws_lm
from experiments.laws_lm import long as laws_lm_long
from tests.laws.test_laws_lm import _log_train

# L0, A, alpha, B, C, beta, gamma, LRs in units of the 1e-2 peak
TRUTH = np.array([2.4, 1.6, 0.35, 0.6, 1.5, 0.7, 0.6])
SEED_OFFSET = 0.02  # seed s adds (s - 1) x this: the three seeds' mean is the law


def test_grid_is_the_schedule_set_at_32_units():
  runs = laws_lm_long.runs()
  names = [r.name for r in runs]
  assert len(names) == len(set(names)) == 7 * len(laws_lm_long.SEEDS)
  assert not set(names) & {r.name for r in laws_lm.grid((0, 1, 2, 3))}
  for seed in laws_lm_long.SEEDS:
    mine = {r.name.rsplit(f"_s{seed}_", 1)[1]: r for r in runs if f"_s{seed}_" in r.name}
    assert set(mine) == set(laws_lm_long.LABELS)
    parent = mine["constant"]
    assert parent.total_steps == mine["cosine_h32"].total_steps == 32 * 240
    assert mine["cosine_h16"].total_steps == 16 * 240
    for label, frac, _ in laws_lm.COOLDOWNS:
      b = mine[label]
      assert b.parent == parent.name and b.start_step == round(7680 * (1 - frac))
      assert names.index(b.name) > names.index(parent.name)
    assert all(dict(r.overrides)["eval_every"] == "96" and r.lr == 1e-2 for r in mine.values())
  with pytest.raises(ValueError, match="not in the schedule set"):
    laws_lm_long.runs(("cosine_h8",))


def _write_logs(root, runs, law=None, lr_ref=1e-2, params=TRUTH, every=96):
  """Train and eval logs of ``runs``, evaluated each ``every`` steps, whose eval loss follows
  ``params`` under ``law`` (default the paper's multi-power law, LRs in units of ``lr_ref``)
  plus the seed offset."""
  for run in runs:
    cfg = sc.lm_config(run.lm_arg, run.overrides)
    lrs = np.asarray(optim.make_schedule(cfg.opt, run.total_steps)(np.arange(run.total_steps)))
    first = run.start_step + 1
    steps = np.array([k for k in range(every, run.total_steps + 1, every) if k >= first])
    c = LossCurve(run.name, lrs, steps, np.ones(steps.size), warmup_steps=laws_lm.WARMUP)
    law = law or MultiPowerLaw(max_bins=None)
    loss = law.predict_from(params, law.features(c, lr_ref)) + (run.seed - 1) * SEED_OFFSET
    _log_train(root, run, lrs, first, run.total_steps)
    with open(os.path.join(root, run.name, "eval.jsonl"), "w") as f:
      header = {"kind": "header", "total_steps": run.total_steps, "steps_per_chinchilla": 240}
      f.write(json.dumps(header) + "\n")
      for k, v in zip(steps, loss, strict=True):
        record = {"kind": "eval", "step": int(k), "tokens": int(k) * run.tokens_per_step}
        f.write(json.dumps({**record, "loss": {"raw": float(v)}}) + "\n")


def test_forecast_then_check_on_a_known_law(tmp_path, capsys, monkeypatch):
  # the multi-power law only, with 2 restarts instead of 8 (the fits are most of the test's time)
  fast = (("multipower", MultiPowerLaw, dict(n_restarts=2)),)
  monkeypatch.setattr(laws_lm, "SCHEDULE_LAWS", fast)
  root, out = str(tmp_path / "runs"), str(tmp_path / "out")
  args = ["--root", root, "--out", out]
  with pytest.raises(ValueError, match="have not all finished"):
    laws_lm_long.main([*args, "--prereg"])
  with pytest.raises(ValueError, match="--prereg"):  # held-out runs wait for the forecast
    laws_lm_long.main([*args, "--phase", "held-out"])
  _write_logs(root, laws_lm_long.runs(laws_lm_long.FIT_SET))
  assert laws_lm_long.main([*args, "--prereg"]) == 0
  with pytest.raises(ValueError, match="written once"):
    laws_lm_long.main([*args, "--prereg"])
  pre = laws_lm.read_csv(os.path.join(out, laws_lm_long.PREREG))
  assert {(r["min_step"], r["run"]) for r in pre} == {
    (str(m), k) for m in laws_lm_long.MIN_STEPS for k in laws_lm_long.HELD_OUT
  }
  assert laws_lm_long.main([*args, "--no_train"]) == 0  # no held-out runs yet: no check
  assert not os.path.exists(os.path.join(out, laws_lm_long.CHECK))

  _write_logs(root, laws_lm_long.runs(laws_lm_long.HELD_OUT))
  assert laws_lm_long.main([*args, "--no_train"]) == 0
  rows = laws_lm.read_csv(os.path.join(out, laws_lm_long.CHECK))
  assert len(rows) == len(pre)
  primary = [r for r in rows if r["law"] == "multipower" and r["min_step"] == "1920"]
  assert len(primary) == len(laws_lm_long.HELD_OUT)
  for r in primary:  # the law generated the logs: its forecast is the seed-mean truth
    assert abs(float(r["final_rel_err"])) < 1e-3, r
    assert r["within_target"] == r["all_within_target"] == r["wsd_ranking_correct"] == "True"
  # the truth is the seed mean of the held-out finals, computed here from the law directly
  run = laws_lm_long.runs(("wsd20_1-sqrt",), (0,))[0]
  c = laws_lm_long._final_only(run)
  law = MultiPowerLaw(max_bins=None)
  want = float(law.predict_from(TRUTH, law.features(c, 1e-2))[-1])
  got = next(float(r["final_true"]) for r in primary if r["run"] == "wsd20_1-sqrt")
  assert got == pytest.approx(want, abs=1e-5)
  printed = capsys.readouterr().out
  assert "wsd20_1-sqrt" in printed and "refit of the forecast" in printed
  redo = laws_lm.read_csv(os.path.join(out, laws_lm_long.REFIT))
  three = [r for r in redo if r["fit"] == "constant+cosine_h32+wsd20_linear"]
  assert {r["role"] for r in three if r["run"] == "wsd20_linear"} == {"fit"}
  assert max(abs(float(r["final_rel_err"])) for r in three) < 1e-3
  assert os.path.getsize(os.path.join(out, "long_forecast.png")) > 10_000


def test_bad_phase_is_refused(tmp_path):
  with pytest.raises(ValueError, match="--phase='warm'"):
    laws_lm_long.main(["--root", str(tmp_path), "--out", str(tmp_path), "--phase", "warm"])
