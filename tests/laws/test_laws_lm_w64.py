"""experiments/laws_lm/w64.py: the width-64 runs, and the pre-registered LR predictions checked
end to end on synthetic logs from a known LR law (the real runs' figures are in docs/laws.md)."""

import json
import math

import numpy as np
import pytest

from experiments.laws_lm import grid as laws_lm
from experiments.laws_lm import w64 as laws_lm_w64
from tests.laws.test_laws_lm import ALPHA, BETA, CURVATURE, LOG_C0, _loss, _write


def _lr_star(run):
  return math.exp(LOG_C0 + ALPHA * math.log(run.params) + BETA * math.log(run.trained_tokens))


def test_runs_are_the_laws_grid_at_width_64():
  runs = laws_lm_w64.grid()
  names = [r.name for r in runs]
  assert len(names) == len(set(names))
  assert not set(names) & {r.name for r in laws_lm.grid((0, 1, 2, 3))}
  sp = laws_lm_w64.lr_runs()
  assert {r.lr for r in sp} == set(laws_lm.LRS) and {r.seed for r in sp} == set(laws_lm_w64.SEEDS)
  base = next(r for r in laws_lm.grid() if r.name == laws_lm._cosine_name(32, 2.0, 1e-2))
  # 2 layers of width 64 with a 4x MLP: 4x width 32's non-embedding parameters (norms aside)
  assert sp[0].params == pytest.approx(4 * base.params, rel=0.01)
  assert all(r.total_steps == base.total_steps == 480 for r in sp)
  mup = laws_lm_w64.lr_runs((0,), mup=True)
  assert all(dict(r.overrides)["model.parameterization"] == "mup" for r in mup)
  assert all(dict(r.overrides)["model.base_width"] == "32" for r in mup)
  check = laws_lm_w64.mup_check_run()
  assert check.params == base.params and check.lr == base.lr and check.seed == base.seed
  sched = laws_lm_w64.schedule_runs()
  assert {r.lr for r in sched} == {laws_lm_w64.SCHEDULE_LR}
  assert all(r.name.startswith("w64_e24_") and r.params == sp[0].params for r in sched)
  with pytest.raises(ValueError, match="only the dense set"):
    laws_lm._schedule_runs(0, dense=False, width=64, peak_lr=5e-3)


def test_prereg_then_check_on_a_known_law(tmp_path, capsys):
  laws_root, root, out = (str(tmp_path / d) for d in ("laws", "w64", "out"))
  for r in laws_lm.grid(laws_lm_w64.PREREG_SEEDS):
    if r.method == "cosine" and r.name not in laws_lm.dense_names():
      _write(laws_root, r, _loss(r))
  assert laws_lm_w64.main(["--root", root, "--out", out, "--laws_root", laws_root, "--prereg"]) == 0
  with pytest.raises(ValueError, match="written once"):
    laws_lm_w64.main(["--root", root, "--out", out, "--laws_root", laws_root, "--prereg"])
  pre = laws_lm.read_csv(f"{out}/{laws_lm_w64.PREREG}")
  target = laws_lm_w64.lr_runs((0,))[0]
  # the loss is exactly quadratic in ln LR: both estimators' laws give the truth at width 64
  for row in pre:
    assert math.log(float(row["lr_law"])) == pytest.approx(math.log(_lr_star(target)), abs=2e-3)
  h8 = laws_lm.read_csv(f"{out}/{laws_lm_w64.prereg_name(8.0)}")
  target8 = laws_lm_w64.lr_runs((0,), horizon=8.0)[0]
  assert target8.trained_tokens == 4 * target.trained_tokens
  for row in h8:
    assert math.log(float(row["lr_law"])) == pytest.approx(math.log(_lr_star(target8)), abs=2e-3)
  base = next(r for r in laws_lm.grid() if r.name == laws_lm._cosine_name(32, 2.0, 1e-2))
  assert float(pre[0]["mup_transfer"]) == pytest.approx(_lr_star(base), rel=2e-3)

  # Width 64's runs: SP on the law; muP with its optimum 1 octave above the base width's, so
  # the muP transfer is off by -1 octave and the LR law by 0.
  for r in laws_lm_w64.lr_runs():
    _write(root, r, _loss(r))
  for r in laws_lm_w64.lr_runs(laws_lm_w64.MUP_SEEDS, mup=True):
    _write(root, r, 3.0 + CURVATURE * math.log(r.lr / (2 * _lr_star(base))) ** 2)
  assert (
    laws_lm_w64.main(["--root", root, "--out", out, "--laws_root", laws_root, "--no_train"]) == 0
  )
  rows = laws_lm.read_csv(f"{out}/w64_lr_check.csv")
  assert len(rows) == 4
  for row in rows:
    want = 0.0 if row["prediction"] == "LR law (SP)" else -1.0
    assert float(row["error_octaves"]) == pytest.approx(want, abs=5e-3), row
    assert row["within_half_octave"] == str(want == 0.0)
  assert "width 64's optimum" in capsys.readouterr().out


