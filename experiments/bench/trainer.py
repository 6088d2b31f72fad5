"""Trainer throughput against this machine's matmul rate and against PyTorch, in one process.

  python -m experiments.bench trainer                        # nano and 15m, every variant
  python -m experiments.bench trainer --presets=nano --no_torch
  python -m experiments.bench trainer --profile=15m          # where the step's time goes

Prints, for each preset (vocabulary 4096, as the stdlib data; random tokens already on the device,
so only the step is timed; the data pipeline is experiments.bench.data):

* the roofline reference: the best dense fp32 matmul rate of this process (jnp.dot, a few sizes);
* the trainer's own jitted train step (anytime.lm.train.Trainer.train_step, the state donated)
  with its defaults (loss_chunk 1024, einsum attention, no averages, one XLA device per core
  when the batch splits over them, as ``python -m anytime.lm`` without ``--cpu_devices``), and
  the variants that measure one change each: the full-logits loss (loss_chunk 0, the step
  before the chunked loss head), the attention before head-major operands
  (experiments.bench.legacy), block-causal attention (model.causal_blocks 2), one device (the
  trainer's default before device per core), the "CPU setup" (the defaults + causal_blocks 2),
  and 1 and 5 weight averages (opt.averages) on the defaults and on the CPU setup;
* the same model in plain PyTorch (experiments.bench.torch_reference), eager and torch.compile'd,
  after asserting the same parameter count and, with the JAX model's weights copied in, the
  same loss (within 1e-4);
* tokens/s, model FLOP/s (anytime.lm.model.flops_per_token), MFU against the matmul rate, and
  our tokens/s over each row's (the trainer's step time over the row's: > 1 means the row is
  slower than the trainer; for the averages, 1 + the overhead).

Variants are timed in interleaved rounds (each round runs every variant's steps back to back);
the fastest step of each is kept, since on a shared machine noise only ever adds time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from anytime import cli
from anytime.configs import lm as lm_config
from anytime.lm import host_memory, train
from anytime.lm import model as model_lib
from anytime.lm import sharding as sharding_lib
from experiments.bench import legacy as bench_legacy
from experiments.bench import profile as bench_profile

VOCAB = 4096
DEFAULT_BATCH = {"nano": 32, "15m": 16, "5m": 32}
AVERAGES_5 = ("pema6.25", "pema12.5", "pema25", "pema50", "pema100")
CPU_SETUP = {"model.causal_blocks": 2}  # with mesh (devices, 1, 1): see cpu_setup()


def cpu_setup(**overrides) -> dict:
  """Overrides of the recommended CPU set-up: a data mesh over every device, block-causal."""
  return {"mesh": (jax.device_count(), 1, 1), **CPU_SETUP, **overrides}


def matmul_peak(sizes=(256, 512, 1024, 2048), reps: int = 10) -> dict[int, float]:
  """FLOP/s of a jitted fp32 n x n matmul per size (fastest of ``reps``)."""
  rates = {}
  f = jax.jit(jnp.dot)
  for n in sizes:
    a = jax.random.normal(jax.random.key(n), (n, n), jnp.float32)
    f(a, a).block_until_ready()
    best = np.inf
    for _ in range(reps):
      start = time.perf_counter()
      f(a, a).block_until_ready()
      best = min(best, time.perf_counter() - start)
    rates[n] = 2 * n**3 / best
  return rates


def bench_config(preset: str, batch: int, **overrides):
  """The preset's trainer config with ``overrides`` (dotted keys), synthetic data, no averages."""
  cfg = lm_config.get_config(f"model={preset},data=synthetic,unit=steps,horizon=1000,batch={batch}")
  cfg.data.vocab_size = VOCAB
  cfg.opt.averages = ()
  cfg.peak_flops = 1.0  # no start-up measurement: this script measures its own reference
  # The trainer's default device count (anytime.lm's --cpu_devices unset) on this process's
  # devices: one per core when the batch splits over them, else one.
  cores = sharding_lib.host_cores()
  auto = sharding_lib.auto_cpu_devices(cfg.mesh, (batch, batch), cfg.model.seq_len, cores)
  cfg.mesh = (min(auto, jax.device_count()) or 1, 1, 1)
  return lm_config.override(cfg, overrides)


