"""experiments/laws_lm/grid.py: the grid and the LR-law / equivalent-compute checks on synthetic
logs generated from known laws (the real runs' figures are in docs/laws.md)."""

import json
import math
import os

import numpy as np
import pytest

import anytime
from anytime import optim
from anytime.sweeps import common as sc
from experiments.laws_lm import grid as laws_lm
from experiments.laws_lm import lr as laws_lm_lr

# Truth: ln LR* = ln C0 + ALPHA ln N + BETA ln D; tuned loss L(C) = E + A (C / 1e11)^-a.
LOG_C0, ALPHA, BETA = math.log(1.1), -0.35, -0.12  # LR* in 4e-3 ... 7e-3
E, A, A_EXP = 2.5, 1.5, 0.3
CURVATURE = 0.08  # loss penalty per (ln LR - ln LR*)^2


def _loss(run: sc.Run) -> float:
  lr_star = math.exp(LOG_C0 + ALPHA * math.log(run.params) + BETA * math.log(run.trained_tokens))
  tuned = E + A * (run.train_flops / 1e11) ** -A_EXP
  return tuned + CURVATURE * math.log(run.lr / lr_star) ** 2


def _write(root, run: sc.Run, loss: float) -> None:
  path = os.path.join(root, run.name)
  os.makedirs(path)
  header = {"kind": "header", "total_steps": run.total_steps, "steps_per_chinchilla": 240}
  record = {"kind": "eval", "step": run.total_steps, "tokens": run.trained_tokens}
  record["loss"] = {"raw": loss}
  with open(os.path.join(path, "eval.jsonl"), "w") as f:
    f.write(json.dumps(header) + "\n" + json.dumps(record) + "\n")


def test_grid_names_branches_and_shared_runs():
  runs = laws_lm.grid()
  names = [r.name for r in runs]
  assert len(names) == len(set(names))
  # Half-octave LR grid; the schedule runs' peak is on it, so the 8- and 4-unit cosines of the
  # schedule comparison are the LR sweep's own runs.
  assert np.allclose(np.diff(np.log2(laws_lm.LRS)), 0.5, atol=1e-3)
  assert laws_lm.SCHEDULE_LR in laws_lm.LRS
  assert laws_lm._cosine_name(32, 8.0, 1e-2) in names
  # WSD branches restore the constant run at 80% / 90% of 1920 steps and decay over the rest.
  sparse = [r for r in runs if r.name not in laws_lm.dense_names()]
  parent = next(r for r in sparse if r.method == "constant")
  branches = {r.name: r for r in sparse if r.method == "wsd"}
  assert {r.start_step for r in branches.values()} == {1536, 1728}
  assert all(r.parent == parent.name and r.total_steps == 1920 for r in branches.values())
  assert all(names.index(r.name) > names.index(parent.name) for r in branches.values())
  for r in branches.values():
    overrides = dict(r.overrides)
    assert overrides["init_from"] == parent.name
    assert float(overrides["opt.wsd_decay_fraction"]) * 1920 == 1920 - r.start_step


def test_lr_law_and_equivalent_compute_recover_a_known_truth(tmp_path):
  runs = laws_lm.grid()
  for r in runs:
    if r.method == "cosine":
      _write(str(tmp_path), r, _loss(r))
  optima = laws_lm_lr.lr_optima(str(tmp_path), runs)
  assert set(optima) == {(32, h) for h in (0.5, 1, 2, 4, 8)} | {(48, h) for h in (1, 2, 4)}
  rows = laws_lm_lr.lr_law(optima, str(tmp_path))
  held = next(r for r in rows if r["role"] == "held-out")
  assert (held["width"], held["horizon"]) == laws_lm.HELD_OUT
  # The loss is exactly quadratic in ln LR: every optimum and the law are exact.
  assert abs(held["error_octaves"]) < 1e-3
  for r in rows:
    truth = LOG_C0 + ALPHA * math.log(r["n"]) + BETA * math.log(r["d"])
    assert math.log(float(r["lr_opt"])) == pytest.approx(truth, abs=1e-3)
  (eq,) = laws_lm_lr.equivalent_compute(optima, str(tmp_path))
  assert abs(eq["rel_err"]) < 0.01
  assert float(eq["true_compute"]) == pytest.approx(
    next(r for r in runs if r.name == laws_lm._cosine_name(32, 8.0, 1e-2)).train_flops, rel=1e-3
  )
  assert (tmp_path / "lr_law.csv").exists() and (tmp_path / "lr_law.png").stat().st_size > 5000


