"""Cost of weight averaging on an AdamW update, on a parameter tree shaped like the 150M model.

Measured in one process, in interleaved rounds, each variant's fastest step kept:

* AdamW alone (jitted update + apply, params and state donated);
* the same wrapped in ``anytime.with_averaging`` with 1 and with 5 rules
  (proportional EMA, gamma in {6.25, 12.5, 25, 50, 100});
* one read-modify-write pass over an fp32 copy of the parameters
  (``a <- 0.999 a + 0.001``, donated): the memory-traffic cost one average
  cannot go below, since it must read and write its own buffer.

It prints the step times, their ratios to AdamW alone, the extra time per rule
in units of that RMW pass (the target is <= 1: each rule adds at most one
read-modify-write pass over the params), and the state bytes per rule.

  python -m experiments.bench averaging             # 150M shapes (d 1024, 12 layers, vocab 32128)
  python -m experiments.bench averaging --layers 2  # smaller, quicker
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

import anytime
from anytime import cli

GAMMAS = (6.25, 12.5, 25.0, 50.0, 100.0)


def model_shaped_params(d_model=1024, layers=12, d_mlp=4096, vocab=32128, head_dim=64):
  """fp32 zeros with the leaf shapes of the 150M OLMo-style model (no allocation tricks)."""
  shapes = {"embed": (vocab, d_model), "unembed": (d_model, vocab), "final_norm": (d_model,)}
  for i in range(layers):
    block = {
      "q": (d_model, d_model),
      "k": (d_model, d_model),
      "v": (d_model, d_model),
      "o": (d_model, d_model),
      "mlp_in": (d_model, d_mlp),
      "mlp_out": (d_mlp, d_model),
      "attn_norm": (d_model,),
      "mlp_norm": (d_model,),
      "q_norm": (head_dim,),
      "k_norm": (head_dim,),
    }
    shapes.update({f"layer{i}/{k}": v for k, v in block.items()})
  key = jax.random.key(0)
  return {
    name: jax.random.normal(jax.random.fold_in(key, i), shape, jnp.float32) * 0.02
    for i, (name, shape) in enumerate(sorted(shapes.items()))
  }


def make_optimizer(num_rules):
  adamw = optax.adamw(1e-3, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.0)
  if num_rules == 0:
    return adamw
  rules = {f"ema{g:g}": anytime.proportional_ema(g) for g in GAMMAS[:num_rules]}
  return anytime.with_averaging(adamw, rules)


def time_calls(fn, args, reps):
  """Fastest of reps chained calls fn(*args) (outputs feed the next call).

  The minimum, not the median: on a shared machine the noise only ever adds
  time, so the fastest call is the best estimate of the step's own cost.
  """
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    args = fn(*args)
    jax.block_until_ready(args)
    times.append(time.perf_counter() - start)
  return min(times), args


def bench_variant(num_rules, params, grads, reps):
  tx = make_optimizer(num_rules)

  def step(params, state):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  step = jax.jit(step, donate_argnums=(0, 1))
  compiled = step.lower(params, jax.eval_shape(tx.init, params)).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  bytes_accessed = float(cost["bytes accessed"])
  # Copies: the step donates its inputs, and the caller's params serve every variant.
  work_params = jax.tree.map(jnp.copy, params)
  state = jax.jit(tx.init)(work_params)
  state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
  carry = step(work_params, state)  # compile and warm up
  seconds, carry = time_calls(step, carry, reps)
  del carry
  return seconds, state_bytes, bytes_accessed


def bench_rmw(params, reps):
  rmw = jax.jit(lambda a: jax.tree.map(lambda x: 0.999 * x + 0.001, a), donate_argnums=0)
  buf = jax.tree.map(jnp.copy, params)
  buf = rmw(buf)
  seconds, _ = time_calls(lambda a: (rmw(a),), (buf,), reps)
  return seconds


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--layers", type=int, default=12)
  parser.add_argument("--reps", type=int, default=5, help="timed steps per variant per round")
  parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
  args = parser.parse_args(argv)
  for flag in ("layers", "reps", "rounds"):
    cli.at_least(f"--{flag}", getattr(args, flag), 1)

  params = model_shaped_params(layers=args.layers)
  grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)
  n_params = sum(p.size for p in jax.tree.leaves(params))
  param_bytes = sum(p.nbytes for p in jax.tree.leaves(params))
  print(
    f"devices: {jax.devices()}  params: {n_params / 1e6:.1f}M ({param_bytes / 2**20:.0f} MiB fp32)"
  )

  samples = {0: [], 1: [], 5: [], "rmw": []}
  state_bytes, traffic = {}, {}
  for _ in range(args.rounds):
    for r in (0, 1, 5):
      seconds, state_bytes[r], traffic[r] = bench_variant(r, params, grads, args.reps)
      samples[r].append(seconds)
    samples["rmw"].append(bench_rmw(params, args.reps))
  t = {k: min(v) for k, v in samples.items()}

  # Memory-traffic floor of r averages fused into one pass: each reads and writes
  # its buffer (r RMW passes) and the new params are read once (half a pass).
  # "bytes" is XLA's count for the compiled step (exact, noise-free); "time" is
  # the measured step time, both as extra per rule in units of one RMW pass.
  rmw_bytes = 2 * param_bytes
  print(
    f"\n{'variant':<24}{'step (ms)':>10}{'vs AdamW':>10}{'XLA bytes':>11}"
    f"   extra per rule, in RMW passes: {'time':>6}{'bytes':>7}{'floor':>7}"
  )
  print(f"{'AdamW':<24}{t[0] * 1e3:>10.1f}{1.0:>10.3f}{traffic[0] / param_bytes:>10.1f}P")
  for r in (1, 5):
    print(
      f"{f'AdamW + {r} average(s)':<24}{t[r] * 1e3:>10.1f}{t[r] / t[0]:>10.3f}"
      f"{traffic[r] / param_bytes:>10.1f}P{'':>34}{(t[r] - t[0]) / r / t['rmw']:>6.2f}"
      f"{(traffic[r] - traffic[0]) / r / rmw_bytes:>7.2f}{1.0 + 0.5 / r:>7.2f}"
    )
  print(f"{'one fp32 RMW pass':<24}{t['rmw'] * 1e3:>10.1f}{t['rmw'] / t[0]:>10.3f}{2.0:>10.1f}P")
  print("(P = bytes of the fp32 params)")
  per_rule_bytes = (state_bytes[5] - state_bytes[0]) / 5
  print(
    f"\nstate bytes per rule: {per_rule_bytes / 2**20:.1f} MiB "
    f"= {per_rule_bytes / param_bytes:.3f} x the fp32 params"
    f" (1 rule: {(state_bytes[1] - state_bytes[0]) / 2**20:.1f} MiB)"
  )
