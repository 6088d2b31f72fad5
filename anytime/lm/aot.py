"""Compile a config's train and eval steps for a named TPU slice on a CPU host, and judge the plan.

``python -m anytime.lm.aot --config=configs/lm.py:model=150m --topology=v5e:4x4 [--mesh=1,16,1]``

libtpu (the optional extra ``tpu``: ``pip install -e '.[tpu]'``) carries the TPU compiler, and
``jax.experimental.topologies.get_topology_desc`` gives the devices of a slice that is not there.
The trainer's own :class:`anytime.lm.train.Trainer` is built on them, so what compiles is the exact
``train_step`` and ``eval_step`` a run on that slice would execute (same shardings, donation, remat
and loss head). From the compiled executables, per chip:

* memory (``memory_analysis()``): arguments (params + optimizer state with the averages + batch),
  temporaries, and the peak = arguments + temporaries + outputs not aliased to a donated
  argument, against the chip's HBM; a plan above ``--max_hbm_fraction`` (85%) is refused;
* matmul FLOPs of the lowered program (:func:`program_flops`, plus the loss head's scan) against
  the ideal (6 N + attention) x tokens / chips of :func:`anytime.lm.model.flops_per_token`: the
  ratio is the remat recompute (~4/3 with full remat, the forward pass twice) plus what XLA adds;
* collective bytes per step, summed over the compiled HLO's all-gather / reduce-scatter /
  all-reduce / all-to-all / collective-permute ops, each counted at its full (unsharded) size,
  ops inside a loop times its trip count. For FSDP the expectation is ~3 x the parameter bytes:
  all-gather for the forward, again for the backward (remat), reduce-scatter of the gradients;
* the tokens/s this is worth at an assumed MFU, and the hours a paper sweep (1-32x) would take.

``--table`` compiles a list of (preset, topology, mesh, remat) cases and writes one markdown table
(results/perf/aot_tpu.md). Without libtpu the command prints how to install it and exits 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import re
import sys
import time

GIB = 2**30
# Per-chip HBM (bytes, as the compiler counts it) and peak bf16 FLOP/s of the TPU generations.
CHIPS = {
  "v4": dict(hbm=32 * GIB, flops=275e12),
  "v5e": dict(hbm=16 * GIB, flops=197e12),
  "v5p": dict(hbm=95 * GIB, flops=459e12),
  "v6e": dict(hbm=32 * GIB, flops=918e12),
}
INSTALL = "pip install -e '.[tpu]'  # libtpu: the TPU compiler, runs on a CPU host"
COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
DTYPE_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "pred": 1, "s8": 1, "u8": 1,
               "f64": 8, "s64": 8, "u64": 8}  # fmt: skip
# (preset, topology, mesh, remat, overrides) of `--table`: the paper's two models at the paper's
# global batch, on the slices of docs/lm.md. 300m on v5e-16 needs two micro-batches of 256.
TABLE = (
  ("150m", "v5e:4x4", (16, 1, 1), "full", ()),
  ("150m", "v5e:4x4", (1, 16, 1), "full", ()),
  ("300m", "v5e:4x4", (1, 16, 1), "full", ()),
  ("300m", "v5e:4x4", (1, 16, 1), "full", ("grad_accum=2",)),
  ("300m", "v5p:2x2x1", (4, 1, 1), "full", ()),
  ("300m", "v5p:2x2x1", (1, 4, 1), "full", ()),
)


def _shape_bytes(text: str) -> int:
  """Bytes of every array type in an HLO type string, e.g. ``(bf16[8,128], f32[4])``."""
  total = 0
  for dtype, dims in re.findall(r"\b([a-z]+[0-9]*)\[([0-9,]*)\]", text):
    if dtype in DTYPE_BYTES:
      total += DTYPE_BYTES[dtype] * math.prod(int(d) for d in dims.split(",") if d)
  return total


def collective_bytes(hlo: str) -> dict[str, int]:
  """Per-chip bytes of each collective kind in a compiled HLO module (see the module docstring).

  Each op counts max(operand bytes, result bytes), its unsharded size: the gathered array of an
  all-gather, the full gradient of a reduce-scatter. Ops in a while body count x its trip count.
  """
  comps: dict[str, list[str]] = {}
  name = None
  for line in hlo.splitlines():
    head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
    if head and not line.startswith(" "):
      name = head.group(1)
      comps[name] = []
    elif name is not None:
      comps[name].append(line)
  entry = next((ln.split()[1].lstrip("%") for ln in hlo.splitlines() if ln.startswith("ENTRY")), "")

  def visit(comp: str, mult: int, out: dict[str, int], depth: int = 0) -> None:
    for line in comps.get(comp, ()):
      match = re.search(r"=\s*(.*?)\s([a-z\-]+)\(", line)
      if match is None:
        continue
      result, op = match.groups()
      kind = op.removesuffix("-start")
      if kind in COLLECTIVES and not op.endswith("-done"):
        operands = _shape_bytes(line[match.end() :].split("), ")[0])
        result_bytes = _shape_bytes(result)
        if op.endswith("-start"):  # async: the result tuple holds the operands and the outputs
          result_bytes -= operands
        out[kind] = out.get(kind, 0) + mult * max(result_bytes, operands)
      called = re.findall(r"(?:body|calls|to_apply|branch_computations)=\{?%?([\w.\-]+)", line)
      if depth < 8 and op in ("while", "call", "fusion", "conditional", "async-start"):
        trips = re.search(r'"known_trip_count":\{"n":"(\d+)"', line)
        inner = mult * (int(trips.group(1)) if trips and op == "while" else 1)
        for sub in called:
          visit(sub, inner, out, depth + 1)

  out: dict[str, int] = {}
  visit(entry, 1, out)
  return out


class DoesNotFit(Exception):
  """The TPU compiler refused the plan: HBM exhausted (message, preset, mesh, remat)."""


def _tensor_dims(t: str) -> list[int]:
  """``tensor<128x32xbf16>`` -> [128, 32] (a scalar ``tensor<f32>`` -> [])."""
  return [int(d) for d in t.split("<", 1)[1].rstrip(">").split("x")[:-1]]


def program_flops(stablehlo: str) -> float:
  """Matmul FLOPs of a lowered (StableHLO) program: 2 x result size x contracted size per
  ``dot_general``, functions counted once per call (remat's recompute is explicit here).

  The lowered program is the one the compiler receives: global shapes, before partitioning, so
  divide by the chips. A while loop's body counts once (callers add the trips they know).
  """
  funcs: dict[str, list[str]] = {}
  name = None
  for line in stablehlo.splitlines():
    head = re.search(r"func\.func (?:public |private )?@([\w.$\-]+)\(", line)
    if head:
      name = head.group(1)
      funcs[name] = []
    elif name is not None:
      funcs[name].append(line)

  def total(fn: str, depth: int = 0) -> float:
    flops = 0.0
    for line in funcs.get(fn, ()):
      if "dot_general" in line:
        dims = re.search(r"contracting_dims = \[([0-9, ]*)\]", line)
        types = re.findall(r"tensor<[^>]*>", line.split(" : ", 1)[-1])
        if dims and len(types) >= 3:
          lhs, out = _tensor_dims(types[0]), _tensor_dims(types[-1])
          contracted = math.prod(lhs[int(i)] for i in dims.group(1).split(",") if i.strip())
          flops += 2.0 * math.prod(out) * contracted
      for callee in re.findall(r"call @([\w.$\-]+)\(", line):
        if depth < 32:
          flops += total(callee, depth + 1)
    return flops

  return total("main")


@dataclasses.dataclass
class Report:
  """Per-chip numbers of one compiled plan."""

  preset: str
  topology: str
  mesh: tuple
  remat: str
  grad_accum: int
  chips: int
  hbm: int
  arguments: int
  temporaries: int
  peak: int
  eval_peak: int
  flops: float
  ideal_flops: float
  collectives: dict
  tokens_per_step: int
  param_bytes: int
  seconds: float

  @property
  def headroom(self) -> float:
    return 1 - self.peak / self.hbm

  @property
  def flop_overhead(self) -> float:
    return self.flops / self.ideal_flops


def require_libtpu() -> None:
  """Exit 2 with the install line when the TPU compiler is not installed."""
  if importlib.util.find_spec("libtpu") is None:
    print(f"error: compiling for a TPU topology needs libtpu; install it with: {INSTALL}",
          file=sys.stderr)  # fmt: skip
    sys.exit(2)


def chip_of(topology: str) -> dict:
  kind = topology.split(":")[0]
  if kind not in CHIPS:
    raise ValueError(f"topology={topology!r}: the chip must be one of {sorted(CHIPS)} (v5e:4x4).")
  return CHIPS[kind]


def topology_devices(topology: str) -> list:
  import os

  from jax.experimental import topologies

  chip_of(topology)
  # Compiling touches no chip: let several compiles (and a test run) share libtpu.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  return list(topologies.get_topology_desc(platform="tpu", topology_name=topology).devices)


def _memory(compiled) -> tuple[int, int, int]:
  """(arguments, temporaries, peak) bytes per chip of a compiled executable."""
  m = compiled.memory_analysis()
  outputs = max(0, m.output_size_in_bytes - m.alias_size_in_bytes)
  peak = m.argument_size_in_bytes + m.temp_size_in_bytes + outputs + m.generated_code_size_in_bytes
  return m.argument_size_in_bytes, m.temp_size_in_bytes, peak


def compile_plan(cfg, devices, mesh_shape, *, preset="", topology="", hbm=0) -> Report:
  """Compiles cfg's train and eval steps on ``devices`` with ``mesh_shape``; the numbers."""
  import jax

  from anytime.lm import model as model_lib
  from anytime.lm import plan as plan_lib
  from anytime.lm import sharding as sharding_lib
  from anytime.lm import train

  start = time.time()
  mcfg = plan_lib.model_config(cfg)
  counts = model_lib.param_counts(mcfg)
  plan = plan_lib.make_plan(cfg, counts["non_embedding"])
  mesh = sharding_lib.resolve_mesh_shape(mesh_shape, len(devices))
  for rows in (plan.micro_batch, plan.eval_batch_size):
    if rows % (mesh[0] * mesh[1]):
      raise ValueError(f"a batch of {rows} rows does not split over data x fsdp = {mesh[:2]}.")
  trainer = train.Trainer(cfg, mcfg, plan, mesh, devices=devices)
  abstract = jax.tree.map(
    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
    trainer.abstract,
    trainer.shardings,
  )
  lowered = trainer.train_step.lower(abstract, trainer.abstract_batch(plan.micro_batch))
  try:
    train_exe = lowered.compile()
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    # The compiler's own verdict (e.g. "HLO temporaries (15.93G) exceeds available HBM").
    raise DoesNotFit(str(e).splitlines()[0], preset or str(cfg.model.preset), tuple(mesh),
                     _remat_name(cfg)) from None  # fmt: skip
  params = jax.tree.map(
    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
    trainer.abstract["params"],
    trainer.shardings["params"],
  )
  eval_exe = trainer.eval_step.lower(params, trainer.abstract_batch(plan.eval_batch_size)).compile()
  arguments, temporaries, peak = _memory(train_exe)
  chips = math.prod(mesh)
  tokens = plan.micro_batch * mcfg.seq_len
  ideal = model_lib.flops_per_token(mcfg) * tokens / chips
  # A while loop's body counts once: the chunked loss head (a scan of K = tokens / chunk steps,
  # each 6 C D V FLOPs: logits, dx, dW) is added for the other K - 1. (XLA's cost_analysis()
  # of the compiled TPU program is not used: it also counts once the loops the TPU compiler
  # makes itself, e.g. the windowed all-gather matmuls of FSDP, and read 0.65x for 150m.)
  chunk = min(plan_lib.loss_chunk(cfg) or tokens, tokens)
  loop_flops = (math.ceil(tokens / chunk) - 1) * 6 * chunk * mcfg.d_model * mcfg.vocab_size / chips
  return Report(
    preset=preset or str(cfg.model.preset),
    topology=topology,
    mesh=tuple(mesh),
    remat=_remat_name(cfg),
    grad_accum=int(cfg.grad_accum),
    chips=chips,
    hbm=hbm,
    arguments=arguments,
    temporaries=temporaries,
    peak=peak,
    eval_peak=_memory(eval_exe)[2],
    flops=program_flops(lowered.as_text()) / chips + loop_flops,
    ideal_flops=ideal,
    collectives=collective_bytes(train_exe.as_text()),
    tokens_per_step=plan.micro_batch * mcfg.seq_len,
    param_bytes=4 * counts["total"],
    seconds=time.time() - start,
  )


def _remat_name(cfg) -> str:
  if not cfg.model.remat:
    return "none"
  return str(cfg.model.get("remat_policy", "full"))


def advice(r: Report, max_fraction: float) -> list[str]:
  """What to change when the plan does not fit (empty when it does)."""
  if r.peak <= max_fraction * r.hbm:
    return []
  return _tips(r.remat, r.mesh)


def _tips(remat: str, mesh: tuple) -> list[str]:
  tips = []
  chips = math.prod(mesh)
  if remat == "none":
    tips.append("--config.model.remat=True (recompute each block in the backward pass)")
  elif remat != "full":
    tips.append("--config.model.remat_policy=full (save nothing inside a block)")
  if mesh[1] < chips:
    tips.append(f"--mesh=1,{chips},1 (FSDP: shard params, moments and averages over all chips)")
  tips.append("--config.grad_accum=2 (or more: micro-batches; activations shrink by that factor)")
  tips.append("--config.opt.averages_dtype=bfloat16 (the five averages at half the bytes)")
  return tips


def format_report(r: Report, *, mfu: float, max_fraction: float, sweep_tokens: float) -> str:
  chip = chip_of(r.topology)
  coll = sum(r.collectives.values())
  step_s = r.flops / (chip["flops"] * mfu)  # per chip; every chip does its share in parallel
  tokens_s = r.tokens_per_step / (r.ideal_flops / (chip["flops"] * mfu)) if r.ideal_flops else 0
  lines = [
    f"{r.preset} on {r.topology} ({r.chips} chips), mesh (data, fsdp, tensor) = {r.mesh}, "
    f"remat {r.remat}, {r.grad_accum} micro-batch(es): compiled in {r.seconds:.0f} s",
    f"  per chip: arguments {r.arguments / GIB:.2f} GiB, temporaries {r.temporaries / GIB:.2f} "
    f"GiB, peak {r.peak / GIB:.2f} GiB of {r.hbm / GIB:.2f} GiB HBM "
    f"(headroom {100 * r.headroom:.0f}%); eval step peak {r.eval_peak / GIB:.2f} GiB",
    f"  FLOPs per chip per step: {r.flops:.3e} vs ideal (6N + attention) {r.ideal_flops:.3e}: "
    f"{r.flop_overhead:.2f}x",
    f"  collectives per chip per step: {coll / 1e9:.2f} GB ("
    + ", ".join(f"{k} {v / 1e9:.2f}" for k, v in sorted(r.collectives.items()))
    + f"); parameters are {r.param_bytes / 1e9:.2f} GB in float32 "
    f"({coll / max(r.param_bytes, 1):.2f}x)",
    f"  at {100 * mfu:.0f}% MFU: {step_s:.2f} s/step, <= {tokens_s * r.chips:,.0f} tokens/s; "
    f"a sweep of {sweep_tokens / 1e12:.2f}T tokens: "
    f"{sweep_tokens / (tokens_s * r.chips) / 3600:,.0f} slice-hours",
  ]
  tips = advice(r, max_fraction)
  if tips:
    lines.append(
      f"REFUSED: peak {r.peak / GIB:.2f} GiB > {100 * max_fraction:.0f}% of {r.hbm / GIB:.2f} GiB."
      " Change one of: " + "; ".join(tips)
    )
  return "\n".join(lines)


def table_row(r: Report) -> str:
  coll = sum(r.collectives.values())
  return (
    f"| {r.preset} | {r.topology} | {','.join(map(str, r.mesh))} | {r.remat} | {r.grad_accum} | "
    f"{r.arguments / GIB:.2f} | {r.temporaries / GIB:.2f} | {r.peak / GIB:.2f} | "
    f"{100 * r.peak / r.hbm:.0f}% | {r.flop_overhead:.2f}x | {coll / 1e9:.2f} | "
    f"{coll / r.param_bytes:.2f}x |"
  )


TABLE_HEAD = (
  "| preset | topology | mesh (data,fsdp,tensor) | remat | micro-batches | arguments GiB | "
  "temporaries GiB | peak GiB | peak / HBM | FLOPs / ideal | collectives GB/step/chip | "
  "collectives / fp32 params |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def load_config(spec: str, overrides: list[str]):
  """``configs/lm.py:ARGS`` plus ``FIELD=VALUE`` overrides -> the config (validated fields)."""
  from anytime.sweeps import common

  if ":" not in spec and "=" in spec:
    spec = "configs/lm.py:" + spec
  path, _, arg = spec.partition(":")
  if not path.endswith("lm.py"):
    raise ValueError(f"--config={spec!r}: expected configs/lm.py:ARGS")
  pairs = []
  for item in overrides:
    if "=" not in item:
      raise ValueError(f"override {item!r}: expected FIELD=VALUE")
    pairs.append(tuple(item.split("=", 1)))
  return common.lm_config(arg, tuple(pairs))


def parse_args(argv=None):
  p = argparse.ArgumentParser(prog="python -m anytime.lm.aot", description=__doc__.splitlines()[0])
  p.add_argument("--config", default="configs/lm.py:model=150m", help="configs/lm.py:ARGS")
  p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                 help="config override (repeatable), e.g. --set model.remat=True")  # fmt: skip
  p.add_argument("--topology", default="v5e:4x4", help="TPU slice, e.g. v5e:4x4, v5p:2x2x1")
  p.add_argument("--mesh", default="", help="data,fsdp,tensor (default: the config's mesh)")
  p.add_argument("--mfu", type=float, default=0.4, help="assumed model FLOPs utilisation")
  p.add_argument("--max_hbm_fraction", type=float, default=0.85, help="refuse above this")
  p.add_argument("--table", default="", metavar="PATH", help="compile the TABLE cases, write PATH")
  args, rest = p.parse_known_args(argv)
  for item in rest:  # --config.FIELD=VALUE, as the trainer spells overrides
    if not item.startswith("--config.") or "=" not in item:
      p.error(f"unrecognized argument {item!r}")
    args.set.append(item.removeprefix("--config."))
  if not 0 < args.mfu <= 1 or not 0 < args.max_hbm_fraction <= 1:
    p.error("--mfu and --max_hbm_fraction must be in (0, 1]")
  return args


def _sweep_tokens(cfg) -> float:
  """Tokens trained by the model's paper sweep (anytime/configs/sweeps.py), 0 if none."""
  from anytime.configs import sweeps
  from anytime.sweeps import common

  if cfg.model.preset not in ("150m", "300m"):
    return 0.0
  return float(sum(r.trained_tokens for r in common.expand(sweeps.get_config(cfg.model.preset))))


def main(argv=None) -> int:
  args = parse_args(argv)
  require_libtpu()
  cases = TABLE if args.table else [(None, args.topology, args.mesh, None, ())]
  rows, refused = [], False
  for preset, topology, mesh, remat, extra in cases:
    overrides = list(args.set) + list(extra)
    spec = f"configs/lm.py:model={preset}" if preset else args.config
    if remat is not None:
      overrides += ["model.remat=True", f"model.remat_policy={remat}"]
    try:
      cfg = load_config(spec, overrides)
      chip = chip_of(topology)
      if isinstance(mesh, str):
        mesh = tuple(int(x) for x in mesh.split(",")) if mesh else tuple(cfg.mesh)
      r = compile_plan(cfg, topology_devices(topology), mesh, topology=topology, hbm=chip["hbm"])
    except ValueError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
    except DoesNotFit as e:
      message, name, mesh, remat = e.args
      print(f"{name} on {topology}, mesh {mesh}, remat {remat}: REFUSED by the TPU compiler: "
            f"{message} Change one of: " + "; ".join(_tips(remat, mesh)), flush=True)  # fmt: skip
      rows.append(f"| {name} | {topology} | {','.join(map(str, mesh))} | {remat} | | "
                  + "does not fit: " + message.split(":")[-1].strip() + " |" * 7)  # fmt: skip
      refused = True
      continue
    text = format_report(r, mfu=args.mfu, max_fraction=args.max_hbm_fraction,
                         sweep_tokens=_sweep_tokens(cfg))  # fmt: skip
    print(text, flush=True)
    refused |= "REFUSED" in text
    rows.append(table_row(r))
  if args.table:
    with open(args.table, "w") as f:
      f.write(
        "# The paper's models compiled for TPU slices by libtpu on a CPU host\n\n"
        "Written by `python -m anytime.lm.aot --table " + args.table + "` (docs/lm.md). Per chip,"
        " for the train step at the paper's batch with the five EMA averages kept.\n\n"
        + TABLE_HEAD
        + "\n"
        + "\n".join(rows)
        + "\n"
      )
  return 1 if refused else 0


if __name__ == "__main__":
  sys.exit(main())
