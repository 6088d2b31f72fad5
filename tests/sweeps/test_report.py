"""The report's selection, table, noise and compute on synthetic eval logs with known answers."""

import csv
import json
import math
import os

import pytest

from anytime.sweeps import common as sc
from anytime.sweeps import figures, report
from tests.sweeps import synthetic


@pytest.fixture(scope="module")
def sweep_runs():
  s = synthetic.make_sweep()
  return s, sc.expand(s)


@pytest.fixture(scope="module")
def root(tmp_path_factory, sweep_runs):
  _, runs = sweep_runs
  path = str(tmp_path_factory.mktemp("synth"))
  for run in runs:
    synthetic.write_log(sc.workdir(path, run), run)
  return path


def test_table_matches_the_known_answers(root, sweep_runs):
  s, runs = sweep_runs
  rows = report.table(report.results_of(runs, root), s, runs)
  assert [r.horizon for r in rows] == [1, 2, 4]
  assert [r.tokens for r in rows] == [2560, 5120, 10240]
  assert [round(r.cosine.loss, 6) for r in rows] == [3.0, 2.9, 2.8]
  for label, deltas in synthetic.EXPECTED.items():
    got = [rows[i].delta(label) for i in range(3)]
    assert got == pytest.approx(deltas, abs=1e-9), label


def test_selected_hyperparameters(root, sweep_runs):
  s, runs = sweep_runs
  rows = report.table(report.results_of(runs, root), s, runs)
  # Cosine: lr 0.001 wins at 1x only; the 2.5 read at 1x inside longer runs is ignored.
  assert [r.cosine.lr for r in rows] == [0.001, 0.003, 0.003]
  tuned = [r.picks["constant+EMA (tuned)"] for r in rows]
  assert [(p.lr, p.key) for p in tuned] == [
    (0.003, "pema25"),
    (0.001, "pema25"),
    (0.001, "pema6.25"),
  ]
  # The diverged (NaN) offset-40 average never wins: offset 10 is picked at 4x.
  isqrt = [r.picks["inverse-sqrt+EMA (tuned)"].offset for r in rows]
  assert isqrt == [40.0, 40.0, 10.0]
  assert [r.picks["WSD (last iterate)"].lr for r in rows] == [0.001] * 3
  # Selection uses sweep.seeds only: the seed-1 repeats (all worse) are not averaged in.
  assert all(r.cosine.seeds == 1 for r in rows)


def test_selection_averages_over_sweep_seeds(root, sweep_runs):
  s, runs = sweep_runs
  s = synthetic.make_sweep()
  s.seeds = (0, 1)  # treat the noise seed as a sweep seed: configs with both get averaged
  results = report.results_of(runs, root)
  pick = report.select(results, report.COSINE, 2, (0, 1))
  assert pick.seeds == 2 and pick.loss == pytest.approx(2.9 + 0.01)  # mean of 2.90 and 2.92
  assert report.select(results, report.COSINE, 4, (7,)) is None  # no run of that seed


def test_noise_of_repeated_configurations(root, sweep_runs):
  s, runs = sweep_runs
  rows = report.noise(report.results_of(runs, root), s)
  by = {(n.method, n.key, n.horizon): n for n in rows}
  cos = by[("cosine", "raw", 2)]
  assert cos.losses == pytest.approx((2.9, 2.92)) and cos.std == pytest.approx(0.02 / math.sqrt(2))
  assert set(by) == {
    ("cosine", "raw", 2),
    *{("constant", k, h) for k in ("raw", "pema25") for h in (1, 2, 4)},
  }
  assert all(n.config == "lr 0.003 b2 0.95" for n in rows)


def test_compute_accounting_by_hand(sweep_runs):
  s, runs = sweep_runs
  c = {row["method"]: row for row in report.compute(runs, s)}
  tok = 2560  # tokens at 1x: 20 steps x 8 x 16
  assert c["cosine"]["tokens"] == 2 * (1 + 2 + 4) * tok - 0  # 2 lrs x horizons (seeds excluded)
  assert c["constant"]["tokens"] == 2 * 4 * tok
  assert c["inverse_sqrt"]["tokens"] == 2 * 4 * tok
  wsd_branches = 2 * round(0.1 * (1 + 2 + 4) * 20) * 128
  assert c["wsd"]["tokens"] == 2 * 4 * tok + wsd_branches
  assert c["wsd"]["runs"] == 6 + 2
  f = runs[0].flops_per_token
  assert c["cosine"]["flops"] == pytest.approx(c["cosine"]["tokens"] * f)
  assert c["constant"]["single_config_flops"] == pytest.approx(4 * tok * f)
  assert c["cosine"]["single_config_flops"] == pytest.approx(7 * tok * f)
  assert c["constant"]["single_vs_cosine"] == pytest.approx(4 / 7)


