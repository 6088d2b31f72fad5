"""Two processes on localhost (gloo CPU collectives) train exactly like one process."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from anytime.lm import metrics as metrics_lib

_CACHE = ""  # set per module by the fixture below
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 6


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _command(workdir, extra=()):
  return [
    sys.executable,
    "-m",
    "anytime.lm",
    f"--config=configs/lm.py:model=tiny,data=synthetic,unit=steps,horizon={STEPS}",
    f"--workdir={workdir}",
    "--config.log_every=1",
    "--config.eval_points=2",
    "--config.eval_batches=2",
    "--config.opt.warmup_steps=2",
    "--config.checkpoint_every=0",
    "--config.peak_flops=1e9",
    *extra,
  ]


@pytest.fixture(autouse=True, scope="module")
def _compilation_cache(tmp_path_factory):
  global _CACHE
  _CACHE = str(tmp_path_factory.mktemp("jax-cache"))


def _env(devices):
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env["JAX_PLATFORMS"] = "cpu"
  # Identical programs in the subprocesses compile once (JAX's persistent cache).
  env["JAX_COMPILATION_CACHE_DIR"] = _CACHE
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  return env


def _losses(workdir):
  train = metrics_lib.read_jsonl(os.path.join(workdir, "train.jsonl"))
  evals = [r for r in metrics_lib.read_jsonl(os.path.join(workdir, "eval.jsonl")) if "loss" in r]
  return np.array([r["loss"] for r in train]), evals[-1]["loss"]


@pytest.mark.slow  # two trainer processes through jax.distributed (~1 min)
def test_two_processes_match_one_process(tmp_path):
  single, multi = str(tmp_path / "single"), str(tmp_path / "multi")
  port = _free_port()
  procs = [
    subprocess.Popen(
      _command(
        multi, [f"--coordinator=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"]
      ),
      cwd=ROOT,
      env=_env(1),
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(2)
  ]
  # Meanwhile, the same run in one process with the same 2-device mesh.
  one = subprocess.run(_command(single), cwd=ROOT, env=_env(2), capture_output=True, text=True)
  assert one.returncode == 0, one.stderr[-3000:]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs, strict=True):
    assert p.returncode == 0, err[-3000:]
  assert "2 process(es)" in outs[0][0] and "over 2 cpu device(s)" in outs[0][0]
  losses_1, eval_1 = _losses(single)
  losses_2, eval_2 = _losses(multi)
  assert len(losses_1) == len(losses_2) == STEPS
  np.testing.assert_allclose(losses_2, losses_1, rtol=0, atol=1e-5)
  for name in eval_1:
    assert abs(eval_1[name] - eval_2[name]) < 1e-5


def _slurm_job_id() -> int:
  """A job id whose derived coordinator port (JAX: 61440 + id % 4096) is free on localhost."""
  for job_id in range(1000, 5096):
    with socket.socket() as s:
      try:
        s.bind(("127.0.0.1", 61440 + job_id % 4096))
      except OSError:
        continue
    return job_id
  raise RuntimeError("no free port in 61440..65535")


@pytest.mark.slow
def test_slurm_recipe_distributed_flag_matches_one_process(tmp_path):
  """docs/launch.md's SLURM recipe: `srun python -m anytime.lm --distributed ...` with one task
  per node. Here two tasks on localhost with the variables srun sets; jax.distributed.initialize()
  finds the coordinator, the process count and ids from them alone."""
  single, multi = str(tmp_path / "single"), str(tmp_path / "multi")
  job_id = _slurm_job_id()
  procs = []
  for i in range(2):
    env = _env(1)
    env.update(
      SLURM_JOB_ID=str(job_id), SLURM_STEP_NODELIST="localhost", SLURM_NTASKS="2",
      SLURM_PROCID=str(i), SLURM_LOCALID=str(i), SLURM_STEP_NUM_NODES="1",
    )  # fmt: skip
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(subprocess.Popen(_command(multi, ["--distributed"]), cwd=ROOT, env=env, **pipes))
  one = subprocess.run(_command(single), cwd=ROOT, env=_env(2), capture_output=True, text=True)
  assert one.returncode == 0, one.stderr[-3000:]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs, strict=True):
    assert p.returncode == 0, err[-3000:]
  assert "2 process(es)" in outs[0][0]
  losses_1, _ = _losses(single)
  losses_2, _ = _losses(multi)
  np.testing.assert_allclose(losses_2, losses_1, rtol=0, atol=1e-5)
