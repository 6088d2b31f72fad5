"""Where a train step's time goes: a jax.profiler trace of the trainer's step, per model part.

Each XLA:CPU op in the trace is attributed to a part of the model (vocabulary head + loss,
attention, MLP, layer norms, embedding, optimizer) by the Python call stack XLA keeps in the
compiled program's metadata (``stack_frame_id``), and to a kind of work by its name (matmul,
layout copy/transpose, elementwise). Used by ``python -m experiments.bench trainer --profile=P``.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import re
import tempfile
import time

import jax

from anytime.lm import sharding as sharding_lib
from anytime.lm import train

# Innermost function on an op's call stack that names its part of the model.
PARTS = {
  "mean_cross_entropy": "head (unembed + loss)",
  "cross_entropy": "head (unembed + loss)",
  "Attention.__call__": "attention (qkvo, QK-norm, RoPE, softmax)",
  "Mlp.__call__": "mlp",
  "LayerNorm.__call__": "pre-norms",
  "Embed.__call__": "embedding",
  "Transformer.__call__": "head (unembed + loss)",  # the unembedding Linear, called from here
}
OPTIMIZER_FILES = ("optax", "anytime/averaging.py", "anytime/optim.py", "anytime/schedules.py")


def _table(text: str, name: str) -> list[str]:
  match = re.search(rf"^{name}\n(.*?)(?:\n\n|\n[A-Z][A-Za-z]+\n)", text, re.S | re.M)
  return match.group(1).splitlines() if match else []


def stack_parts(hlo_text: str) -> dict[str, str]:
  """HLO instruction name -> model part, from the compiled module's stack-frame tables."""
  files = {
    int(k): v.strip('"') for k, v in (ln.split(" ", 1) for ln in _table(hlo_text, "FileNames"))
  }
  funcs = {
    int(k): v.strip('"') for k, v in (ln.split(" ", 1) for ln in _table(hlo_text, "FunctionNames"))
  }
  locs = {}
  for ln in _table(hlo_text, "FileLocations"):
    k, rest = ln.split(" ", 1)
    f = int(re.search(r"file_name_id=(\d+)", rest).group(1))
    fn = int(re.search(r"function_name_id=(\d+)", rest).group(1))
    locs[int(k)] = (files.get(f, ""), funcs.get(fn, ""))
  frames = {}
  for ln in _table(hlo_text, "StackFrames"):
    k, rest = ln.split(" ", 1)
    loc = int(re.search(r"file_location_id=(\d+)", rest).group(1))
    parent = int(re.search(r"parent_frame_id=(\d+)", rest).group(1)) - 1  # printed 1-based
    frames[int(k)] = (loc, parent)

  def part(frame: int) -> str:
    seen = 0
    while frame in frames and seen < 200:
      loc, parent = frames[frame]
      file, func = locs.get(loc, ("", ""))
      if any(s in file for s in OPTIMIZER_FILES):
        return "optimizer (clip, AdamW, averages)"
      if func in PARTS:
        return PARTS[func]
      frame, seen = parent, seen + 1
    return "other"

  out = {}
  for m in re.finditer(r"^\s*(?:ROOT )?%?([\w.\-]+) = .*?stack_frame_id=(\d+)", hlo_text, re.M):
    out[m.group(1)] = part(int(m.group(2)))
  return out


def kind_of(op: str) -> str:
  if op.startswith(("ynn_fusion", "dot", "xnn_fusion", "onednn")) or "convolution" in op:
    return "matmul"
  if op.startswith(("copy", "transpose")):
    return "layout copy"
  return "elementwise/reduce"


def print_profile(cfg, random_batch, steps: int = 3) -> None:
  """Traces ``steps`` train steps of ``cfg`` and prints the time per model part and kind."""
  mcfg, plan, mesh_shape = train.validate(cfg, check_data=False)
  trainer = train.Trainer(cfg, mcfg, plan, mesh_shape)
  batch = sharding_lib.global_batch(random_batch(mcfg, plan.micro_batch), trainer.mesh)
  state = trainer.init()
  for _ in range(2):
    state, m = trainer.train_step(state, batch)
  jax.block_until_ready(m)
  parts = stack_parts(trainer.train_step.lower(state, batch).compile().as_text())
  with tempfile.TemporaryDirectory() as d:
    start = time.perf_counter()
    with jax.profiler.trace(d, create_perfetto_trace=True):
      for _ in range(steps):
        state, m = trainer.train_step(state, batch)
        jax.block_until_ready(m)
    wall = (time.perf_counter() - start) / steps
    with gzip.open(glob.glob(f"{d}/**/*.trace.json.gz", recursive=True)[0]) as f:
      trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  by_part, by_kind = collections.Counter(), collections.Counter()
  for e in events:
    name = e.get("name", "")
    if e.get("ph") != "X" or name not in parts:
      continue
    seconds = e.get("dur", 0) / 1e6 / steps
    by_part[parts[name]] += seconds
    by_kind[(parts[name], kind_of(name))] += seconds
  total = sum(by_part.values())
  print(
    f"{cfg.model.preset} batch {plan.micro_batch}: {wall:.3f} s/step wall (traced); XLA ops "
    f"{total:.3f} s of thread time per step (ops of one step may run on both cores at once)"
  )
  kinds = ("matmul", "layout copy", "elementwise/reduce")
  print(f"  {'part':<42}{'share':>7}" + "".join(f"{k:>20}" for k in kinds))
  for p, seconds in by_part.most_common():
    print(
      f"  {p:<42}{seconds / total:>7.1%}"
      + "".join(f"{by_kind[(p, k)] / total:>20.1%}" for k in kinds)
    )
