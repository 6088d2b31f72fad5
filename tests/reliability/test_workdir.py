"""One run per workdir (anytime/lm/workdir.py): the lock and the resume-config check."""

import json
import os
import signal
import subprocess
import sys

import pytest

from anytime.configs import lm as lm_config
from anytime.lm import workdir as wd

_HOLD = """
import sys, time
from anytime.lm import workdir
lock = workdir.WorkdirLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)
"""


def _holder(tmp_path):
  proc = subprocess.Popen(
    [sys.executable, "-c", _HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
  )
  assert proc.stdout.readline().strip() == "held"
  return proc


def test_second_holder_is_refused_naming_the_first(tmp_path):
  proc = _holder(tmp_path)
  try:
    with pytest.raises(wd.WorkdirLockedError, match=rf"pid {proc.pid}, started 20"):
      wd.WorkdirLock(str(tmp_path)).acquire()
  finally:
    proc.kill()
    proc.wait()


def test_a_killed_holder_leaves_a_stale_lock_that_is_taken_and_reported(tmp_path):
  proc = _holder(tmp_path)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  # The file still names the dead holder; the kernel has dropped its flock.
  assert json.loads((tmp_path / wd.LOCK_NAME).read_text())["pid"] == proc.pid
  with wd.WorkdirLock(str(tmp_path)) as lock:
    assert lock.stale_holder["pid"] == proc.pid
    assert json.loads((tmp_path / wd.LOCK_NAME).read_text())["pid"] == os.getpid()
  # A clean release leaves no holder behind, and the lock is free again.
  assert (tmp_path / wd.LOCK_NAME).read_text() == ""
  with wd.WorkdirLock(str(tmp_path)) as lock:
    assert lock.stale_holder is None


def test_lock_is_released_on_an_exception(tmp_path):
  with pytest.raises(RuntimeError), wd.WorkdirLock(str(tmp_path)):
    raise RuntimeError("boom")
  with wd.WorkdirLock(str(tmp_path)) as lock:  # free again: a held lock would raise here
    assert lock.stale_holder is None


def _cfg(arg="model=tiny,data=synthetic,unit=steps,horizon=10"):
  return lm_config.get_config(arg).to_dict()


def test_config_differences_name_the_fields_that_shape_the_run():
  saved = json.loads(json.dumps(_cfg(), default=str))  # as config.json holds it: lists
  given = _cfg()
  assert wd.config_differences(saved, given) == []
  given["opt"]["averages_dtype"] = "bfloat16"
  given["seed"] = 3
  assert wd.config_differences(saved, given) == [
    ("opt.averages_dtype", "float32", "bfloat16"),
    ("seed", 0, 3),
  ]


def test_fields_a_resume_may_change_and_the_horizon_rule():
  saved = _cfg()
  given = _cfg()
  given.update(eval_points=7, log_every=3, checkpoint_every=9, mesh=(1, -1, 1))
  given["wandb"]["project"] = "p"
  given["model"]["remat"] = True
  assert wd.config_differences(saved, given) == []
  # Extending a constant run is allowed; a cosine run's every LR depends on its horizon.
  longer = _cfg("model=tiny,data=synthetic,unit=steps,horizon=20")
  assert wd.config_differences(saved, longer) == []
  cos = _cfg("model=tiny,data=synthetic,unit=steps,horizon=10,schedule=cosine")
  cos_longer = _cfg("model=tiny,data=synthetic,unit=steps,horizon=20,schedule=cosine")
  assert wd.config_differences(cos, cos_longer) == [("horizon", 10.0, 20.0)]
  # A field one side lacks (a workdir of another code version) is a note, not a refusal.
  older = _cfg()
  del older["model"]["remat"]
  assert wd.config_differences(older, given) == []
  assert wd.one_sided_fields(older, given) == (["model.remat"], [])
  # Switching schedule is never a resume, even between horizon-free ones.
  inv = _cfg("model=tiny,data=synthetic,unit=steps,horizon=20,schedule=inverse_sqrt")
  assert [d[0] for d in wd.config_differences(saved, inv)] == ["horizon", "opt.schedule"]


def test_check_resume_config_reads_the_workdir(tmp_path):
  wd.check_resume_config(str(tmp_path), _cfg())  # fresh workdir: nothing to compare
  (tmp_path / "config.json").write_text(json.dumps(_cfg(), default=str))
  wd.check_resume_config(str(tmp_path), _cfg())
  given = _cfg()
  given["opt"]["averages"] = ["polyak"]
  with pytest.raises(wd.ResumeConfigError, match=r"opt.averages: saved \[.*'pema6.25'"):
    wd.check_resume_config(str(tmp_path), given)
