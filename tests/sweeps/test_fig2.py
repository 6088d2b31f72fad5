"""Figure 2: the one-trajectory rule, paired deltas, summary.csv and the equivalent-compute fit,
on synthetic eval logs with known answers (tests/sweeps/fig2_synthetic.py)."""

import csv
import dataclasses
import math
import os
import shutil

import pytest

from anytime.sweeps import common as sc
from anytime.sweeps import equivalent_compute as ec
from anytime.sweeps import fig2, report
from tests.sweeps import fig2_synthetic as fs
from tests.sweeps import synthetic


@pytest.fixture(scope="module")
def done(tmp_path_factory):
  s = fs.make_sweep()
  root = str(tmp_path_factory.mktemp("f2"))
  grid, extra = fs.write(s, root)
  return s, root, grid + extra, report.results_of(grid + extra, root)


def test_the_rule_picks_the_lowest_mean_delta_not_the_per_horizon_best(done):
  s, _, runs, results = done
  rows = report.table(results, s, runs)
  # Tuned per horizon, a different constant configuration wins at every horizon ...
  tuned = [rows[i].picks["constant+EMA (tuned)"] for i in range(3)]
  assert [(p.lr, p.key) for p in tuned] == [
    (0.001, "pema6.25"),
    (0.003, "pema6.25"),
    (0.003, "pema25"),
  ]
  # ... the one trajectory is the lowest MEAN delta over 1, 2, 4x: (0.001, EMA 25), +0.004.
  t = fig2.trajectory(results, s, "constant")
  assert (t.lr, t.b2, t.offset, t.key) == (0.001, 0.95, None, "pema25")
  assert t.mean_delta == pytest.approx(0.004)
  assert t.losses == pytest.approx({1: 3.004, 2: 2.904, 4: 2.804})
  # Inverse-sqrt: offset 10 + EMA 25 is 0.0 at 1x and 2x but NaN at 4x: not eligible.
  t = fig2.trajectory(results, s, "inverse_sqrt")
  assert (t.lr, t.offset, t.key) == (0.003, 40.0, "pema25") and t.mean_delta == pytest.approx(0.01)
  # Nothing eligible when a horizon has no tuned cosine (its run's log missing).
  without = [(r, log) for r, log in results if r.name != "cosine_h2_lr0.003_b0.95_s0"]
  assert fig2.trajectory(without, s, "constant").lr == 0.001  # cosine lr 0.001 still at 2x
  no_cosine = [(r, log) for r, log in results if not (r.method == "cosine" and r.horizon == 2)]
  assert fig2.trajectory(no_cosine, s, "constant") is None
  with pytest.raises(ValueError, match="method='wsd' is invalid"):
    fig2.trajectory(results, s, "wsd")


def _se(xs):
  m = sum(xs) / len(xs)
  return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) / math.sqrt(len(xs))


def test_paired_delta_and_its_standard_error_by_hand(done):
  s, _, runs, results = done
  rows = report.table(results, s, runs)
  frows = fig2.fig2_rows(
    results, s, rows, {"constant": fig2.trajectory(results, s, "constant")}, {}
  )
  # 1x: cosine 3.000 / 3.010 / 2.996 (seeds 0, 1, 2); constant (0.001, EMA 25)
  # 3.004 / 3.006 / 3.004.
  cos = frows[0].cosine
  assert cos.seeds == (0, 1, 2) and cos.loss == pytest.approx(3.002)
  assert cos.loss_se == pytest.approx(_se([3.0, 3.01, 2.996]))
  const = frows[0].methods["constant"]
  diffs = [0.004, 0.006 - 0.010, 0.004 + 0.004]  # per seed: method - cosine of the same seed
  assert const.n == 3 and const.delta == pytest.approx(sum(diffs) / 3)  # 0.002667
  assert const.delta_se == pytest.approx(_se(diffs))  # std / sqrt(3) = 0.003528
  assert const.delta_se == pytest.approx(0.0035277, abs=1e-7)
  # Seed noise: the std itself, by hand (sum of squared deviations / (n - 1)).
  assert cos.loss_std == pytest.approx(math.sqrt((0.002**2 + 0.008**2 + 0.006**2) / 2))
  assert const.loss_std == pytest.approx(math.sqrt((2 * (0.002 / 3) ** 2 + (0.004 / 3) ** 2) / 2))
  assert const.delta_std == pytest.approx(const.delta_se * math.sqrt(3))
  # 4x: cosine seed 2 has no log, so only seeds 0 and 1 pair: +0.004 and -0.004.
  const4 = frows[2].methods["constant"]
  assert const4.seeds == (0, 1, 2) and const4.n == 2
  assert const4.delta == pytest.approx(0.0) and const4.delta_se == pytest.approx(0.004)
  assert frows[2].cosine.seeds == (0, 1) and [f.epochs for f in frows] == [0.5, 1.0, 2.0]


