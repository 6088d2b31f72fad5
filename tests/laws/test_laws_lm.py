"""experiments/laws_lm.py: the grid, and the LR-law / equivalent-compute checks on synthetic logs
generated from known laws (the real runs' figures are in docs/laws.md)."""

import json
import math
import os

import numpy as np
import pytest

from experiments import laws_lm
from experiments import sweep_common as sc

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
  parent = next(r for r in runs if r.method == "constant")
  branches = {r.name: r for r in runs if r.method == "wsd"}
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
  optima = laws_lm.lr_optima(str(tmp_path), runs)
  assert set(optima) == {(32, h) for h in (0.5, 1, 2, 4, 8)} | {(48, h) for h in (1, 2, 4)}
  rows = laws_lm.lr_law(optima, str(tmp_path))
  held = next(r for r in rows if r["role"] == "held-out")
  assert (held["width"], held["horizon"]) == laws_lm.HELD_OUT
  # The loss is exactly quadratic in ln LR: every optimum and the law are exact.
  assert abs(held["error_octaves"]) < 1e-3
  for r in rows:
    truth = LOG_C0 + ALPHA * math.log(r["n"]) + BETA * math.log(r["d"])
    assert math.log(float(r["lr_opt"])) == pytest.approx(truth, abs=1e-3)
  (eq,) = laws_lm.equivalent_compute(optima, str(tmp_path))
  assert abs(eq["rel_err"]) < 0.01
  assert float(eq["true_compute"]) == pytest.approx(
    next(r for r in runs if r.name == laws_lm._cosine_name(32, 8.0, 1e-2)).train_flops, rel=1e-3
  )
  assert (tmp_path / "lr_law.csv").exists() and (tmp_path / "lr_law.png").stat().st_size > 5000
