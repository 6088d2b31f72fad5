"""The trainer's command line: --help answers at once, and each mistake is one line, exit code 2,
no traceback, nothing written, before any start-up (anytime/lm/usage.py, anytime/lm/__main__.py).

The subprocess cases stop before JAX starts a backend (about a second each); the checks they
rely on are also tested in-process, where the messages' wording is pinned down.
"""

import os
import subprocess
import sys

import pytest

from anytime.configs import lm as lm_config
from anytime.lm import usage

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = "--config=configs/lm.py:model=tiny,data=synthetic,unit=steps,horizon=3"


def _run(args, cwd):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  return subprocess.run(
    [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
  )


@pytest.mark.parametrize(
  "module, expect",
  [("anytime.lm", "--config.FIELD=VALUE"), ("anytime.lm.prepare", "--input_dir")],
)
def test_help_exits_0_and_runs_nothing(tmp_path, module, expect):
  out = _run(["-m", module, "--help"], cwd=tmp_path)
  assert out.returncode == 0, out.stderr
  assert expect in out.stdout and out.stderr == ""
  assert os.listdir(tmp_path) == []


MISTAKES = {
  "unknown field": (
    [TINY, "--config.opt.nonexistent=1", "--workdir=W"],
    "config.opt has no field 'nonexistent'",
  ),
  "missing config file": (["--config=nofile.py", "--workdir=W"], "file 'nofile.py' not found"),
  "bad preset": (["--config=configs/lm.py:model=huge", "--workdir=W"], "model='huge' is not a"),
  "bad config key": (["--config=configs/lm.py:modle=tiny", "--workdir=W"], "keys ['modle'] unkn"),
  "bad value type": ([TINY, "--config.opt.lr=abc", "--workdir=W"], "--config.opt.lr=abc"),
  "workdir is a file": ([TINY, "--workdir=afile"], "--workdir=afile: it is a file"),
  "workdir under a file": ([TINY, "--workdir=afile/W"], "afile' is a file, so the directory"),
  "bad wandb mode": ([TINY, "--config.wandb.mode=bad", "--workdir=W"], "wandb.mode='bad' is inv"),
  "no config": (["--workdir=W"], "--config=configs/lm.py:ARGS is required"),
  # Read by the default --cpu_devices rule before train.validate sees the config.
  "batch vs accum": (
    [TINY, "--config.batch_size=7", "--config.grad_accum=2", "--workdir=W"],
    "batch_size=7 is invalid: must be divisible by grad_accum=2",
  ),
  "bad eval batch": ([TINY, "--config.eval_batch_size=-1", "--workdir=W"], "eval_batch_size=-1"),
}


@pytest.fixture(scope="module")
def mistakes(tmp_path_factory):
  """{case: (CompletedProcess-like, its cwd)}: every case's command, all started at once."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  started = {}
  for case, (args, _) in MISTAKES.items():
    cwd = tmp_path_factory.mktemp("cwd")
    (cwd / "afile").write_text("not a directory")
    command = [sys.executable, "-m", "anytime.lm", *args]
    started[case] = (
      subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
      ),
      cwd,
    )
  done = {}
  for case, (proc, cwd) in started.items():
    stdout, stderr = proc.communicate(timeout=180)
    done[case] = (proc.returncode, stdout, stderr, cwd)
  return done


@pytest.mark.parametrize("case", list(MISTAKES))
def test_a_mistake_is_one_line_exit_2_and_writes_nothing(mistakes, case):
  code, stdout, stderr, cwd = mistakes[case]
  assert code == 2, stderr
  assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
  assert MISTAKES[case][1] in stderr and "Traceback" not in stderr
  assert stdout == ""
  assert sorted(os.listdir(cwd)) == ["afile"]  # no workdir, no stray files


def test_an_unknown_field_names_the_nearest_and_every_field_of_its_group():
  cfg = lm_config.get_config("model=tiny")
  with pytest.raises(ValueError) as e:
    usage.check_override(cfg, "opt.warmup_step", "--config.opt.warmup_step=3")
  msg = str(e.value)
  assert msg.startswith("--config.opt.warmup_step=3: config.opt has no field 'warmup_step'")
  assert "did you mean 'warmup_steps'" in msg and "lr, lr_multipliers" in msg
  with pytest.raises(ValueError, match=r"config has no field 'optt'; did you mean 'opt'"):
    usage.check_override(cfg, "optt.lr", "--config.optt.lr=1")
  with pytest.raises(ValueError, match=r"config.model is a group, not a value"):
    usage.check_override(cfg, "model", "--config.model=1")
  usage.check_override(cfg, "wandb.project", "--config.wandb.project=p")  # a field: accepted


def test_check_config_reads_the_flags_as_absl_does(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # configs/lm.py is then the shipped file
  argv = ["prog", "--config", "configs/lm.py:model=tiny", "--noconfig.model.remat"]
  usage.check_config(argv)  # a boolean's --no form names a real field: accepted
  assert usage.flag_value(argv, "config") == "configs/lm.py:model=tiny"
  assert usage.wants_help(["prog", "--", "--help"]) is None  # after --: not a flag
  assert usage.wants_help(["prog", TINY, "-h"]) == "-h"
  with pytest.raises(ValueError, match="given without --config"):
    usage.check_config(["prog", "--config.opt.lr=1"])
  (tmp_path / "broken.py").write_text("def get_config(:\n")
  with pytest.raises(ValueError, match=r"--config=broken.py: 'broken.py' cannot be loaded: Syn"):
    usage.check_config(["prog", "--config=broken.py"])
  (tmp_path / "empty.py").write_text("X = 1\n")
  with pytest.raises(ValueError, match=r"defines no get_config\(\)"):
    usage.check_config(["prog", "--config=empty.py"])


def test_check_workdir_makes_nothing_and_refuses_what_cannot_be_written(tmp_path, monkeypatch):
  usage.check_workdir(str(tmp_path / "a" / "b"))  # can be made: accepted, not made
  assert os.listdir(tmp_path) == []
  usage.check_workdir(str(tmp_path))  # an existing writable directory
  # A read-only parent (root can write anyway, so the permission answer is what is faked).
  monkeypatch.setattr(usage.os, "access", lambda path, mode: path != str(tmp_path))
  with pytest.raises(ValueError, match=r"--workdir=.*/new: its parent '.*' is not writable"):
    usage.check_workdir(str(tmp_path / "new"))
  with pytest.raises(ValueError, match=r"--workdir=.*: the directory is not writable"):
    usage.check_workdir(str(tmp_path))
