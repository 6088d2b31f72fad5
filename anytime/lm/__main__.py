"""``python -m anytime.lm --config=configs/lm.py:ARGS --workdir=DIR [--dry_run]``.

Trains (resuming from DIR when it holds a checkpoint) or, with ``--dry_run``,
prints the start-up report only. Several processes (one per host, or several
on localhost for tests) join with ``--num_processes``, ``--process_id`` and
``--coordinator``; on CPU they use gloo collectives.

Any config field is set with ``--config.FIELD=VALUE`` (e.g. ``--config.opt.lr=3e-4``); the
fields and what each means are listed, with comments, in anytime/configs/lm.py. A mistake on
the command line (unknown field, missing config file, bad workdir) is one line on stderr and
exit code 2, before anything starts (anytime/lm/usage.py).
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/lm.py:ARGS", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics)")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "print the start-up report only")
_COORDINATOR = flags.DEFINE_string("coordinator", "", "host:port of process 0 (multi-process)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "processes in the run")
_PROCESS_ID = flags.DEFINE_integer("process_id", 0, "this process's index")
_CPU_DEVICES = flags.DEFINE_integer(
  "cpu_devices",
  None,
  "split the host CPU into this many XLA devices (-1: one per core; 0: JAX's default, one). "
  "The mesh's -1 axis spans them, i.e. data parallelism over the cores: XLA:CPU runs a batched "
  "matmul (attention) on one thread, so one device per core is how it uses every core "
  "(docs/performance.md). Results equal the one-device run up to float rounding. Unset: one "
  "per core when the run is one process, the mesh's -1 axis is data or fsdp and the batches "
  "split evenly over the cores, at least 1,024 tokens per device; else one.",
)
_KEEP_FREED_MEMORY = flags.DEFINE_bool(
  "keep_freed_memory",
  True,
  "glibc malloc keeps freed memory for reuse (no mmap per large block, no trimming), so each "
  "CPU step reuses mapped pages instead of page-faulting its temporaries in again "
  "(anytime/lm/host_memory.py; same losses bitwise; a micro step 1.42x faster on one core). "
  "False: glibc's defaults.",
)
_DISTRIBUTED = flags.DEFINE_bool(
  "distributed", False, "call jax.distributed.initialize() with cluster auto-detection (TPU, SLURM)"
)


def _configure_cpu_devices() -> None:
  """Applies --cpu_devices (or its default); must run before anything starts a JAX backend."""
  from anytime.lm import plan as plan_lib
  from anytime.lm import sharding

  n = _CPU_DEVICES.value
  if n is None:  # the default: one device per core when the run splits evenly over them
    one_process = _NUM_PROCESSES.value <= 1 and not _DISTRIBUTED.value
    cfg = _CONFIG.value
    try:
      batches = plan_lib.batch_sizes(cfg)
    except ValueError as e:  # reported before any compute, as train.validate would
      _refuse(str(e))
    n = sharding.auto_cpu_devices(cfg.mesh, batches, cfg.model.seq_len, sharding.host_cores())
    n = n if one_process else 0
  try:
    sharding.set_cpu_devices(n)
  except ValueError as e:
    raise app.UsageError(f"--{e}") from None


def _initialize_distributed() -> None:
  import jax

  if _DISTRIBUTED.value and _NUM_PROCESSES.value <= 1:
    jax.distributed.initialize()
    return
  if _NUM_PROCESSES.value <= 1:
    return
  if not _COORDINATOR.value:
    raise app.UsageError("--num_processes > 1 needs --coordinator=host:port")
  if jax.config.jax_platforms in (None, "", "cpu") or "cpu" in str(jax.config.jax_platforms):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
    coordinator_address=_COORDINATOR.value,
    num_processes=_NUM_PROCESSES.value,
    process_id=_PROCESS_ID.value,
  )


def _refuse(message: str) -> None:
  """One line on stderr and exit code 2: a command-line mistake, reported before any start-up."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, preceded by :mod:`anytime.lm.usage`'s checks (see the docstring)."""
  from anytime.lm import usage

  help_flag = usage.wants_help(argv)
  if help_flag:
    app.usage(shorthelp=help_flag not in ("-helpfull", "--helpfull"), writeto_stdout=True)
    sys.exit(0)
  try:
    usage.check_config(argv)  # on the arguments as typed, so messages quote them
    return flags.FLAGS(_resolve_config_argv(argv))
  except ValueError as e:
    _refuse(str(e))
  except flags.Error as e:  # e.g. a value of the wrong type: "flag --config.opt.lr=abc: ..."
    _refuse(str(e).splitlines()[0])
  return []  # not reached


def main(argv) -> None:
  from anytime.lm import usage

  if len(argv) > 1:
    _refuse(f"unexpected arguments {argv[1:]}; flags are --name=value (see --help)")
  if not _DRY_RUN.value and not _WORKDIR.value:
    _refuse("--workdir is required (unless --dry_run)")
  if _WORKDIR.value and not _DRY_RUN.value:
    try:
      usage.check_workdir(_WORKDIR.value)
    except ValueError as e:
      _refuse(str(e))
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  if _KEEP_FREED_MEMORY.value:
    from anytime.lm import host_memory

    host_memory.keep_freed_memory()  # before the first allocation of a step
  _configure_cpu_devices()
  _initialize_distributed()
  from anytime.lm import train
  from anytime.lm import workdir as workdir_lib

  try:
    train.run(_CONFIG.value, _WORKDIR.value or "", dry_run=_DRY_RUN.value)
  except ValueError as e:  # the config's values (train.validate), before any compute
    _refuse(str(e))
  except workdir_lib.WorkdirLockedError as e:  # another trainer holds --workdir
    _refuse(str(e))
  except train.NonFiniteLossError as e:  # the run failed, not its input: exit code 1
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(1)


def _resolve_config_argv(argv: list[str]) -> list[str]:
  """``--config=configs/lm.py:ARGS`` finds the shipped config when no such file is here."""
  from anytime import configs

  out = list(argv)
  for i, a in enumerate(out):
    if a.startswith("--config="):
      out[i] = "--config=" + configs.resolve(a[len("--config=") :])
    elif a == "--config" and i + 1 < len(out):
      out[i + 1] = configs.resolve(out[i + 1])
  return out


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
