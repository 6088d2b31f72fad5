"""anytime.lm.host_memory: freed blocks are reused (no page faults), the losses are unchanged."""

import json
import os
import subprocess
import sys

import pytest

from anytime.lm import host_memory

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
glibc_only = pytest.mark.skipif(host_memory._glibc() is None, reason="the C library is not glibc")

# On a worker thread: malloc, fill and free a 64 MiB block (above glibc's largest mmap
# threshold, 32 MiB) 10 times, through the C library itself; print those rounds' minor faults.
_FAULTS = """
import ctypes, resource, sys, threading
from anytime.lm import host_memory
if sys.argv[1] == "keep":
  assert host_memory.keep_freed_memory()
libc = host_memory._glibc()
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 64 * 2**20
def block():
  p = libc.malloc(size)
  ctypes.memset(p, 1, size)
  libc.free(p)
def rounds():  # on a worker thread, as XLA runs a step (a thread's own arena, by default)
  block()  # the first block maps its pages in either way
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(10):
    block()
  print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
worker = threading.Thread(target=rounds)
worker.start()
worker.join()
"""


def _faults(mode: str) -> int:
  out = subprocess.run(
    [sys.executable, "-c", _FAULTS, mode], cwd=_ROOT, capture_output=True, text=True, check=True
  )
  return int(out.stdout)


@glibc_only
def test_a_freed_block_is_reused_without_page_faults():
  default, keep = _faults("default"), _faults("keep")
  # glibc's default maps each block afresh: at least one fault per 2 MiB (one per 4 KiB page
  # without transparent huge pages); kept, every block reuses the first one's mapped pages.
  assert default >= 10 * 32 and keep * 20 < default, (default, keep)


def _losses(workdir, keep: bool) -> list[float]:
  args = "model=micro,data=synthetic,unit=steps,horizon=5"
  command = [
    sys.executable, "-m", "anytime.lm", f"--config=configs/lm.py:{args}", f"--workdir={workdir}",
    f"--keep_freed_memory={str(keep).lower()}", "--config.log_every=1", "--config.eval_points=2",
    "--config.eval_batches=2", "--config.checkpoint_every=0", "--cpu_devices=0",
    "--config.opt.warmup_steps=2",
  ]  # fmt: skip
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run(command, cwd=_ROOT, env=env, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr[-2000:]
  values = []
  with open(os.path.join(workdir, "train.jsonl")) as f:
    values += [(r["loss"], r["grad_norm"]) for r in map(json.loads, f)]
  with open(os.path.join(workdir, "eval.jsonl")) as f:  # the last iterate and every average
    values += [sorted(r["loss"].items()) for r in map(json.loads, f) if r.get("kind") == "eval"]
  return values


@glibc_only
def test_the_trainer_computes_the_same_losses_bitwise_with_and_without(tmp_path):
  """micro's step has temporaries of MiBs, which glibc's default mmaps and this keeps."""
  kept = _losses(str(tmp_path / "keep"), keep=True)
  default = _losses(str(tmp_path / "default"), keep=False)
  assert len(kept) == 5 + 4 and kept == default  # exact float equality, every record
