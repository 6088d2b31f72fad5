"""Faults on the resume path (docs/reliability.md): a changed config, a second trainer, a torn
log line, a non-finite evaluation. Each test fails on the trainer as it was before its fix."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from anytime.lm import checkpoint as checkpoint_lib
from anytime.lm import train
from anytime.lm import workdir as workdir_lib
from tests.lm import util

STEPS = 6


def _cfg(**overrides):
  return util.tiny_config(
    **{"mesh": (1, 1, 1), "horizon": STEPS, "checkpoint_every": 2, "keep_checkpoints": 3}
    | overrides
  )


@pytest.fixture(scope="module")
def base(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("base"))
  train.run(_cfg(), workdir, log=lambda _: None)
  return workdir


def _copy(base, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(base, workdir)
  return workdir


def _listing(workdir):
  return sorted(
    os.path.relpath(os.path.join(d, f), workdir) for d, _, fs in os.walk(workdir) for f in fs
  )


def test_resume_with_another_optimizer_layout_is_refused_and_moves_nothing(base, tmp_path):
  # Before: every checkpoint failed to restore, all went to checkpoints.corrupt, step 0 again.
  workdir = _copy(base, tmp_path)
  before = _listing(workdir)
  with pytest.raises(
    workdir_lib.ResumeConfigError, match=r"opt.averages_dtype: saved 'float32', given 'bfloat16'"
  ):
    train.run(_cfg(**{"opt.averages_dtype": "bfloat16"}), workdir, log=lambda _: None)
  assert _listing(workdir) == before
  assert not os.path.exists(os.path.join(workdir, "checkpoints.corrupt"))


def test_resume_may_change_eval_and_logging_and_extend_a_constant_run(base, tmp_path):
  workdir = _copy(base, tmp_path)
  logs = []
  out = train.run(_cfg(horizon=STEPS + 2, eval_points=4, log_every=1), workdir, log=logs.append)
  assert out["step"] == STEPS + 2 and any(f"at step {STEPS}" in m for m in logs)


_HOLD = """
import sys, time
from anytime.lm import workdir
workdir.WorkdirLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_trainer_on_a_workdir_is_refused_naming_the_holder(base, tmp_path):
  # Before: both ran, interleaving checkpoints and logs.
  workdir = _copy(base, tmp_path)
  holder = subprocess.Popen(
    [sys.executable, "-c", _HOLD, workdir], stdout=subprocess.PIPE, text=True
  )
  try:
    assert holder.stdout.readline().strip() == "held"
    before = _listing(workdir)
    with pytest.raises(workdir_lib.WorkdirLockedError, match=rf"pid {holder.pid}"):
      train.run(_cfg(horizon=STEPS + 2), workdir, log=lambda _: None)
    assert _listing(workdir) == before
    # The command line says it in one line, exit 2.
    proc = subprocess.run(
      [
        sys.executable,
        "-m",
        "anytime.lm",
        "--config=configs/lm.py:model=tiny,data=synthetic,unit=steps,horizon=8",
        f"--workdir={workdir}",
      ],
      capture_output=True,
      text=True,
      timeout=300,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: workdir") and f"pid {holder.pid}" in lines[0]
  finally:
    holder.kill()
    holder.wait()
  # The holder is gone: its lock is stale and the next start takes it.
  logs = []
  train.run(_cfg(horizon=STEPS + 1), workdir, log=logs.append)
  assert any("took over the lock" in m and str(holder.pid) in m for m in logs)


def test_a_torn_log_line_loses_no_record_and_is_set_aside(base, tmp_path):
  # Before: the resume's truncation stopped reading at the torn line and dropped the rest.
  workdir = _copy(base, tmp_path)
  path = os.path.join(workdir, "eval.jsonl")
  with open(path) as f:
    lines = f.readlines()
  steps = [json.loads(line).get("step") for line in lines]
  torn_at = 2
  lines.insert(torn_at, '{"kind": "eval", "step": 3, "loss": {"ra\n')
  with open(path, "w") as f:
    f.writelines(lines)
  logs = []
  train.run(_cfg(horizon=STEPS + 1), workdir, log=logs.append)
  records = [json.loads(line) for line in Path(path).read_text().splitlines()]  # all parse
  kept_steps = [r.get("step") for r in records]
  # Every record of the first run at or before the resumed step is still there, in order.
  assert kept_steps[: len(steps)] == steps
  torn = Path(path + ".torn").read_text()
  assert torn == f'eval.jsonl:{torn_at + 1}: {{"kind": "eval", "step": 3, "loss": {{"ra\n'
  assert any(m.startswith("WARNING: eval.jsonl: 1 malformed line") for m in logs)


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_a_non_finite_eval_is_flagged_and_follows_the_nan_policy(tmp_path, monkeypatch, policy):
  # Before: a NaN evaluation was written to eval.jsonl as a plain number, silently.
  evaluate = train.Trainer.evaluate

  def nan_at_step_4(self, state, batches):
    losses = evaluate(self, state, batches)
    nan_at_step_4.calls += 1
    return {**losses, "raw": math.nan} if nan_at_step_4.calls == 2 else losses

  nan_at_step_4.calls = 0
  monkeypatch.setattr(train.Trainer, "evaluate", nan_at_step_4)
  workdir = str(tmp_path)
  cfg = _cfg(**({"opt.skip_nonfinite_updates": 3} if policy == "skip" else {}))
  _, plan, _ = train.validate(cfg)
  second_eval = sorted(plan.eval_steps)[1]
  if policy == "stop":
    with pytest.raises(
      train.NonFiniteLossError,
      match=rf"eval loss not finite at step "
      rf"{second_eval} for raw",
    ):
      train.run(cfg, workdir, log=lambda _: None)
    ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
    assert ckpt.latest_step() < second_eval or second_eval not in ckpt.all_steps()
  else:
    out = train.run(cfg, workdir, log=lambda _: None)
    assert out["step"] == STEPS
  evals = [json.loads(x) for x in (tmp_path / "eval.jsonl").read_text().splitlines()]
  evals = [r for r in evals if r.get("kind") == "eval"]
  flagged = [r for r in evals if "nonfinite" in r]
  assert [(r["step"], r["nonfinite"]) for r in flagged] == [(second_eval, ["raw"])]
  assert all(math.isfinite(v) for r in evals if r not in flagged for v in r["loss"].values())