def test_check_refuses_to_run_without_predictions(tmp_path):
  with pytest.raises(ValueError, match="run --prereg"):
    laws_lm_w64.main(["--root", str(tmp_path), "--out", str(tmp_path), "--no_train"])
  assert np.isclose(laws_lm_w64.SCHEDULE_LR, laws_lm.SCHEDULE_LR / 2)


def test_size_check_recovers_a_known_forward_momentum_law(tmp_path):
  """Dense logs of the three sizes from a known forward-momentum law: fitted across sizes, it
  predicts width 64's held-out finals exactly (checks sizes, LRs and branch histories)."""
  from anytime import optim
  from anytime.laws.forward_momentum import annealing_momentum
  from anytime.sweeps import common as sc
  from tests.laws.test_laws_lm import _log_train

  laws_root, root = str(tmp_path / "laws"), str(tmp_path / "w64")
  sets = ((laws_root, [r for r in laws_lm.grid() if r.name in laws_lm.dense_names()]),)
  sets += ((root, laws_lm_w64.size_runs()), (root, laws_lm_w64.schedule_runs()))
  n_ref = min(r.params for _, runs in sets for r in runs)
  l0, a, alpha_s, c, b, alpha_n = 2.0, 3.0, 0.3, 1e-4, 0.8, 0.5
  for where, runs in sets:
    for run in runs:
      cfg = sc.lm_config(run.lm_arg, run.overrides)
      lrs = np.asarray(optim.make_schedule(cfg.opt, run.total_steps)(np.arange(run.total_steps)))
      x = lrs / 1e-2  # the fit divides by its largest LR: width 32's peak
      loss = l0 + a * np.cumsum(x) ** -alpha_s + b * (run.params / n_ref) ** -alpha_n
      loss = loss - c * annealing_momentum(x, laws_lm.WARMUP)
      first = run.start_step + 1
      _log_train(where, run, lrs, first, run.total_steps)
      steps = [k for k in range(24, run.total_steps + 1, 24) if k >= first]
      with open(f"{where}/{run.name}/eval.jsonl", "w") as f:
        header = {"kind": "header", "total_steps": run.total_steps, "steps_per_chinchilla": 240}
        f.write(json.dumps(header) + "\n")
        for k in steps:
          record = {"kind": "eval", "step": k, "tokens": k * run.tokens_per_step}
          f.write(json.dumps({**record, "loss": {"raw": float(loss[k - 1])}}) + "\n")
  rows = laws_lm_w64.size_check(root, laws_root, str(tmp_path), 100)
  across = [r for r in rows if r["fit"].startswith("w32+w48")]
  assert {r["run"] for r in across} == {
    "w64_cosine_h4",
    "w64_wsd10_linear",
    "w64_wsd10_1-sqrt",
    "w64_wsd20_linear",
    "w64_wsd20_1-sqrt",
  }
  assert all(r["size_term"] for r in across)
  assert max(abs(r["final_rel_err"]) for r in across) < 1e-3, across