def test_summary_csv_rows_grid_and_epochs(done, tmp_path):
  s, root, runs, _ = done
  out = str(tmp_path / "out")
  report.report(s, runs, root, out)
  with open(os.path.join(out, "summary.csv")) as f:
    lines = f.read().splitlines()
  assert (
    lines[0] == "method,horizon,lr,grid_min,grid_max,seeds,loss_mean,delta_mean,delta_se,epochs"
  )
  rows = {(r["method"], r["horizon"]): r for r in csv.DictReader(lines)}
  assert [m for m, h in rows if h == "1"] == [
    "cosine", "constant_ema", "constant_ema_fig2", "inverse_sqrt_ema", "inverse_sqrt_ema_fig2",
    "wsd", "schedule_free",
  ]  # fmt: skip
  assert lines[1] == "cosine,1,0.003,0.001,0.003,3,3.002000,,,0.5000"
  assert rows[("cosine", "4")]["seeds"] == "2" and rows[("cosine", "4")]["epochs"] == "2.0000"
  # Tuned per horizon at 1x: (0.001, EMA 6.25), in the headline run too, so over seeds 0-2:
  # per-seed deltas -0.010, -0.010 + 0.002 - 0.010, -0.010 + 0.004.
  tuned = rows[("constant_ema", "1")]
  assert (tuned["lr"], tuned["grid_min"], tuned["grid_max"], tuned["seeds"]) == (
    "0.001", "0.001", "0.003", "3",
  )  # fmt: skip
  assert float(tuned["delta_mean"]) == pytest.approx(-0.034 / 3, abs=1e-6)
  assert float(tuned["delta_se"]) == pytest.approx(_se([-0.010, -0.018, -0.006]), abs=1e-6)
  two = rows[("constant_ema", "2")]  # (0.003, EMA 6.25): seed 0 only, no SE
  assert (two["lr"], two["seeds"], two["delta_mean"], two["delta_se"]) == (
    "0.003", "1", "-0.005000", "",
  )  # fmt: skip
  fig = rows[("constant_ema_fig2", "4")]
  assert (fig["lr"], fig["grid_min"], fig["grid_max"], fig["delta_mean"], fig["delta_se"]) == (
    "0.001", "0.001", "0.003", "0.000000", "0.004000",
  )  # fmt: skip
  isq = rows[("inverse_sqrt_ema_fig2", "1")]
  assert (isq["lr"], isq["grid_min"], isq["grid_max"]) == ("0.003", "0.003", "0.003")
  assert rows[("wsd", "2")]["delta_mean"] == "0.050000"  # lr 0.001 branch, +0.05 (raw)
  s0 = fs.make_sweep()
  s0.report_train_tokens = 0  # unknown corpus size: the epochs column stays empty
  summary = fig2.summary_rows(
    report.results_of(runs, root), s0, report.table(report.results_of(runs, root), s0, runs),
    report.variants(s0), {},
  )  # fmt: skip
  assert {row[-1] for row in summary} == {""}


def test_summary_grid_is_the_lrs_run_at_the_selected_offset(done, tmp_path):
  # One more inverse-sqrt LR (0.001), run at offset 10 only, 0.2 worse than lr 0.003 there.
  s, root, runs, _ = done
  copy = str(tmp_path / "root")
  shutil.copytree(root, copy)
  at10 = next(r for r in runs if r.method == "inverse_sqrt" and r.offset == 10.0 and r.seed == 0)
  extra = dataclasses.replace(at10, name=at10.name.replace("lr0.003", "lr0.001"), lr=0.001)
  synthetic.write_log(sc.workdir(copy, extra), extra, lambda r, h, k: fs.loss(at10, h, k) + 0.2)
  out = str(tmp_path / "out")
  report.report(s, [*runs, extra], copy, out)
  with open(os.path.join(out, "summary.csv")) as f:
    rows = {(r["method"], r["horizon"]): r for r in csv.DictReader(f)}
  grid = lambda row: (row["lr"], row["grid_min"], row["grid_max"])
  # Tuned at 1x: offset 10, lr 0.003, bracketed below by the new run ...
  assert grid(rows[("inverse_sqrt_ema", "1")]) == ("0.003", "0.001", "0.003")
  # ... but the trajectory (offset 40) was run at 0.003 alone: still its only LR.
  assert grid(rows[("inverse_sqrt_ema_fig2", "1")]) == ("0.003", "0.003", "0.003")


