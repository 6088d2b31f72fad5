"""Training rows of a token split, random access by (epoch, row): windows or packed documents.

anytime.lm.data's train iterator reads row ``r`` of epoch ``e`` through these; each epoch's
offset or document order depends only on (seed, epoch), so any row is reproducible on its own
(docs/data.md, "Sampling").
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["DocumentRows", "WindowRows", "mix_seed"]


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


class DocumentRows:
  """Epoch e: documents (spans ending in EOS) in a random order, packed, cut every L tokens."""

  def __init__(self, tokens: np.ndarray, seq_len: int, seed: int, eos_id: int):
    self.tokens, self.seq_len, self.seed = tokens, seq_len, seed
    ends = np.flatnonzero(np.asarray(tokens) == eos_id) + 1
    if not ends.size or ends[-1] != len(tokens):
      ends = np.append(ends, len(tokens))
    self.starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    self.lengths = (ends - self.starts).astype(np.int64)
    self.rows_per_epoch = (len(tokens) - 1) // seq_len
    self._orders: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    self._lock = threading.Lock()

  def order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(document permutation, packed start offsets) of the epoch."""
    with self._lock:
      if epoch not in self._orders:
        perm = np.random.default_rng([self.seed, epoch, 2]).permutation(len(self.starts))
        cum = np.concatenate([[0], np.cumsum(self.lengths[perm])])
        if len(self._orders) >= 3:
          self._orders.pop(min(self._orders))
        self._orders[epoch] = (perm, cum)
      return self._orders[epoch]

  def __call__(self, epoch: int, row: int) -> np.ndarray:
    perm, cum = self.order(epoch)
    begin, end = row * self.seq_len, row * self.seq_len + self.seq_len + 1
    k = int(np.searchsorted(cum, begin, side="right")) - 1
    pieces, pos = [], begin
    while pos < end:
      doc = perm[k]
      offset = pos - cum[k]
      take = min(int(self.lengths[doc] - offset), end - pos)
      first = self.starts[doc] + offset
      pieces.append(self.tokens[first : first + take])
      pos += take
      k += 1
    return np.concatenate(pieces).astype(np.int32)
