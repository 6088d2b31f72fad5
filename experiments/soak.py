"""Kill-and-resume soak: SIGKILL a tiny training run at random moments, resume, compare bitwise.

    .venv/bin/python -m experiments.soak --kills=10 --steps=24 --seed=0 [--workdir=DIR]

A reference run trains uninterrupted. The soak run is started, SIGKILLed after a random
delay (so kills land in training, evaluation and asynchronous saves alike), restarted,
... ``--kills`` times, then run to the end. The final checkpoint's params, optimizer
state (averages included), data-iterator state and meta must be bitwise equal to the
reference's. Prints one line per kill and a summary; exits 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(workdir: str, steps: int) -> list[str]:
  return [
    sys.executable,
    "-m",
    "anytime.lm",
    f"--config=configs/lm.py:model=tiny,data=synthetic,unit=steps,horizon={steps}",
    f"--workdir={workdir}",
    "--config.checkpoint_every=2",
    "--config.keep_checkpoints=2",
    "--config.log_every=1",
    "--config.eval_points=6",
    "--config.eval_batches=2",
    "--config.opt.warmup_steps=3",
    "--config.peak_flops=1e9",
  ]


def _env(cache: str) -> dict:
  env = dict(os.environ)
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
  env["JAX_PLATFORMS"] = "cpu"
  env["JAX_COMPILATION_CACHE_DIR"] = cache
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  return env


def _logged_step(log: str) -> int:
  """The last step in a run's train.jsonl (0 if none)."""
  import json

  step = 0
  if os.path.exists(log):
    with open(log) as f:
      for line in f:
        with contextlib.suppress(ValueError, AttributeError):
          step = max(step, int(json.loads(line).get("step", 0)))
  return step


def _truncate_log(log: str, step: int) -> None:
  """Drops train.jsonl records after ``step`` (what the trainer does on resume)."""
  import json

  if not os.path.exists(log):
    return
  kept = []
  with open(log) as f:
    for line in f:
      with contextlib.suppress(ValueError, AttributeError):
        if int(json.loads(line).get("step", 0)) <= step:
          kept.append(line)
  with open(log, "w") as f:
    f.writelines(kept)


def _final(workdir: str, steps: int):
  import jax

  from anytime.configs import lm as lm_config
  from anytime.lm import checkpoint as checkpoint_lib
  from anytime.lm import train

  cfg = lm_config.get_config(f"model=tiny,data=synthetic,unit=steps,horizon={steps}")
  cfg.opt.warmup_steps = 3
  mcfg, plan, mesh_shape = train.validate(cfg)
  trainer = train.Trainer(cfg, mcfg, plan, mesh_shape)
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  if ckpt.latest_step() != steps:
    return None
  state, data_state, meta = ckpt.restore(steps, trainer.abstract, trainer.shardings)
  return jax.device_get(state), data_state, meta


def _equal(a, b) -> bool:
  import jax
  import numpy as np

  la, ta = jax.tree.flatten(a[0])
  lb, tb = jax.tree.flatten(b[0])
  same = ta == tb and all(
    x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(la, lb, strict=True)
  )
  return same and a[1] == b[1] and a[2] == b[2]


def soak(kills: int, steps: int, seed: int, workdir: str) -> dict:
  rng = random.Random(seed)
  cache = os.path.join(workdir, "jax-cache")
  env = _env(cache)
  ref_dir, soak_dir = os.path.join(workdir, "reference"), os.path.join(workdir, "soak")
  subprocess.run(_command(ref_dir, steps), cwd=ROOT, env=env, check=True, capture_output=True)
  killed = finished_early = 0
  log = os.path.join(soak_dir, "train.jsonl")
  for i in range(kills):
    # Kill once the run has logged a random step ahead of where it resumes, plus a random
    # fraction of a step (so kills land in training, evaluation and async saves).
    ckpt_dir = os.path.join(soak_dir, "checkpoints")
    done = [int(n) for n in os.listdir(ckpt_dir) if n.isdigit()] if os.path.isdir(ckpt_dir) else []
    start = max(done, default=0)  # where the next start resumes
    _truncate_log(log, start)  # as the resumed run will, so the wait below sees fresh steps
    if start >= steps - 1:
      break
    target = rng.randint(start + 1, steps - 1)
    extra = rng.uniform(0.0, 0.3)
    proc = subprocess.Popen(
      _command(soak_dir, steps),
      cwd=ROOT,
      env=env,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and _logged_step(log) < target:
      time.sleep(0.005)
    time.sleep(extra)
    if proc.poll() is None:
      proc.send_signal(signal.SIGKILL)
      killed += 1
    else:
      finished_early += 1
    proc.wait()
    ckpt_dir = os.path.join(soak_dir, "checkpoints")
    names = (
      sorted(os.listdir(ckpt_dir), key=lambda n: (len(n), n)) if os.path.isdir(ckpt_dir) else []
    )
    print(
      f"trial {i + 1}: resumed at step {start}, killed after step {_logged_step(log)} "
      f"(+{extra:.2f} s), rc {proc.returncode}, checkpoints {names}",
      flush=True,
    )
  out = subprocess.run(_command(soak_dir, steps), cwd=ROOT, env=env, capture_output=True, text=True)
  if out.returncode:
    print(out.stderr[-3000:])
  final, ref = (_final(d, steps) for d in (soak_dir, ref_dir))
  equal = out.returncode == 0 and final is not None and ref is not None and _equal(final, ref)
  summary = {
    "trials": killed + finished_early,
    "killed": killed,
    "finished_before_kill": finished_early,
    "resumes": killed + finished_early,
    "bitwise_equal": bool(equal),
  }
  print(summary, flush=True)
  return summary


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--kills", type=int, default=10)
  parser.add_argument("--steps", type=int, default=24)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--workdir", default="")
  args = parser.parse_args(argv)
  from anytime import cli

  cli.at_least("--kills", args.kills, 0)
  cli.at_least("--steps", args.steps, 6)  # two checkpoints and six evaluations must fit
  cli.at_least("--seed", args.seed, 0)
  if args.workdir:
    cli.output_dir("--workdir", args.workdir)
  workdir = args.workdir or tempfile.mkdtemp(prefix="soak-")
  summary = soak(args.kills, args.steps, args.seed, workdir)
  return 0 if summary["bitwise_equal"] else 1


if __name__ == "__main__":
  from anytime import cli

  cli.run(main)
