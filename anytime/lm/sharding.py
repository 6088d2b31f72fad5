"""Device mesh, logical-axis rules and shardings for params, optimizer state and batches.

One mesh with axes ``(data, fsdp, tensor)`` and ``Auto`` axis types (under
``Explicit`` axes every gather and integer-label loss would need an explicit
``out_sharding``, docs/design.md section 7). Parameters carry logical axis names
(:mod:`anytime.lm.model`); :data:`RULES` maps them to mesh axes. A dimension
that the mapped mesh axes do not divide is replicated instead. The batch is
split over ``data x fsdp``; optimizer-state leaves that mirror a parameter
(Adam moments, every average of ``with_averaging``) get that parameter's
sharding, everything else (counts, hyper-parameters) is replicated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# logical axis -> mesh axes (None: replicated).
RULES: dict[str, Any] = {
  "batch": BATCH_AXES,
  "vocab": "tensor",
  "embed": "fsdp",
  "heads": "tensor",
  "mlp": "tensor",
  "norm": None,
}


def set_cpu_devices(n: int) -> None:
  """Splits the host CPU into ``n`` XLA devices (-1: one per core; 0: leave JAX's default).

  Must run before anything starts a JAX backend (``jax.devices()`` and the like).
  """
  if isinstance(n, bool) or not isinstance(n, int) or n < -1:
    raise ValueError(f"cpu_devices={n!r} must be -1 (one per core), 0 (default) or >= 1.")
  if n:
    jax.config.update("jax_num_cpu_devices", host_cores() if n == -1 else n)


def host_cores() -> int:
  """The cores this process may run on (its affinity mask: a pinned job sees its own)."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Below this many tokens per device per step, splitting the host costs more than it gains
# (tiny, 64 tokens per device: 0.80x; micro and nano, 2,048: 1.03-1.08x; docs/performance.md).
MIN_TOKENS_PER_CPU_DEVICE = 1024


def auto_cpu_devices(mesh: Sequence[int], batches: Sequence, seq_len: int, cores: int) -> int:
  """Devices for the trainer's default ``--cpu_devices``: ``cores`` or 0 (JAX's one device).

  One XLA:CPU device per core is how a one-process CPU run uses every core (XLA runs a batched
  matmul, the attention products, on one thread; the 15m step is 1.15x faster this way,
  docs/performance.md). Taken only when the mesh's ``-1`` axis is ``data`` or ``fsdp``, every
  batch in ``batches`` (train micro-batch, eval batch) splits evenly over the resulting
  data x fsdp shards, and each device gets at least :data:`MIN_TOKENS_PER_CPU_DEVICE` tokens
  of the train micro-batch; otherwise the run keeps one device.
  """
  if cores < 2 or isinstance(seq_len, bool) or not isinstance(seq_len, int):
    return 0  # a malformed seq_len is the config validation's to report
  try:
    mesh = tuple(mesh)
    if len(mesh) != 3 or -1 not in mesh[:2]:
      return 0
    data, fsdp, _ = resolve_mesh_shape(mesh, cores)
  except (TypeError, ValueError):  # likewise a malformed mesh
    return 0
  shards = data * fsdp
  ok = all(isinstance(b, int) and b >= 1 and b % shards == 0 for b in batches)
  return cores if ok and batches[0] * seq_len >= MIN_TOKENS_PER_CPU_DEVICE * shards else 0


def resolve_mesh_shape(shape: Sequence[int], num_devices: int) -> tuple[int, int, int]:
  """(data, fsdp, tensor) with at most one -1 (= the devices left), validated."""
  shape = tuple(int(s) for s in shape)
  if len(shape) != 3 or any(s == 0 or s < -1 for s in shape) or shape.count(-1) > 1:
    raise ValueError(
      f"mesh=(data, fsdp, tensor)={shape} must be three positive sizes, one of them may be -1."
    )
  if -1 in shape:
    known = math.prod(s for s in shape if s != -1)
    if num_devices % known:
      raise ValueError(f"mesh={shape}: {num_devices} devices are not divisible by {known}.")
    shape = tuple(num_devices // known if s == -1 else s for s in shape)
  if math.prod(shape) > num_devices:
    raise ValueError(
      f"mesh={shape} needs {math.prod(shape)} devices but only {num_devices} are available."
    )
  return shape  # type: ignore[return-value]


def make_mesh(
  shape: Sequence[int], devices: Sequence[jax.Device] | None = None
) -> jax.sharding.Mesh:
  """A (data, fsdp, tensor) mesh with Auto axes over the first prod(shape) devices."""
  devices = list(jax.devices() if devices is None else devices)
  shape = resolve_mesh_shape(shape, len(devices))
  n = math.prod(shape)
  if jax.process_count() > 1 and n != len(devices):
    raise ValueError(f"mesh={shape} must use all {len(devices)} devices in a multi-process run.")
  return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices[:n])


def logical_to_spec(
  logical: Sequence[str | None], shape: Sequence[int], mesh: jax.sharding.Mesh
) -> PartitionSpec:
  """PartitionSpec for a value with these logical axes; non-divisible dims are replicated."""
  spec = []
  used: set[str] = set()
  for name, size in zip(logical, shape, strict=True):
    axes = RULES.get(name) if name is not None else None
    if axes is None:
      spec.append(None)
      continue
    axes = (axes,) if isinstance(axes, str) else tuple(axes)
    axes = tuple(a for a in axes if mesh.shape[a] > 1 and a not in used)
    if not axes or size % math.prod(mesh.shape[a] for a in axes):
      spec.append(None)
      continue
    used.update(axes)
    spec.append(axes[0] if len(axes) == 1 else axes)
  return PartitionSpec(*spec)


def constrain(x: jax.Array, logical: Sequence[str | None]) -> jax.Array:
  """``x`` constrained to the mesh axes of its logical axes, inside a mesh context; else ``x``.

  Without these constraints on the activations XLA is free to propagate a parameter's
  sharding into them: under FSDP the embedding table is split over its ``embed`` (D) axis, and
  the residual stream followed it, every chip then holding the WHOLE batch with a slice of D
  (1.7x the data-parallel memory; docs/lm.md). Constraining the stream to ``batch`` keeps
  each chip on its own rows, the weights all-gathered for each matmul.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or x.ndim != len(logical):
    return x
  return jax.lax.with_sharding_constraint(x, logical_to_spec(logical, x.shape, mesh))


def in_mesh(fn, mesh: jax.sharding.Mesh):
  """``fn`` traced with ``mesh`` as the context mesh, so :func:`constrain` applies inside it."""

  def wrapped(*args, **kwargs):
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
      return fn(*args, **kwargs)

  return wrapped


def param_shardings(abstract_state: nnx.State, mesh: jax.sharding.Mesh) -> dict:
  """Pure dict of NamedSharding, one per parameter, from the logical-axis metadata."""

  def one(var):
    logical = var.get_metadata().get("out_sharding") or (None,) * len(var.shape)
    return NamedSharding(mesh, logical_to_spec(logical, var.shape, mesh))

  shardings = jax.tree.map(one, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable))
  return nnx.to_pure_dict(shardings, extract_fn=lambda x: x)


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """[B, L] arrays: B split over data x fsdp."""
  return NamedSharding(mesh, PartitionSpec(BATCH_AXES, None))


def like_params(tree: Any, params: dict, shardings: dict, mesh: jax.sharding.Mesh) -> Any:
  """Shardings for ``tree`` (e.g. an abstract optimizer state).

  A leaf whose key path ends with a parameter's key path and has that
  parameter's shape gets the parameter's sharding; any other leaf is replicated.
  """
  by_path = {}
  for (path, p), (_, s) in zip(
    jax.tree_util.tree_flatten_with_path(params)[0],
    jax.tree_util.tree_flatten_with_path(shardings)[0],
    strict=True,
  ):
    by_path[_keys(path)] = (tuple(p.shape), s)
  depth = max(len(k) for k in by_path)

  def one(path, leaf):
    keys = _keys(path)
    for n in range(min(depth, len(keys)), 0, -1):
      hit = by_path.get(keys[-n:])
      if hit is not None and hit[0] == tuple(np.shape(leaf)):
        return hit[1]
    return replicated(mesh)

  return jax.tree_util.tree_map_with_path(one, tree)


def _keys(path) -> tuple:
  out = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        out.append(getattr(k, attr))
        break
    else:
      out.append(str(k))
  return tuple(out)


def global_batch(local: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """Global arrays from this process's rows of the batch (its share of data x fsdp)."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}
