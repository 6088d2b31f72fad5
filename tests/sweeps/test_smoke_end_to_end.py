"""Launcher -> real trainer -> report on the `smoke` sweep (tiny preset, synthetic data)."""

import csv
import os
import sys

import pytest

from anytime.sweeps import common as sc
from anytime.sweeps import launch as sweep
from anytime.sweeps import report


@pytest.mark.slow
def test_smoke_sweep_end_to_end(tmp_path):
  root, out = str(tmp_path / "runs"), str(tmp_path / "report")
  s = sc.load_sweep("smoke")
  runs = sc.expand(s)
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device per run
  outcome = sweep.run_local(runs, root, jobs=2, python=sys.executable, env=env, log=print)
  assert not outcome["failed"], outcome
  assert len(outcome["done"]) == 10 and not outcome["unsupported"]
  sf = sc.read_eval_log(os.path.join(root, "schedule_free_h2_lr0.003_b0.95_s0"))
  assert sf.done and all("schedule_free" in e["loss"] for e in sf.evals.values())
  # The WSD branch continued the constant run: its first logged step is after the branch.
  wsd = sc.read_eval_log(os.path.join(root, "wsd_h2_lr0.003_b0.95_s0"))
  assert min(wsd.evals) > 36 and wsd.done
  rows, text = report.report(s, runs, root, out)
  assert [r.horizon for r in rows] == [1, 2]
  for r in rows:
    assert r.cosine is not None and 0 < r.cosine.loss < 6  # log(256) = 5.5 nats at chance
    assert r.delta("constant+EMA25") is not None and r.delta("WSD (last iterate)") is not None
  with open(os.path.join(out, "table.csv")) as f:
    assert len(list(csv.DictReader(f))) == 2 * (1 + len(report.variants(s)))
  assert "| cosine | lr 0.003 b2 0.95 | raw | 1x | 2 |" in text  # the seed repeat
  again = sweep.run_local(runs, root, jobs=2, python=sys.executable, env=env, log=print)
  assert len(again["skipped"]) == len(runs) and not again["done"]  # all finished: none reruns
