"""Metric records of a run: JSONL files, TensorBoard event files (tensorboardX) and, when the
config names a project, Weights & Biases.

``MetricWriter.write(kind, record)`` appends ``record`` (a JSON-able dict with
an integer ``step``) as one line to ``<workdir>/<kind>.jsonl`` and logs its
numeric fields, nested dicts flattened to ``a/b``, as TensorBoard scalars under
``kind/`` (and as the same W&B scalars at the same step). Only process 0 writes.
``truncate_after(step)`` drops records past a step, so a resumed run does not leave
the records of the lost steps behind. The JSONL files are the record the project's
own tools read; TensorBoard and W&B are views of it, so they get exactly its scalars.
"""

from __future__ import annotations

import importlib.util
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


def read_jsonl_lines(path: str) -> tuple[list[dict], list[tuple[int, str]]]:
  """(records, malformed): every well-formed record of a JSONL file, in order, and the
  (1-based line number, text) of each line that is not a JSON object (a torn write).

  A malformed line never hides the records after it.
  """
  records, malformed = [], []
  if os.path.exists(path):
    with open(path) as f:
      for number, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          record = None
        if isinstance(record, dict):
          records.append(record)
        else:
          malformed.append((number, line.rstrip("\n")))
  return records, malformed


def read_jsonl(path: str) -> list[dict]:
  """All well-formed records of a JSONL file (malformed lines, e.g. torn writes, skipped)."""
  return read_jsonl_lines(path)[0]


# wandb.mode: "" leaves it to W&B ($WANDB_MODE, else online).
WANDB_MODES = ("", "online", "offline", "disabled")
WANDB_FIELDS = ("project", "entity", "name", "mode")  # the config's wandb group (configs/lm.py)


def validate_wandb_config(wandb_cfg) -> None:
  """ValueError naming the field, its value and what is allowed (and when the wandb package is
  missing); imports nothing, so it runs before any compute."""
  known = set(WANDB_FIELDS)
  unknown = sorted(set(wandb_cfg.keys()) - known)
  if unknown:
    raise ValueError(f"unknown wandb field(s) {unknown}; known fields: {sorted(known)}")
  for field in sorted(known):
    value = wandb_cfg.get(field)
    if not isinstance(value, str):
      raise ValueError(f"wandb.{field}={value!r} is invalid: expected a string")
  if wandb_cfg.mode not in WANDB_MODES:
    raise ValueError(f"wandb.mode={wandb_cfg.mode!r} is invalid: allowed: {WANDB_MODES}")
  if not wandb_cfg.project and (wandb_cfg.entity or wandb_cfg.name):
    raise ValueError(
      f"wandb.project={wandb_cfg.project!r} is invalid: wandb.entity / wandb.name are set, but W&B "
      "logs nothing without a project (set wandb.project, or clear them)"
    )
  if wandb_cfg.project and importlib.util.find_spec("wandb") is None:
    raise ValueError(
      f"wandb.project={wandb_cfg.project!r} needs the wandb package: "
      "pip install 'anytime-schedules[wandb]' (or set wandb.project='')"
    )


def _start_wandb(wandb_cfg, workdir: str, config: dict | None):
  """A W&B run for ``wandb_cfg`` (imported here, so a run without W&B never loads it).

  Its files go to $WANDB_DIR when set, else under the workdir (not the current directory). A
  resumed training starts a new W&B run: the old one may hold steps past the checkpoint.
  """
  import wandb

  return wandb.init(
    project=wandb_cfg.project,
    entity=wandb_cfg.entity or None,
    name=wandb_cfg.name or None,
    mode=wandb_cfg.mode or None,
    dir=os.environ.get("WANDB_DIR") or workdir,  # read now: wandb caches its first setup
    config=config,
  )