def test_report_sections_files_and_a_byte_identical_rebuild(done, tmp_path):
  s, root, runs, _ = done
  texts = []
  for name in ("a", "b"):
    _, text = report.report(s, runs, root, str(tmp_path / name), reference=report.REFERENCE,
                            reference_model="150m")  # fmt: skip
    texts.append(text)
  a, b = tmp_path / "a", tmp_path / "b"
  assert {"fig2.csv", "summary.csv", "fig2.png"} <= set(os.listdir(a))
  for f in ("report.md", "fig2.csv", "summary.csv", "fig2.png", "table.csv"):
    assert (a / f).read_bytes() == (b / f).read_bytes(), f
  text = texts[0]
  assert "## Figure 2: one anytime trajectory vs cosine tuned per horizon" in text
  # 1x: cosine 3.0020 ± SE (3 seeds); constant (0.001, EMA 25) +0.0027 ± 0.0035 (3); the paper
  # (150M, EMA 25): +0.0074 and +0.0040.
  assert "| 1x | 2.56k | 0.500 | 0.003 | 3.0020 ± 0.0042 (3) | 0.001, 25 | 3.0047 | " in text
  assert "+0.0027 ± 0.0035 (3)" in text and "| +0.0074 |" in text
  assert "## Best per budget" in text and "## Equivalent compute" in text
  # Seed noise of the headline configurations, 1x: cosine std 0.0072 (seeds 3.000, 3.010,
  # 2.996), constant 0.0012 (3.004, 3.006, 3.004), paired Δ 0.0061 (0.004, -0.004, 0.008).
  assert "| 1x | 0.0072 (3) | 0.0012 (3) | 0.0061 (3) |" in text
  assert "No `noise.seeds` repeats in this sweep" in text
  with open(a / "fig2.csv") as f:
    rows = list(csv.DictReader(f))
  assert [r["constant_n"] for r in rows] == ["3", "3", "2"]
  assert [r["paper_delta_inverse_sqrt_ema25"] for r in rows] == ["0.0040", "-0.0045", "-0.0066"]
  assert rows[0]["inverse_sqrt_offset"] == "40" and rows[0]["constant_key"] == "pema25"


def test_without_headline_seeds_the_report_is_unchanged(done, tmp_path):
  s, root, runs, _ = done
  s = fs.make_sweep()
  s.headline.seeds = ()
  report.report(s, runs, root, str(tmp_path / "out"))
  assert not {"fig2.csv", "summary.csv", "fig2.png"} & set(os.listdir(tmp_path / "out"))


def test_the_fit_recovers_a_known_law_and_its_equivalent_compute():
  e, a, alpha, d0 = 2.0, 1.5, 0.35, 1.0e6
  tokens = [d0 * 2**k for k in range(6)]
  law = ec.fit_law(tokens, [e + a * (d / d0) ** -alpha for d in tokens])
  assert (law.E, law.A, law.alpha) == pytest.approx((e, a, alpha), rel=1e-6)
  assert max(map(abs, law.residuals)) < 1e-9
  at = 4.0e6
  target = e + a * (3.0e6 / d0) ** -alpha  # the loss cosine reaches at 3M tokens
  assert law.tokens_for(target) == pytest.approx(3.0e6, rel=1e-6)
  delta = target - law.loss(at)  # a method at 4M tokens as good as cosine at 3M
  assert ec.deq_ratio(law, law.loss(at), delta, at) == pytest.approx(0.75, rel=1e-6)
  assert not law.extrapolated(3.0e6) and law.extrapolated(0.5e6) and law.extrapolated(64e6)
  assert math.isinf(ec.deq_ratio(law, law.loss(at), e - law.loss(at), at))  # L_m <= E
  assert ec.fit_law(tokens[:2], [3.0, 2.9]) is None  # too few points
  assert ec.fit_law(tokens[:3], [2.8, 2.9, 3.0]) is None  # loss rising with tokens


def test_seed_losses_keep_only_finite_losses_of_that_config(done):
  results = done[3]
  got = fig2.seed_losses(results, "inverse_sqrt", (0.003, 0.95, 10.0, "pema25"), 4, (0, 1, 2))
  assert got == {}  # NaN at 4x
  got = fig2.seed_losses(results, "cosine", (0.003, 0.95, None, "raw"), 2, (0, 1, 2))
  assert got == pytest.approx({0: 2.9, 1: 2.91, 2: 2.896})
