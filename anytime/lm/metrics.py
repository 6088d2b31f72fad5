"""Metric records of a run: JSONL files plus TensorBoard event files (tensorboardX).

``MetricWriter.write(kind, record)`` appends ``record`` (a JSON-able dict with
an integer ``step``) as one line to ``<workdir>/<kind>.jsonl`` and logs its
numeric fields, nested dicts flattened to ``a/b``, as TensorBoard scalars under
``kind/``. Only process 0 writes. ``truncate_after(step)`` drops records past a
step, so a resumed run does not leave the records of the lost steps behind.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import jax
import numpy as np


def _flatten(record: dict, prefix: str = "") -> dict[str, float]:
  out = {}
  for key, value in record.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      out.update(_flatten(value, name + "/"))
    elif isinstance(value, int | float) and not isinstance(value, bool) and key != "step":
      out[name] = float(value)
  return out


def _jsonable(value: Any) -> Any:
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # JSON has no NaN/inf; keep the file strict JSON
  if isinstance(value, dict):
    return {k: _jsonable(v) for k, v in value.items()}
  if isinstance(value, list | tuple):
    return [_jsonable(v) for v in value]
  return value


def read_jsonl(path: str) -> list[dict]:
  """All records of a JSONL file (an unfinished last line is ignored)."""
  records = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          records.append(json.loads(line))
        except json.JSONDecodeError:
          break
  return records


class MetricWriter:
  """JSONL + TensorBoard writer for one workdir (a no-op on processes other than 0)."""

  def __init__(self, workdir: str, tensorboard: bool = True):
    self.workdir = workdir
    self.enabled = jax.process_index() == 0
    self._tb = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      if tensorboard:
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def path(self, kind: str) -> str:
    return os.path.join(self.workdir, f"{kind}.jsonl")

  def write(self, kind: str, record: dict) -> None:
    if not self.enabled:
      return
    with open(self.path(kind), "a") as f:
      f.write(json.dumps(_jsonable(record), allow_nan=False) + "\n")
    if self._tb is not None and "step" in record:
      for name, value in _flatten(record).items():
        if math.isfinite(value):
          self._tb.add_scalar(f"{kind}/{name}", value, int(record["step"]))

  def truncate_after(self, step: int) -> None:
    """Removes records with ``step`` > ``step`` from every JSONL file of the workdir."""
    if not self.enabled:
      return
    for name in os.listdir(self.workdir):
      if name.endswith(".jsonl"):
        path = os.path.join(self.workdir, name)
        kept = [r for r in read_jsonl(path) if int(r.get("step", -1)) <= step]
        with open(path + ".tmp", "w") as f:
          f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(path + ".tmp", path)

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


# ----------------------------------------------------------------------------
# What the user sees: the start-up report, throughput, MFU.

# Dense peak FLOP/s per device by jax device_kind (bf16), where known.
PEAK_FLOPS = {
  "TPU v4": 275e12,
  "TPU v5 lite": 197e12,
  "TPU v5e": 197e12,
  "TPU v5p": 459e12,
  "TPU v6 lite": 918e12,
  "NVIDIA H100 80GB HBM3": 989e12,
  "NVIDIA A100-SXM4-80GB": 312e12,
  "NVIDIA A100-SXM4-40GB": 312e12,
}


def measured_matmul_flops(dtype: str = "float32", n: int = 512, reps: int = 5) -> float:
  """FLOP/s of an n x n matmul on device 0 (best of ``reps``): the CPU's MFU reference."""
  import jax.numpy as jnp

  device = jax.devices()[0]
  a = jax.device_put(jnp.ones((n, n), jnp.dtype(dtype)), device)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = math.inf
  for _ in range(reps):
    t = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * n**3 / best


def peak_flops(configured: float, dtype: str) -> float:
  """Per-device peak: the config's, the table's for this accelerator, or a measured matmul."""
  if configured:
    return float(configured)
  kind = jax.devices()[0].device_kind
  if kind in PEAK_FLOPS:
    return PEAK_FLOPS[kind]
  return measured_matmul_flops(dtype)


def _bytes(n: float) -> str:
  for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
    if abs(n) < 1024 or unit == "TiB":
      return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
    n /= 1024
  return ""


def _per_device_bytes(tree: Any, shardings: Any) -> int:
  total = 0
  for x, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings), strict=True):
    total += math.prod(s.shard_shape(x.shape)) * x.dtype.itemsize
  return total


