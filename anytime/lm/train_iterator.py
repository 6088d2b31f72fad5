"""The trainer's data iterator: a grain dataset of per-step batches plus the step, resumable.

Kept apart from anytime.lm.data (configs, sources, which rows form a step) because this is the
part a checkpoint stores: its state is the step and a fingerprint of the batch sequence, so a
resumed run reads exactly the batches an uninterrupted one would have (docs/data.md, "Interface").
"""

from __future__ import annotations

import grain
import numpy as np

STATE_FORMAT = "anytime.lm.data/1"

__all__ = ["STATE_FORMAT", "TrainIterator"]


class TrainIterator:
  """Endless training batches for one process; get_state/set_state make a resumed run identical.

  The state is a JSON-serialisable dict holding the number of batches returned so far (the
  step) and a fingerprint of what defines the batch sequence (source, sampling, seq_len, global
  batch size, seed, data identity); set_state refuses a state from a different sequence. The
  process count is not part of it: a state saved by N processes resumes on M.
  """

  def __init__(self, dataset: grain.MapDataset, read_options: grain.ReadOptions, fingerprint):
    self._dataset = dataset  # local batches: element t is this process's part of global step t
    self._read_options = read_options
    self._fingerprint = fingerprint
    self._step = 0
    self._iterator = None

  def _start(self) -> None:
    if self._iterator is not None and hasattr(self._iterator, "close"):
      self._iterator.close()
    ds = self._dataset[self._step :]
    self._iterator = iter(ds.to_iter_dataset(self._read_options))

  def __iter__(self) -> TrainIterator:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._iterator is None:
      self._start()
    batch = next(self._iterator)
    self._step += 1
    return batch

  @property
  def step(self) -> int:
    """Batches returned so far."""
    return self._step

  def get_state(self) -> dict:
    return dict(format=STATE_FORMAT, step=self._step, fingerprint=dict(self._fingerprint))

  def set_state(self, state: dict) -> None:
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
      raise ValueError(f"not a data-iterator state of format {STATE_FORMAT!r}: {state!r}")
    theirs = state.get("fingerprint", {})
    differ = {k: (theirs.get(k), v) for k, v in self._fingerprint.items() if theirs.get(k) != v}
    if differ:
      raise ValueError(
        "the saved data-iterator state belongs to a different batch sequence; (saved, now): "
        f"{differ}"
      )
    step = state.get("step")
    if not isinstance(step, int) or step < 0:
      raise ValueError(f"data-iterator state has step={step!r}, expected an integer >= 0")
    self._step = step
    self._start()

  def close(self) -> None:
    if self._iterator is not None and hasattr(self._iterator, "close"):
      self._iterator.close()
    self._iterator = None
