"""Training rows of an in-memory token stream (the synthetic source), random access by (epoch, row).

anytime.lm.data's train iterator reads row ``r`` of epoch ``e`` through these; each epoch's
offset depends only on (seed, epoch), so any row is reproducible on its own. Row datasets on disk
have their rows fixed by prepare instead (anytime.lm.row_files.StoredRows; docs/data.md).
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["WindowRows", "mix_seed"]


def mix_seed(seed: int) -> int:
  """A well-mixed 32-bit seed (grain's shuffle takes [0, 2**32)) from any non-negative int."""
  return int(np.random.SeedSequence(seed).generate_state(1)[0])


class WindowRows:
  """Epoch e: windows tokens[o_e + r*L : o_e + r*L + L + 1], o_e in [0, L) random per epoch."""

  def __init__(self, tokens: np.ndarray, seq_len: int, seed: int):
    self.tokens, self.seq_len, self.seed = tokens, seq_len, seed
    n = len(tokens)
    # With room for any offset use (n - L) // L rows; short splits fall back to offset 0.
    self.random_offset = (n - seq_len) // seq_len >= 1
    self.rows_per_epoch = (n - seq_len) // seq_len if self.random_offset else (n - 1) // seq_len
    self._offsets: dict[int, int] = {}
    self._lock = threading.Lock()

  def offset(self, epoch: int) -> int:
    if not self.random_offset:
      return 0
    with self._lock:  # grain's reader threads share this object
      if epoch not in self._offsets:  # a Generator per row would cost more than the read
        if len(self._offsets) > 64:
          self._offsets.clear()
        self._offsets[epoch] = int(
          np.random.default_rng([self.seed, epoch, 1]).integers(self.seq_len)
        )
      return self._offsets[epoch]

  def start(self, epoch: int, row: int) -> int:
    return self.offset(epoch) + row * self.seq_len

  def __call__(self, epoch: int, row: int) -> np.ndarray:
    s = self.start(epoch, row)
    return np.asarray(self.tokens[s : s + self.seq_len + 1], dtype=np.int32)

  def read(self, epochs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows (epochs[i], rows[i]) as int32[n, seq_len + 1] (the batched interface of StoredRows)."""
    return np.stack([self(int(e), int(r)) for e, r in zip(epochs, rows, strict=True)])
