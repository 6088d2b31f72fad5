"""Why the trainer trails PyTorch on CPU: its parts against PyTorch's, one at a time.

  python -m experiments.bench diagnose                 # matmuls, attention, block parts, nano
  taskset -c 0 python -m experiments.bench diagnose    # the same on one core

Prints (fastest of ``--reps``, same process, needs the ``[bench]`` extra):

* the three matmuls of the 15m MLP (forward, weight gradient, input gradient) in XLA and PyTorch;
* the attention core of 15m (causal softmax attention on B 16, L 256, H 6, K 64, forward and
  backward) with sequence-major operands (the trainer before the head-major change), head-major
  operands (the trainer now) and PyTorch's ``scaled_dot_product_attention``;
* one 15m block's parts (the attention module with its projections, QK-norm and RoPE; the MLP;
  the whole pre-norm block), forward and backward on one device's share of the benchmark batch
  (B 8), the model's own modules against experiments.bench.torch_reference's;
* the whole ``nano`` train step, the trainer's against PyTorch eager (experiments.bench.trainer).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from anytime import cli
from experiments.bench import trainer as bench_trainer

TOKENS, D, F = 4096, 384, 1536  # the 15m MLP at 16 x 256 tokens
B, L, H, K = 16, 256, 6, 64  # the 15m attention


def fastest(fn, args: tuple, reps: int) -> float:
  """Fastest of ``reps`` calls of ``fn(*args)`` (after one warm-up call); ``fn`` must block."""
  fn(*args)
  best = np.inf
  for _ in range(reps):
    start = time.perf_counter()
    fn(*args)
    best = min(best, time.perf_counter() - start)
  return best


def matmuls(reps: int) -> None:
  import torch

  rng = np.random.default_rng(0)
  shapes = {
    "forward x W": ((TOKENS, D), (D, F), "nd,df->nf", lambda a, b: a @ b),
    "weight grad x^T dy": ((TOKENS, D), (TOKENS, F), "nd,nf->df", lambda a, b: a.T @ b),
    "input grad dy W^T": ((TOKENS, F), (D, F), "nf,df->nd", lambda a, b: a @ b.T),
  }
  for name, (sa, sb, spec, torch_fn) in shapes.items():
    a, b = (rng.standard_normal(s).astype(np.float32) for s in (sa, sb))
    f = jax.jit(lambda x, y, spec=spec: jnp.einsum(spec, x, y))
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    t_jax = fastest(lambda x, y, f=f: f(x, y).block_until_ready(), (ja, jb), reps)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    t_torch = fastest(torch_fn, (ta, tb), reps)
    flops = 2 * TOKENS * D * F
    print(
      f"  {name:<20} XLA {flops / t_jax / 1e9:6.1f} GFLOP/s, PyTorch {flops / t_torch / 1e9:6.1f}"
    )


def _softmax_attention(q, k, v, spec_scores, spec_out):
  scores = jnp.einsum(spec_scores, q, k) / math.sqrt(K)
  scores = jnp.where(np.tril(np.ones((L, L), bool)), scores, jnp.finfo(jnp.float32).min)
  return jnp.einsum(spec_out, jax.nn.softmax(scores, axis=-1), v)


def sequence_major(q, k, v):
  return _softmax_attention(q, k, v, "bqhk,bshk->bhqs", "bhqs,bshk->bqhk")


def head_major(q, k, v):
  q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
  y = _softmax_attention(q, k, v, "bhqk,bhsk->bhqs", "bhqs,bhsk->bhqk")
  return y.transpose(0, 2, 1, 3)


def attention(reps: int) -> None:
  import torch

  rng = np.random.default_rng(0)
  q, k, v, g = (rng.standard_normal((B, L, H, K)).astype(np.float32) for _ in range(4))
  flops = 3 * 4 * B * H * L * L * K  # two products, forward + backward
  for name, fn in (("sequence-major", sequence_major), ("head-major", head_major)):
    step = jax.jit(jax.grad(lambda q, k, v, fn=fn: jnp.sum(fn(q, k, v) * g), argnums=(0, 1, 2)))
    args = [jnp.asarray(x) for x in (q, k, v)]
    seconds = fastest(lambda *a, step=step: jax.block_until_ready(step(*a)), tuple(args), reps)
    print(f"  XLA {name:<16} {seconds * 1e3:7.1f} ms ({flops / seconds / 1e9:5.1f} GFLOP/s)")
  tq, tk, tv, tg = (torch.from_numpy(x).transpose(1, 2).contiguous() for x in (q, k, v, g))
  for t in (tq, tk, tv):
    t.requires_grad_()

  def torch_step():
    y = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    (y * tg).sum().backward()

  seconds = fastest(torch_step, (), reps)
  print(f"  PyTorch SDPA         {seconds * 1e3:7.1f} ms ({flops / seconds / 1e9:5.1f} GFLOP/s)")


def block_parts(reps: int, batch: int = 8) -> None:
  import torch

  from anytime.lm import model as model_lib
  from anytime.lm import train
  from experiments.bench import torch_reference as tr

  mcfg = train.validate(bench_trainer.bench_config("15m", batch), check_data=False)[0]
  x = np.random.default_rng(0).standard_normal((batch, L, mcfg.d_model)).astype(np.float32)
  cos, sin = tr.rope_tables(L, mcfg.head_dim, mcfg.rope_base)
  torch_mlp = torch.nn.Sequential(
    torch.nn.Linear(mcfg.d_model, mcfg.mlp_dim, bias=False),
    torch.nn.GELU(approximate="tanh" if mcfg.gelu_approximate else "none"),
    torch.nn.Linear(mcfg.mlp_dim, mcfg.d_model, bias=False),
  )
  torch_attention, torch_block = tr.Attention(mcfg), tr.Block(mcfg)
  parts = {
    "attention": (model_lib.Attention, torch_attention, lambda t: torch_attention(t, cos, sin)),
    "mlp": (model_lib.Mlp, torch_mlp, torch_mlp),
    "block": (model_lib.Block, torch_block, lambda t: torch_block(t, cos, sin)),
  }
  for name, (jax_cls, torch_module, torch_fn) in parts.items():
    t_jax, t_torch = _time_part(jax_cls, torch_module, torch_fn, mcfg, x, reps)
    print(
      f"  {name:<10} XLA {t_jax * 1e3:7.1f} ms, PyTorch {t_torch * 1e3:7.1f} ms "
      f"(PyTorch / XLA time {t_torch / t_jax:.3f})"
    )


def _time_part(jax_cls, torch_module, torch_fn, mcfg, x, reps: int) -> tuple[float, float]:
  """Forward + backward of sum(part(x)^2) w.r.t. its weights and x: (XLA, PyTorch) seconds."""
  import torch
  from flax import nnx

  with nnx.use_eager_sharding(False):
    graphdef, params = nnx.split(jax_cls(mcfg, jnp.float32, nnx.Rngs(0)))
  grads = jax.jit(jax.grad(lambda p, x: jnp.sum(nnx.merge(graphdef, p)(x) ** 2), argnums=(0, 1)))
  t_jax = fastest(lambda p, x: jax.block_until_ready(grads(p, x)), (params, jnp.asarray(x)), reps)
  tx = torch.from_numpy(x.copy()).requires_grad_()

  def torch_step():
    torch_module.zero_grad(set_to_none=True)
    tx.grad = None
    (torch_fn(tx) ** 2).sum().backward()

  return t_jax, fastest(torch_step, (), reps)


def nano_step(rounds: int) -> None:
  cfg = bench_trainer.bench_config("nano", 32)
  variants = {
    "trainer": bench_trainer.jax_variant(cfg)[0],
    "torch eager": bench_trainer.torch_variant(cfg, compile=False)[0],
  }
  best = bench_trainer.time_rounds(variants, rounds, 3)
  print(
    f"  trainer {best['trainer']:.4f} s, PyTorch eager {best['torch eager']:.4f} s: "
    f"ours / eager = {best['torch eager'] / best['trainer']:.3f}"
  )


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--reps", type=int, default=8)
  bench_trainer.add_keep_freed_memory_flag(ap)
  args = ap.parse_args(argv)
  cli.at_least("--reps", args.reps, 1)
  import torch

  malloc_line = bench_trainer.keep_freed_memory(args.keep_freed_memory)
  cores = len(os.sched_getaffinity(0))
  torch.set_num_threads(cores)
  print(f"{cores} core(s) available; load average {os.getloadavg()}")
  print(malloc_line)
  print("15m MLP matmuls:")
  matmuls(args.reps)
  print("15m attention core, forward + backward:")
  attention(args.reps)
  print("15m block parts, forward + backward, B 8:")
  block_parts(args.reps)
  print("nano train step:")
  nano_step(2)