def test_report_files_and_reference(root, sweep_runs, tmp_path):
  s, runs = sweep_runs
  ref = tmp_path / "ref.csv"
  ref.write_text(
    "model,horizon_x_chinchilla,cosine_loss,delta_constant_ema25,delta_inverse_sqrt_ema25,"
    "delta_wsd_last_iterate\nm,1,3.1,0.01,0.02,0.03\nm,4,2.7,-0.01,-0.02,-0.03\n"
  )
  out = str(tmp_path / "out")
  _, text = report.report(s, runs, root, out, reference=str(ref), reference_model="m")
  assert sorted(os.listdir(out)) == sorted(
    [
      "report.md",
      "table.csv",
      "noise.csv",
      "compute.csv",
      "loss_vs_tokens.png",
      "delta_vs_horizon.png",
      "long_cosine.png",
      "runs",
    ]
  )
  anytime = [r for r in runs if r.method in sc.ANYTIME_METHODS]
  # One figure per anytime method (a panel per run of the first seed; the noise seed's repeats
  # get none), each named in report.md.
  assert {r.seed for r in anytime} > {s.seeds[0]}
  methods = {r.method for r in anytime}
  assert sorted(os.listdir(os.path.join(out, "runs"))) == sorted(f"{m}.png" for m in methods)
  assert all(f"![{m} runs](runs/{m}.png)" in text for m in methods)
  groups = figures.anytime_runs_by_method(report.results_of(runs, root), s)
  assert sorted((r.method, r.name) for g in groups.values() for r, _ in g) == sorted(
    (r.method, r.name) for r in anytime if r.seed == s.seeds[0]
  )
  with open(os.path.join(out, "table.csv")) as f:
    table = {(float(r["horizon"]), r["variant"]): r for r in csv.DictReader(f)}
  assert float(table[(4.0, "constant+EMA (tuned)")]["delta"]) == pytest.approx(-0.006)
  assert table[(4.0, "constant+EMA (tuned)")]["key"] == "pema6.25"
  # ours beside the paper's: 1x row = paper 3.1000, ours 3.0000, paper +0.0100, ours +0.0040
  assert (
    "| 1x | 3.1000 | 3.0000 | +0.0100 | +0.0040 | +0.0200 | +0.0200 | +0.0300 | +0.0070 |" in text
  )
  assert "| 2x | — | 2.9000 |" in text  # no paper value at 2x


def test_reader_handles_resume_nan_and_a_torn_line(tmp_path):
  d = tmp_path / "run"
  d.mkdir()
  lines = [
    {"kind": "header", "total_steps": 40, "steps_per_chinchilla": 20},
    {"kind": "eval", "step": 20, "tokens": 1, "loss": {"raw": 2.0}},
    {"kind": "header", "total_steps": 40, "steps_per_chinchilla": 20},  # resumed
    {"kind": "eval", "step": 20, "tokens": 1, "loss": {"raw": 1.5}},  # re-evaluated: latest wins
    {"kind": "eval", "step": 40, "tokens": 2, "loss": {"raw": "nan"}},
  ]
  (d / "eval.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + '\n{"kind": "ev')
  log = sc.read_eval_log(str(d))
  assert log.loss(20, "raw") == 1.5 and math.isnan(log.loss(40, "raw")) and log.done
  assert sc.loss_at_horizon(log, 1, "raw") == 1.5 and log.loss(20, "pema25") is None
  assert sc.read_eval_log(str(tmp_path / "missing")) is None


def test_reader_without_a_header_uses_the_self_contained_eval_records(tmp_path):
  record = {"kind": "eval", "step": 30, "chinchilla": 1.5, "tokens": 3, "loss": {"raw": 2.5}}
  (tmp_path / "eval.jsonl").write_text(json.dumps({**record, "run": {"total_steps": 40}}) + "\n")
  log = sc.read_eval_log(str(tmp_path))
  assert log.total_steps == 40 and not log.done and sc.loss_at_horizon(log, 1.5, "raw") == 2.5


def test_report_without_logs_fails_naming_root(sweep_runs, tmp_path):
  s, runs = sweep_runs
  with pytest.raises(ValueError, match=r"--root=.*none of the sweep's"):
    report.report(s, runs, str(tmp_path), str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()