def _log_train(root, run: sc.Run, lrs, first: int, last: int) -> list[int]:
  """A train log as the trainer writes it: the LR of update k at step k, every 50 steps."""
  path = os.path.join(root, run.name)
  os.makedirs(path, exist_ok=True)
  steps = sorted({first, last, *range(50 * -(-first // 50), last + 1, 50)})
  with open(os.path.join(path, "train.jsonl"), "w") as f:
    for k in steps:
      f.write(json.dumps({"step": k, "lr": float(lrs[k - 1]), "loss": 3.0}) + "\n")
  return steps


def test_curve_has_the_exact_lrs_of_the_schedule(tmp_path):
  runs = {r.name: r for r in laws_lm.grid()}
  branch = runs["w32_wsd10_1-sqrt_h8"]
  parent = runs[branch.parent]
  wsd = anytime.wsd(1e-2, 1920, decay_steps=192, shape="sqrt", final_value=1e-3, warmup_steps=50)
  truth = np.asarray(wsd(np.arange(1920)), dtype=np.float64)
  constant = np.where(np.arange(1920) < 1728, truth, 1e-2)
  for run, steps in ((parent, (100, 500, 1000, 1500)), (branch, (1800, 1920))):
    os.makedirs(tmp_path / run.name)
    with open(tmp_path / run.name / "eval.jsonl", "w") as f:
      for k in steps:
        f.write(json.dumps({"kind": "eval", "step": k, "loss": {"raw": 3.0}}) + "\n")
  logged = [k for k in _log_train(str(tmp_path), parent, constant, 1, 1920) if k <= 1728]
  logged += _log_train(str(tmp_path), branch, truth, 1729, 1920)
  c = laws_lm.curve(str(tmp_path), branch, runs)
  np.testing.assert_allclose(c.lrs, truth, rtol=1e-6)
  # interpolating the log instead misses the cooldown's start by 5% of the peak and more
  naive = np.interp(np.arange(1, 1921), logged, truth[np.array(logged) - 1])
  assert np.max(np.abs(naive - truth)) > 0.05 * 1e-2
  # a log that disagrees with the run's config is an error
  _log_train(str(tmp_path), branch, truth * 1.01, 1729, 1920)
  with pytest.raises(ValueError, match="differs from its schedule"):
    laws_lm.curve(str(tmp_path), branch, runs)


def test_seeds_are_averaged_per_lr_and_their_noise_reported(tmp_path):
  runs = laws_lm.grid(seeds=(0, 1))
  sweeps = [r for r in runs if r.method == "cosine" and r.name not in laws_lm.dense_names()]
  seed1 = [r for r in sweeps if r.seed == 1]
  assert seed1 and all(r.name.endswith("_s1") for r in seed1)
  assert len(seed1) == len(sweeps) // 2
  with pytest.raises(ValueError, match="seeds="):
    laws_lm.grid(seeds=(0, 0))
  # seed 1 = the truth +- 0.01 alternating over the LRs; seed 0 = the truth -+ 0.01: the mean
  # over the seeds is the truth, so the LR law is exact again
  for r in runs:
    if r.method == "cosine":
      k = laws_lm.LRS.index(r.lr)
      _write(str(tmp_path), r, _loss(r) + 0.01 * (-1) ** (k + r.seed))
  optima = laws_lm_lr.lr_optima(str(tmp_path), runs)
  held = next(r for r in laws_lm_lr.lr_law(optima, str(tmp_path)) if r["role"] == "held-out")
  assert abs(held["error_octaves"]) < 1e-3
  noise = laws_lm_lr.seed_noise(str(tmp_path), runs, str(tmp_path))
  assert len(noise) == len(optima)
  n = len(laws_lm.LRS)
  want = np.std([0.02 * (-1) ** k for k in range(n)], ddof=1)
  assert all(r["std_diff"] == pytest.approx(want, abs=1e-5) for r in noise)
  # two runs 0.02 apart at every LR: one run's std is 0.02 / sqrt(2)
  assert all(r["pooled_run_std"] == pytest.approx(0.02 / math.sqrt(2), abs=1e-5) for r in noise)
  assert all(r["seeds_at_every_lr"] == "0,1" for r in noise)


def test_dense_schedule_set_per_seed_and_its_seed_mean(tmp_path):
  runs = {r.name: r for r in laws_lm.grid()}
  labels = laws_lm.SCHEDULE_LABELS
  for seed in laws_lm.DENSE_SEEDS:
    dense = {label: runs[laws_lm.dense_name(label, seed)] for label in labels}
    assert all(r.seed == seed for r in dense.values())
    assert all(dict(r.overrides)["eval_every"] == "24" for r in dense.values())
    # each seed's WSD branches restore that seed's own constant run
    for label, *_ in laws_lm.COOLDOWNS:
      assert dense[label].parent == dense["constant"].name
    assert dense["cosine_h4"].total_steps == 960 and dense["cosine_h8"].total_steps == 1920
  # The sparse LR-sweep run at the schedule LR is not replaced by its dense copy.
  assert "eval_every" not in dict(runs[laws_lm._cosine_name(32, 8.0, 1e-2)].overrides)

  # Logs: seed s has loss 3 + 0.01 s at every step, so the seed mean is 3.01 everywhere.
  steps = list(range(24, 1921, 24))
  for name, run in runs.items():
    if not name.startswith("w32_e24_"):
      continue
    cfg = sc.lm_config(run.lm_arg, run.overrides)
    lrs = np.asarray(optim.make_schedule(cfg.opt, run.total_steps)(np.arange(run.total_steps)))
    first = run.start_step + 1
    _log_train(str(tmp_path), run, lrs, first, run.total_steps)
    with open(tmp_path / name / "eval.jsonl", "w") as f:
      for k in (k for k in steps if first <= k <= run.total_steps):
        record = {"kind": "eval", "step": k, "loss": {"raw": 3.0 + 0.01 * run.seed}}
        f.write(json.dumps(record) + "\n")
  all_runs = list(runs.values())
  mean = laws_lm.schedule_curves(str(tmp_path), all_runs, 100, evals="dense-mean")
  seed0 = laws_lm.schedule_curves(str(tmp_path), all_runs, 100, evals="dense")
  assert set(mean) == set(labels)
  for label in labels:
    np.testing.assert_allclose(mean[label].loss, 3.01)
    np.testing.assert_allclose(seed0[label].loss, 3.0)
    assert (
      mean[label].steps[0] >= 100
      and mean[label].steps[-1] == runs[laws_lm.dense_name(label, 0)].total_steps
    )
  # a branch's curve starts with its parent's evals before the branch point
  assert mean["wsd10_linear"].steps.size == len([k for k in steps if k >= 100])
  with pytest.raises(ValueError, match="evals="):
    laws_lm.schedule_curves(str(tmp_path), all_runs, 100, evals="dense-median")


def test_windowed_optimum_ignores_a_near_divergent_top_lr(tmp_path):
  runs = laws_lm.grid()
  top = max(laws_lm.LRS)
  for r in runs:
    if r.method == "cosine" and not r.name.startswith("w32_e24_"):
      _write(str(tmp_path), r, _loss(r) + (0.5 if r.lr == top else 0.0))
  full = laws_lm_lr.lr_optima(str(tmp_path), runs)
  windowed = laws_lm_lr.lr_optima(str(tmp_path), runs, window=laws_lm.LR_WINDOW)
  key = laws_lm.HELD_OUT
  truth = windowed[key][2]  # a run of the held-out sweep
  lr_star = math.exp(
    LOG_C0 + ALPHA * math.log(truth.params) + BETA * math.log(truth.trained_tokens)
  )
  # Inside the window the loss is exactly quadratic; the full grid sees the blown-up top LR.
  assert len(windowed[key][1]) == laws_lm.LR_WINDOW
  assert abs(math.log2(windowed[key][0].lr / lr_star)) < 1e-3
  assert abs(math.log2(full[key][0].lr / lr_star)) > 0.1
  with pytest.raises(ValueError, match="window=3"):
    laws_lm_lr.lr_optima(str(tmp_path), runs, window=3)