def random_batch(mcfg, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
  tokens = np.random.default_rng(seed).integers(0, mcfg.vocab_size, (batch, mcfg.seq_len + 1))
  tokens = tokens.astype(np.int32)
  return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:]}


def jax_variant(
  cfg, compiler_options: dict | None = None, patch=contextlib.nullcontext, cost: bool = False
) -> tuple[Callable[[], None], dict]:
  """(run one train step, info) for the trainer's jitted step of ``cfg``.

  The step is traced and compiled inside ``patch()`` (experiments.bench.legacy: old code).
  """
  with patch():
    return _jax_variant(cfg, compiler_options, cost)


def _jax_variant(cfg, compiler_options: dict | None, cost: bool) -> tuple[Callable[[], None], dict]:
  mcfg, plan, mesh_shape = train.validate(cfg, check_data=False)
  trainer = train.Trainer(cfg, mcfg, plan, mesh_shape)
  batch = sharding_lib.global_batch(random_batch(mcfg, plan.micro_batch), trainer.mesh)
  state = trainer.init()
  step_fn = trainer.train_step
  if compiler_options:
    step_fn = trainer.train_step.lower(state, batch).compile(compiler_options=compiler_options)
  carry = {"state": state, "loss": None}

  def step():
    carry["state"], metrics = step_fn(carry["state"], batch)
    carry["loss"] = metrics["loss"]
    jax.block_until_ready(carry["state"])

  step()  # compile and warm up
  info = {
    "params": model_lib.param_counts(mcfg)["total"],
    "flops_per_token": model_lib.flops_per_token(mcfg),
    "tokens": plan.micro_batch * mcfg.seq_len,
    "first_loss": float(carry["loss"]),
    "compiles": trainer.train_step._cache_size(),
  }
  if cost:  # XLA's count of the step's memory traffic: deterministic, unlike the clock
    analysis = trainer.compile_train_step().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    info["bytes_accessed"] = float(analysis.get("bytes accessed", np.nan))
  return step, info


def torch_variant(cfg, compile: bool) -> tuple[Callable[[], None], dict]:
  """(run one train step, info) for experiments.bench.torch_reference on the same shapes."""
  import torch

  from experiments.bench import torch_reference

  mcfg = train.model_config(cfg)
  model, step_fn = torch_reference.make_train_step(
    mcfg, lr=cfg.opt.lr, b2=cfg.opt.b2, clip=cfg.opt.clip, compile=compile
  )
  b = random_batch(mcfg, cfg.batch_size)
  inputs, targets = (torch.from_numpy(b[k].astype(np.int64)) for k in ("inputs", "targets"))
  losses = []

  def step():
    losses.append(float(step_fn(inputs, targets)))  # float(): waits for the step

  step()
  step()  # torch.compile may recompile on the second call (its guards); keep it out of timing
  return step, {
    "params": torch_reference.param_count(model),
    "tokens": cfg.batch_size * mcfg.seq_len,
    "first_loss": losses[0],
    "threads": torch.get_num_threads(),
  }


def check_same_model(mcfg, batch: int) -> tuple[float, float]:
  """(JAX loss, PyTorch loss) of the same weights on the same batch; asserts they agree.

  The JAX model's initial parameters are copied into experiments.bench.torch_reference, so a
  difference in the architecture (not just in the init) shows up as a different loss.
  """
  import torch
  from flax import nnx

  from experiments.bench import torch_reference

  graphdef, params = nnx.split(model_lib.build(mcfg, seed=0), nnx.Param)
  params = nnx.to_pure_dict(params)
  b = random_batch(mcfg, batch, seed=1)
  jax_loss = float(model_lib.loss_fn(graphdef, params, b))
  model = torch_reference.Transformer(mcfg)
  torch_reference.load_jax_params(model, params)
  inputs, targets = (torch.from_numpy(b[k].astype(np.int64)) for k in ("inputs", "targets"))
  with torch.no_grad():
    torch_loss = float(torch_reference.loss(model, inputs, targets))
  assert abs(jax_loss - torch_loss) < 1e-4, (
    f"same weights, different loss: {jax_loss} vs {torch_loss}"
  )
  return jax_loss, torch_loss