class MetricWriter:
  """JSONL + TensorBoard (+ W&B) writer for one workdir (a no-op on processes other than 0).

  ``wandb``: the config's ``wandb`` group (None or an empty project: no W&B); ``config``: the
  run's whole config as a dict, logged once as the W&B run's config. Use it as a context
  manager, or call :meth:`close` (also on failure): the W&B run is then finished with exit code
  1, so it shows as failed rather than running forever.
  """

  def __init__(
    self,
    workdir: str,
    tensorboard: bool = True,
    wandb: Any = None,
    config: dict | None = None,
  ):
    self.workdir = workdir
    self.enabled = jax.process_index() == 0
    self._tb = None
    self._wandb = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      if tensorboard:
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
      if wandb is not None and wandb.project:
        validate_wandb_config(wandb)
        self._wandb = _start_wandb(wandb, workdir, config)

  def __enter__(self) -> MetricWriter:
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    self.close(failed=exc_type is not None)

  def path(self, kind: str) -> str:
    return os.path.join(self.workdir, f"{kind}.jsonl")

  def write(self, kind: str, record: dict) -> None:
    if not self.enabled:
      return
    with open(self.path(kind), "a") as f:
      f.write(json.dumps(_jsonable(record), allow_nan=False) + "\n")
    if "step" not in record or (self._tb is None and self._wandb is None):
      return
    step = int(record["step"])
    scalars = {f"{kind}/{k}": v for k, v in _flatten(record).items() if math.isfinite(v)}
    if self._tb is not None:
      for name, value in scalars.items():
        self._tb.add_scalar(name, value, step)
    if self._wandb is not None and scalars:
      self._wandb.log(scalars, step=step)

  def truncate_after(self, step: int) -> list[str]:
    """Removes records with ``step`` > ``step`` from every JSONL file of the workdir.

    Well-formed records are never lost: a malformed line (a write torn by a kill) is moved
    to ``<kind>.jsonl.torn`` beside the log, with its file and line number, and the records
    after it are kept. Returns one message per file that had torn lines.
    """
    if not self.enabled:
      return []
    notes = []
    for name in sorted(os.listdir(self.workdir)):
      if name.endswith(".jsonl"):
        path = os.path.join(self.workdir, name)
        records, malformed = read_jsonl_lines(path)
        if malformed:
          with open(path + ".torn", "a") as f:
            f.writelines(f"{name}:{n}: {text}\n" for n, text in malformed)
          notes.append(
            f"{name}: {len(malformed)} malformed line(s) (line {malformed[0][0]}"
            f"{' ...' if len(malformed) > 1 else ''}) set aside in {name}.torn; "
            f"{len(records)} well-formed records kept"
          )
        kept = [r for r in records if int(r.get("step", -1)) <= step]
        with open(path + ".tmp", "w") as f:
          f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(path + ".tmp", path)
    return notes

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self, failed: bool = False) -> None:
    """Closes the writers (idempotent); ``failed`` marks the W&B run as crashed."""
    if self._tb is not None:
      self._tb.close()
      self._tb = None
    if self._wandb is not None:
      run, self._wandb = self._wandb, None
      run.finish(exit_code=1 if failed else 0)


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
  """Per-chip peak (per host on CPU): the config's, the table's for this accelerator, or a
  measured matmul."""
  if configured:
    return float(configured)
  kind = jax.devices()[0].device_kind
  if kind in PEAK_FLOPS:
    return PEAK_FLOPS[kind]
  return measured_matmul_flops(dtype)


def total_peak_flops(peak: float, devices) -> float:
  """The run's peak FLOP/s, the denominator of its MFU.

  An accelerator's peak is per chip: ``peak`` times the chips. On CPU, ``peak`` is the host's
  (the measured matmul already runs on all of its cores, however many XLA devices
  ``--cpu_devices`` splits the host into), so it counts once per host (process), never
  per device: multiplying by the device count understated MFU by that factor.
  """
  devices = list(devices)
  if devices and devices[0].platform == "cpu":
    return peak * len({d.process_index for d in devices})
  return peak * len(devices)


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
    f"MFU reference: {total_peak_flops(peak, mesh.devices.flat) / 1e9:.1f} GFLOP/s for the run "
    f"({peak / 1e9:.1f} per {'host' if mesh.devices.flat[0].platform == 'cpu' else 'chip'})",
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
