"""The accelerator path on paper: FLOPs, per-device memory and expected step time of 150m / 300m.

  python -m experiments.bench accelerator                       # 150m and 300m, 1 and 8 devices
  python -m experiments.bench accelerator --presets=150m --meshes=1,1,1
  python -m experiments.bench accelerator --meshes=1,1,1 --remat --grad_accum 16   # fit 1 device

For each preset at the paper's batch (configs/lm.py: 256 x 1024 tokens for 150m, 512 x 1024 for
300m; bfloat16 compute, float32 parameters, AdamW, the default five weight averages), the
trainer's train step is lowered and compiled for 8 fake CPU devices
(``--xla_force_host_platform_device_count=8``, set here before jax is imported) on each mesh,
and never executed. From the compiled program's ``memory_analysis()`` it prints per device:
arguments (parameters, optimizer state, averages, the batch shard), temporaries (activations and
gradients, as XLA:CPU's buffer assignment lays them out) and their sum, the peak a device must
hold (arguments alias the outputs: the state is donated). XLA:GPU schedules and fuses
differently, so these are estimates of the order of magnitude, not an H100 measurement.

The expected step time is tokens/step x FLOPs/token / (MFU x peak x devices), at a stated MFU
of a stated H100 peak (dense bf16, SXM: 989 TFLOP/s).
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import argparse
import time

import jax

from anytime import cli
from anytime.configs import lm as lm_config
from anytime.lm import model as model_lib
from anytime.lm import train

H100_BF16_PEAK = 989e12  # FLOP/s, dense bfloat16, H100 SXM
GIB = 2**30


def compiled_memory(
  preset: str, mesh: tuple[int, int, int], grad_accum: int = 1, remat: bool = False
) -> dict:
  """Per-device bytes of the compiled train step of ``preset`` on ``mesh`` (compile only).

  ``grad_accum`` > 1 compiles the step of one micro-batch (batch / grad_accum sequences);
  ``remat`` recomputes each block's activations in the backward pass.
  """
  cfg = lm_config.get_config(f"model={preset},unit=steps,horizon=100000")
  cfg.mesh = mesh
  cfg.grad_accum = grad_accum
  cfg.model.remat = remat
  cfg.peak_flops = 1.0
  mcfg, plan, mesh_shape = train.validate(cfg, check_data=False)
  trainer = train.Trainer(cfg, mcfg, plan, mesh_shape)
  start = time.perf_counter()
  mem = trainer.compile_train_step().memory_analysis()
  return {
    "batch": plan.micro_batch,
    "seq_len": mcfg.seq_len,
    "arguments": mem.argument_size_in_bytes,
    "outputs": mem.output_size_in_bytes,
    "aliased": mem.alias_size_in_bytes,
    "temporaries": mem.temp_size_in_bytes,
    "peak": mem.argument_size_in_bytes
    + mem.output_size_in_bytes
    - mem.alias_size_in_bytes
    + mem.temp_size_in_bytes,
    "compile_s": time.perf_counter() - start,
    "flops_per_token": model_lib.flops_per_token(mcfg),
    "params": model_lib.param_counts(mcfg),
  }


def step_seconds(tokens: int, flops_per_token: int, devices: int, mfu: float, peak: float) -> float:
  """Seconds per optimizer step at ``mfu`` of ``peak`` FLOP/s on each of ``devices``."""
  return tokens * flops_per_token / (mfu * peak * devices)


def _mesh(text: str, flag_value: str) -> tuple[int, int, int]:
  parts = text.split(",")
  ok = len(parts) == 3 and all(p.strip().isdigit() and int(p) >= 1 for p in parts)
  cli.require("--meshes", flag_value, ok, "';'-separated data,fsdp,tensor triples of ints >= 1")
  return tuple(int(p) for p in parts)


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--presets", default="150m,300m")
  ap.add_argument(
    "--meshes", default="1,1,1;8,1,1;1,8,1", help="(data, fsdp, tensor) meshes, ';'-separated"
  )
  ap.add_argument("--grad_accum", type=int, default=1, help="micro-batches per step")
  ap.add_argument("--remat", action="store_true", help="recompute block activations")
  ap.add_argument("--mfu", type=float, default=0.4, help="assumed model FLOP utilisation")
  ap.add_argument("--peak", type=float, default=H100_BF16_PEAK, help="per-device FLOP/s")
  args = ap.parse_args(argv)
  presets = cli.one_of("--presets", args.presets, list(lm_config.PRESETS))
  meshes = [_mesh(m, args.meshes) for m in args.meshes.split(";")]
  cli.at_least("--grad_accum", args.grad_accum, 1)
  cli.require("--mfu", args.mfu, 0 < args.mfu <= 1, "a fraction in (0, 1]")
  cli.positive("--peak", args.peak)
  print(f"{jax.device_count()} fake CPU devices; load average {os.getloadavg()}")
  print(f"step time at MFU {args.mfu:.0%} of {args.peak / 1e12:.0f} TFLOP/s per device")
  for preset in presets:
    for mesh in meshes:
      m = compiled_memory(preset, mesh, args.grad_accum, args.remat)
      devices = mesh[0] * mesh[1] * mesh[2]
      tokens = m["batch"] * args.grad_accum * m["seq_len"]  # per optimizer step
      seconds = step_seconds(tokens, m["flops_per_token"], devices, args.mfu, args.peak)
      print(
        f"{preset} mesh {mesh}: micro-batch {m['batch']} x {m['seq_len']}"
        f"{f' x {args.grad_accum} accumulated' if args.grad_accum > 1 else ''}"
        f"{', remat' if args.remat else ''}, "
        f"{m['params']['total'] / 1e6:.1f}M params, {m['flops_per_token'] / 1e9:.3f} GFLOP/token, "
        f"{tokens * m['flops_per_token'] / 1e15:.3f} PFLOP/step; per device: "
        f"arguments {m['arguments'] / GIB:.2f} GiB, temporaries {m['temporaries'] / GIB:.2f} GiB, "
        f"peak {m['peak'] / GIB:.2f} GiB; expected step {seconds:.3f} s on {devices} device(s) "
        f"(compiled in {m['compile_s']:.0f} s)",
        flush=True,
      )