def add_keep_freed_memory_flag(ap: argparse.ArgumentParser) -> None:
  ap.add_argument(
    "--keep_freed_memory",
    action=argparse.BooleanOptionalAction,
    default=True,
    help="as the trainer's flag (anytime/lm/host_memory.py); process-wide, so the PyTorch rows "
    "run with the same setting",
  )


def keep_freed_memory(enabled: bool) -> str:
  """Applies the trainer's malloc setting if ``enabled`` (before the first timed call: the
  trainer runs with it); returns the line that says which setting the benchmark runs with."""
  kept = enabled and host_memory.keep_freed_memory()
  return f"glibc malloc: {'freed memory kept (heap only, no trim)' if kept else 'defaults'}"


def time_rounds(
  variants: dict[str, Callable[[], None]],
  rounds: int,
  steps: int,
  cores: dict | None = None,
  faults: dict | None = None,
) -> dict:
  """Fastest single step of each variant over interleaved rounds of ``steps`` steps.

  A pause before each variant lets the previous one's worker threads (OpenMP's and XLA's
  spin-wait after their work) go idle, so they do not eat into the next variant's time.
  ``cores``, if given, receives each variant's cores busy: the process's CPU time (every
  thread, user + system) over the wall time of all its timed steps; ``faults`` its minor page
  faults per step (the kernel mapping in fresh pages: anytime/lm/host_memory.py).
  """
  best = dict.fromkeys(variants, np.inf)
  cpu, wall = dict.fromkeys(variants, 0.0), dict.fromkeys(variants, 0.0)
  minflt = dict.fromkeys(variants, 0)
  for _ in range(rounds):
    for name, step in variants.items():
      time.sleep(0.3)
      for _ in range(steps):
        flt_start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        cpu_start, start = time.process_time(), time.perf_counter()
        step()
        seconds = time.perf_counter() - start
        cpu[name] += time.process_time() - cpu_start
        minflt[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - flt_start
        wall[name] += seconds
        best[name] = min(best[name], seconds)
  if cores is not None:
    cores.update({name: cpu[name] / wall[name] for name in variants})
  if faults is not None:
    faults.update({name: minflt[name] / (rounds * steps) for name in variants})
  return best


def torch_available() -> str | None:
  """None when torch imports, else why not (the benchmark then skips the PyTorch rows)."""
  try:
    import torch  # noqa: F401
  except ImportError as err:
    return f"PyTorch not installed ({err}); pip install -e '.[bench]' for the PyTorch rows"
  return None


def bench_preset(preset: str, batch: int, args, peak: float) -> None:
  base = bench_config(preset, batch)
  none = contextlib.nullcontext
  specs: dict[str, tuple] = {
    "jax (trainer)": (base, None, none),
    "jax (trainer), again": (base, None, none),  # the same program twice: the noise floor
    "jax, full logits": (bench_config(preset, batch, **{"model.loss_chunk": 0}), None, none),
    "jax, seq-major attn": (base, None, bench_legacy.sequence_major_attention),
    "jax, 3-D projections": (base, None, bench_legacy.three_d_projections),
    "jax, causal_blocks 2": (bench_config(preset, batch, **CPU_SETUP), None, none),
    "jax, one device": (bench_config(preset, batch, mesh=(1, 1, 1)), None, none),
    "jax (CPU setup)": (bench_config(preset, batch, **cpu_setup()), None, none),
    "CPU setup, consecutive chunks": (
      bench_config(preset, batch, **cpu_setup()),
      None,
      bench_legacy.consecutive_loss_chunks,
    ),
    "jax + 1 average": (bench_config(preset, batch, **{"opt.averages": ("pema25",)}), None, none),
    "jax + 5 averages": (bench_config(preset, batch, **{"opt.averages": AVERAGES_5}), None, none),
    "CPU setup + 1 average": (
      bench_config(preset, batch, **cpu_setup(**{"opt.averages": ("pema25",)})),
      None,
      none,
    ),
    "CPU setup + 5 averages": (
      bench_config(preset, batch, **cpu_setup(**{"opt.averages": AVERAGES_5})),
      None,
      none,
    ),
  }
  keep = re.compile(args.variants)
  always = ("jax (trainer)", "jax (trainer), again", "jax (CPU setup)")
  specs = {k: v for k, v in specs.items() if k in always or keep.search(k)}
  variants, infos = {}, {}
  for name, (cfg, options, patch) in specs.items():
    cost = name in ("jax (trainer)", "jax (CPU setup)") or "average" in name
    variants[name], infos[name] = jax_variant(cfg, options, patch, cost=cost)
  reason = None if args.torch and keep.search("torch") else "--no_torch or --variants"
  reason = reason or torch_available()
  if reason is None:
    for name, compiled in (("torch eager", False), ("torch.compile", True)):
      variants[name], infos[name] = torch_variant(base, compiled)
  ref = infos["jax (trainer)"]
  print(
    f"\n{preset}: batch {batch} x seq {base.model.seq_len} = {ref['tokens']} tokens/step, "
    f"{ref['params']:,} params, {ref['flops_per_token'] / 1e6:.2f} MFLOP/token, "
    f"train step compiled {ref['compiles']} time(s)"
  )
  if reason is None:
    same = check_same_model(train.model_config(base), batch)
    print(
      f"  same weights in both: loss jax {same[0]:.6f}, torch {same[1]:.6f} (asserted within 1e-4)"
    )
    tp = infos["torch eager"]["params"]
    assert tp == ref["params"], f"parameter counts differ: torch {tp:,} vs jax {ref['params']:,}"
    print(
      f"  PyTorch reference: {tp:,} params ({'same' if tp == ref['params'] else 'DIFFERENT'}), "
      f"{infos['torch eager']['threads']} threads; first loss torch "
      f"{infos['torch eager']['first_loss']:.4f} vs jax {ref['first_loss']:.4f} "
      f"(log V = {np.log(VOCAB):.4f})"
    )
  else:
    print(f"  PyTorch rows skipped: {reason}")
  start = time.perf_counter()
  variants["jax (trainer)"]()
  # Short steps get more samples per round (at least ~2 s of each variant per round).
  steps = max(args.steps, min(8, int(2.0 / (time.perf_counter() - start))))
  print(f"  timing: {args.rounds} interleaved rounds x {steps} steps per variant, fastest kept")
  cores: dict[str, float] = {}
  faults: dict[str, float] = {}
  best = time_rounds(variants, args.rounds, steps, cores, faults)
  t_ref = best["jax (trainer)"]
  print(
    f"  {'variant':<30}{'s/step':>9}{'tokens/s':>10}{'GFLOP/s':>9}{'MFU':>7}{'cores':>7}"
    f"{'faults':>8}{'ours / this, tokens/s':>23}"
  )
  for name, seconds in best.items():
    tokens_s = ref["tokens"] / seconds
    flops_s = tokens_s * ref["flops_per_token"]
    print(
      f"  {name:<30}{seconds:>9.4f}{tokens_s:>10,.0f}{flops_s / 1e9:>9.1f}"
      f"{flops_s / peak:>7.1%}{cores[name]:>7.2f}{faults[name]:>8,.0f}{seconds / t_ref:>23.3f}"
    )
  for base_name, label in (("jax (trainer)", "defaults"), ("jax (CPU setup)", "CPU setup")):
    prefix = "jax" if base_name == "jax (trainer)" else "CPU setup"
    for k in (1, 5):
      name = f"{prefix} + {k} average{'s' * (k > 1)}"
      if name in best:
        extra_bytes = infos[name]["bytes_accessed"] / infos[base_name]["bytes_accessed"] - 1
        extra_time = best[name] / best[base_name] - 1
        print(
          f"  averaging overhead, {label}, {k} average(s): step time {extra_time:+.1%}, "
          f"XLA bytes accessed {extra_bytes:+.1%}"
        )
  if "jax (trainer), again" in best:
    noise = best["jax (trainer), again"] / t_ref - 1
    print(f"  noise floor: the trainer's step compiled twice, second copy {noise:+.1%}")
  if "torch eager" in best:
    for name in ("jax (trainer)", "jax (CPU setup)"):
      print(
        f"  {name} / torch eager, tokens/s: {best['torch eager'] / best[name]:.3f}; "
        f"/ torch.compile: {best['torch.compile'] / best[name]:.3f}"
      )


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--presets", default="nano,15m")
  ap.add_argument(
    "--batch", default="", help="per-preset batch, e.g. 15m=64 (default nano 32, 15m 16)"
  )
  ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
  ap.add_argument("--steps", type=int, default=2, help="timed steps per variant per round")
  ap.add_argument("--no_torch", dest="torch", action="store_false")
  ap.add_argument(
    "--variants",
    default="",
    help="regex: time only the variants it matches (plus the trainer and the CPU setup rows), "
    "e.g. 'average' for the averaging overhead alone; 'torch' keeps the PyTorch rows",
  )
  ap.add_argument("--profile", default="", help="preset: print where its step's time goes")
  add_keep_freed_memory_flag(ap)
  ap.add_argument(
    "--cpu_devices",
    type=int,
    default=-1,
    help="XLA CPU devices of this process (-1: one per core), as the trainer's --cpu_devices",
  )
  args = ap.parse_args(argv)
  presets = list(lm_config.PRESETS)
  cli.one_of("--presets", args.presets, presets)
  batches = dict(DEFAULT_BATCH)
  for item in filter(None, args.batch.split(",")):
    key, _, value = item.partition("=")
    ok = key in presets and value.isdigit() and int(value) >= 1
    cli.require("--batch", args.batch, ok, "PRESET=N items, N >= 1, e.g. 15m=64")
    batches[key] = int(value)
  cli.at_least("--rounds", args.rounds, 1)
  cli.at_least("--steps", args.steps, 1)
  try:
    re.compile(args.variants)
  except re.error:
    cli.require("--variants", args.variants, False, "a regular expression")
  if args.profile:
    cli.one_of("--profile", args.profile, presets)
  cli.require("--cpu_devices", args.cpu_devices, args.cpu_devices == -1 or args.cpu_devices >= 1,
              "-1 (one per core) or an integer >= 1")  # fmt: skip
  sharding_lib.set_cpu_devices(args.cpu_devices)  # before anything starts the backend
  malloc_line = keep_freed_memory(args.keep_freed_memory)
  print(f"devices: {jax.devices()}, load average {os.getloadavg()}")
  print(malloc_line)
  if args.profile:
    batch = batches.get(args.profile, 32)
    for overrides in ({}, cpu_setup()):
      print(f"\n{args.profile}, overrides {overrides or 'none (trainer defaults)'}:")
      bench_profile.print_profile(bench_config(args.profile, batch, **overrides), random_batch)
    return
  rates = matmul_peak()
  peak = max(rates.values())
  print(
    "fp32 matmul (GFLOP/s): "
    + ", ".join(f"{n}: {r / 1e9:.1f}" for n, r in rates.items())
    + f"; MFU reference = best = {peak / 1e9:.1f}"
  )
  for preset in filter(None, args.presets.split(",")):
    bench_preset(preset, batches.get(preset, 32), args, peak)
  rates = matmul_peak()
  print(
    "fp32 matmul again at the end (GFLOP/s): "
    + ", ".join(f"{n}: {r / 1e9:.1f}" for n, r in rates.items())
    + f"; load average {os.getloadavg()}"
  )