def startup(cfg, mcfg, plan, trainer, counts, flops, compiled, peak) -> str:
  """The start-up report: sizes, FLOPs, plan, mesh and per-device memory."""
  mesh = trainer.mesh
  params_b = _per_device_bytes(trainer.abstract["params"], trainer.shardings["params"])
  opt_b = _per_device_bytes(trainer.abstract["opt_state"], trainer.shardings["opt_state"])
  mem = compiled.memory_analysis()
  temp = getattr(mem, "temp_size_in_bytes", 0) if mem is not None else 0
  horizons = ", ".join(f"{v:g}@{k}" for k, v in plan.horizons.items())
  lines = [
    f"model {cfg.model.preset}: d_model {mcfg.d_model}, layers {mcfg.num_layers}, heads "
    f"{mcfg.num_heads}, mlp {mcfg.mlp_dim}, vocab {mcfg.vocab_size}, seq {mcfg.seq_len}, "
    f"compute {mcfg.dtype}",
    f"params: total {counts['total']:,} ({counts['total'] / 1e6:.1f}M), non-embedding "
    f"{counts['non_embedding']:,} ({counts['non_embedding'] / 1e6:.1f}M)",
    f"FLOPs/token (train, 6N + attention): {flops:,} ({flops / 1e9:.2f} GFLOP)",
    f"run: {plan.total_steps:,} steps x {plan.tokens_per_step:,} tokens = "
    f"{plan.total_steps * plan.tokens_per_step / 1e9:.3f}B tokens; 1x Chinchilla = "
    f"{plan.steps_per_chinchilla:,} steps; horizons ({cfg.unit}@step): {horizons}",
    f"optimizer: AdamW {cfg.opt.schedule} lr {cfg.opt.lr:g} warmup {cfg.opt.warmup_steps}, "
    f"averages {list(cfg.opt.averages)}, grad_accum {cfg.grad_accum}",
    f"mesh: {dict(mesh.shape)} over {mesh.devices.size} {jax.devices()[0].platform} device(s), "
    f"{jax.process_count()} process(es)",
    f"per-device memory: params {_bytes(params_b)}, optimizer state (Adam + averages) "
    f"{_bytes(opt_b)}, train-step temporaries {_bytes(temp)}; "
    f"total ~{_bytes(params_b + opt_b + temp)}",
    f"MFU reference: {peak / 1e9:.1f} GFLOP/s per device",
  ]
  return "\n".join(lines)


class Meter:
  """Throughput, MFU and ETA over each logging interval (eval and save time excluded)."""

  def __init__(self, plan, flops_per_token: int, peak_total: float, start_step: int):
    self.plan, self.flops, self.peak = plan, flops_per_token, peak_total
    self.start_step = self.last_step = start_step
    self.last_time = time.time()
    self.excluded = 0.0
    self.train_time = 0.0
    self.history: list[dict] = []

  def exclude(self, seconds: float) -> None:
    self.excluded += seconds

  def update(self, step: int, m: dict) -> tuple[str, dict]:
    now = time.time()
    dt = max(now - self.last_time - self.excluded, 1e-9)
    steps = step - self.last_step
    self.train_time += dt
    tokens_s = steps * self.plan.tokens_per_step / dt
    flops_s = tokens_s * self.flops
    mfu = flops_s / self.peak if self.peak else float("nan")
    eta = (self.plan.total_steps - step) * dt / max(steps, 1)
    self.last_step, self.last_time, self.excluded = step, now, 0.0
    record = {
      "step": step,
      "tokens": step * self.plan.tokens_per_step,
      "loss": float(m["loss"]),
      "lr": float(m["lr"]),
      "grad_norm": float(m["grad_norm"]),
      "tokens_per_s": tokens_s,
      "flops_per_s": flops_s,
      "mfu": mfu,
      "eta_s": eta,
    }
    self.history.append(record)
    line = (
      f"step {step:>7}/{self.plan.total_steps} loss {record['loss']:.4f} lr {record['lr']:.3e} "
      f"gnorm {record['grad_norm']:.3f} {tokens_s:,.0f} tok/s {flops_s / 1e9:.2f} GFLOP/s "
      f"MFU {mfu:.1%} ETA {eta / 60:.1f} min"
    )
    return line, record

  def summary(self) -> dict:
    """Throughput over the logged intervals after the first (which may include warm-up)."""
    later = self.history[1:] or self.history
    if not later:
      return {}
    return {
      "tokens_per_s": float(np.median([r["tokens_per_s"] for r in later])),
      "mfu": float(np.median([r["mfu"] for r in later])),
    }
