"""Keep freed host memory in the process, so a CPU train step stops page-faulting its temporaries.

XLA:CPU allocates an executable's temporaries afresh on every call and frees them after. glibc
serves a large block (above its mmap threshold, at most 32 MiB) with a fresh ``mmap`` and
unmaps it on ``free``, and trims the top of its heaps back to the kernel: so every step touches
new pages and the kernel zero-fills each one on its first write (a minor page fault, ~1-2 us
under a hypervisor). Measured on M4 (docs/performance.md, "Host memory"): 35k faults per step of
a Figure-2 ``micro`` run, 16k per forward + backward of one ``15m`` MLP (where they cost as much
as the GELU between its matmuls).

:func:`keep_freed_memory` tells glibc to serve every block from its heap (``M_MMAP_MAX`` 0),
never to trim it (``M_TRIM_THRESHOLD`` 2 GiB - 1) and to give every thread the one main heap
(``M_ARENA_MAX`` 1): XLA runs the step on its worker threads, and a thread's own arena lives in
mmapped heaps that glibc unmaps as they empty, whatever the thresholds. Freed blocks are then
reused by the next step with their pages already mapped: a ``micro`` step went from 30.9k faults
to 0. The process keeps its peak heap (the trainer's working set) instead of handing it back
between steps. It changes where buffers live, not what is
computed: the trainer's losses are bitwise the same with and without it
(``tests/lm/test_host_memory.py``). A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
NEVER_TRIM = 2**31 - 1  # mallopt takes a C int


def _glibc():
  if not sys.platform.startswith("linux"):
    return None
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    version = libc.gnu_get_libc_version  # absent from musl and other C libraries
  except (OSError, AttributeError):
    return None
  version.restype = ctypes.c_char_p
  return libc


def keep_freed_memory() -> bool:
  """One heap-only, never-trimmed glibc arena for this process; whether it was applied.

  False where the C library is not glibc. Takes effect for the allocations made after the call
  (call it before the first train step) and cannot be undone: glibc's own default adapts its
  mmap threshold as blocks are freed, which no mallopt call restores, so a process that wants
  the default does not call this.
  """
  libc = _glibc()
  if libc is None:
    return False
  values = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: NEVER_TRIM, M_ARENA_MAX: 1}
  return all(libc.mallopt(param, value) == 1 for param, value in values.items())
