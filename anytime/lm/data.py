"""Training and validation batches for the LM: row datasets (the one format), the stdlib corpus, a
Markov chain.

Interface (what the trainer calls; docs/data.md has the details):

    validate_data_config(data_cfg, *, seq_len=None, global_batch_size=None, process_index=0,
                         process_count=1) -> None
    vocab_size(data_cfg) -> int
    make_train_iterator(data_cfg, *, seq_len, global_batch_size, seed, process_index=0,
                        process_count=1) -> TrainIterator   (get_state() / set_state(state))
    make_eval_batches(data_cfg, *, seq_len, batch_size, num_batches, process_index=0,
                      process_count=1) -> list[dict]

Every batch is ``dict(inputs=int32[B_local, seq_len], targets=int32[B_local, seq_len])`` where
``targets[:, t] == inputs[:, t + 1]`` within a row: a row is seq_len + 1 consecutive tokens.

Sources (data_cfg.source): "tokens" reads a row dataset (ArrayRecord rows + meta.json, the one
format: anytime.lm.row_files; ``python -m anytime.lm.prepare`` writes it); "stdlib" is the Python
standard library's sources, prepared into that same format and cached on first use
(anytime.lm.corpus); "synthetic" is a random first-order Markov chain with a known entropy rate,
generated in memory (no file).

Rows: a row dataset holds documents packed end to end with EOS, cut into rows of seq_len + 1
tokens with stride seq_len when it was prepared; an epoch visits every row once in a random order
(grain's global shuffle, by (seed, epoch)). The synthetic stream is cut the same way from a random
offset in [0, seq_len) drawn per epoch. The global batch at step t is the rows t*B .. t*B + B - 1
of that endless sequence, and process p reads only its slice p*B_local .. (p+1)*B_local - 1, so
which rows make up a step does not depend on the number of processes, and the iterator state is
just the step. Rows are read a batch at a time (one ArrayRecord call and one vectorised id check
per batch, anytime.lm.row_files).

Validation batches are the first rows (no shuffling) of the held-out split, which never shares a
document with the training split.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from typing import Any

import grain
import ml_collections
import numpy as np

from anytime.lm import corpus, row_files
from anytime.lm.rows import WindowRows, mix_seed
from anytime.lm.synthetic import MarkovChain, TokenData, markov_chain, synthetic_data
from anytime.lm.train_iterator import TrainIterator

SOURCES = ("synthetic", "stdlib", "tokens")
SAMPLINGS = ("windows",)


def default_data_config() -> ml_collections.ConfigDict:
  """The data fields of the trainer config, with their defaults (the embedded stdlib corpus)."""
  cfg = ml_collections.ConfigDict()
  # Where tokens come from: "synthetic" (Markov chain, tests), "stdlib" (the Python standard
  # library sources, prepared and cached on first use), "tokens" (a row dataset at `path`).
  cfg.source = "stdlib"
  # "tokens": the row dataset directory (*.array_record, meta.json; python -m anytime.lm.prepare).
  # "stdlib": the cache root under which stdlib-<key>/ is written (default $ANYTIME_CACHE, else
  # ~/.cache/anytime).
  cfg.path = ""
  # "windows" (the only value): rows of seq_len + 1 tokens, stride seq_len, in a shuffled order
  # per epoch. "documents" (a per-token document index, 156 GB for C4) was retired with the flat
  # token files (#28): row datasets are documents packed with EOS by prepare.
  cfg.sampling = "windows"
  # grain read threads (threads, not processes: 2 cores here; 0 reads in the calling thread) and
  # the number of batches read ahead (docs/data.md, "Throughput").
  cfg.num_threads = 1
  cfg.prefetch = 4
  # "synthetic" only: vocabulary (the last id is EOS, the chain uses the others), successors per
  # state (entropy rate <= log(branching)), tokens per document, split sizes, the chain's seed
  # (fixed corpus; the sampling seed is make_train_iterator's).
  cfg.vocab_size = 256
  cfg.synthetic_branching = 4
  cfg.synthetic_doc_len = 512
  cfg.synthetic_train_tokens = 1 << 20
  cfg.synthetic_val_tokens = 1 << 17
  cfg.synthetic_seed = 0
  # "stdlib" only: BPE pieces of the tokenizer trained on it, share of characters held out for
  # validation (by document), and extra directories of text files to add (e.g. the stdlib's
  # test/ dir or /usr/share/doc) when 3.5M tokens are not enough.
  cfg.tokenizer_vocab_size = 4096
  cfg.val_fraction = 0.05
  cfg.extra_text_dirs = ()
  return cfg


# --------------------------------------------------------------------------------------------
# Validation of the config.


def _fail(field: str, value: Any, allowed: str) -> None:
  raise ValueError(f"data.{field}={value!r} is invalid: {allowed}")


def _check_int(data_cfg, field: str, low: int, high: int | None = None) -> int:
  value = data_cfg[field]
  if isinstance(value, bool) or not isinstance(value, int | np.integer):
    _fail(field, value, "expected an integer")
  if value < low or (high is not None and value > high):
    _fail(field, value, f"allowed range is [{low}, {high if high is not None else 'inf'}]")
  return int(value)


def validate_data_config(
  data_cfg,
  *,
  seq_len: int | None = None,
  global_batch_size: int | None = None,
  process_index: int = 0,
  process_count: int = 1,
) -> None:
  """Raises ValueError naming the field, its value and what is allowed; computes and writes nothing.

  The keyword arguments, when given, are checked too (and, for "tokens" and "synthetic", that the
  training split holds at least one row of seq_len + 1 tokens).
  """
  known = set(default_data_config().keys())
  unknown = sorted(set(data_cfg.keys()) - known)
  if unknown:
    raise ValueError(f"unknown data field(s) {unknown}; known fields: {sorted(known)}")
  missing = sorted(known - set(data_cfg.keys()))
  if missing:
    raise ValueError(f"data config lacks field(s) {missing}; start from default_data_config()")
  if data_cfg.source not in SOURCES:
    _fail("source", data_cfg.source, f"one of {SOURCES}")
  if data_cfg.sampling == "documents":
    _fail(
      "sampling",
      data_cfg.sampling,
      "retired with the flat token files (#28): row datasets are documents packed with EOS; "
      'use "windows"',
    )
  if data_cfg.sampling not in SAMPLINGS:
    _fail("sampling", data_cfg.sampling, f"one of {SAMPLINGS}")
  _check_int(data_cfg, "num_threads", 0, 64)
  _check_int(data_cfg, "prefetch", 0, 1024)
  if seq_len is not None and (not isinstance(seq_len, int | np.integer) or seq_len < 1):
    raise ValueError(f"seq_len={seq_len!r} is invalid: expected an integer >= 1")
  if not isinstance(process_count, int | np.integer) or process_count < 1:
    raise ValueError(f"process_count={process_count!r} is invalid: expected an integer >= 1")
  if not isinstance(process_index, int | np.integer) or not 0 <= process_index < process_count:
    raise ValueError(
      f"process_index={process_index!r} is invalid: expected 0 <= it < {process_count}"
    )
  if global_batch_size is not None and (
    not isinstance(global_batch_size, int | np.integer)
    or global_batch_size < 1
    or global_batch_size % process_count
  ):
    raise ValueError(
      f"global_batch_size={global_batch_size!r} is invalid: expected a positive multiple of "
      f"process_count={process_count} (each process reads global_batch_size // process_count rows)"
    )

  train_tokens = None
  if data_cfg.source == "synthetic":
    v = _check_int(data_cfg, "vocab_size", 3, 65536)
    _check_int(data_cfg, "synthetic_branching", 1, v - 1)
    doc_len = _check_int(data_cfg, "synthetic_doc_len", 1)
    tokens = _check_int(data_cfg, "synthetic_train_tokens", 2)
    _check_int(data_cfg, "synthetic_val_tokens", 2)
    _check_int(data_cfg, "synthetic_seed", 0, 2**63 - 1)
    train_tokens = math.ceil(tokens / (doc_len + 1)) * (doc_len + 1)
  elif data_cfg.source == "stdlib":
    _check_int(data_cfg, "tokenizer_vocab_size", 260, 2**20)
    if not isinstance(data_cfg.val_fraction, float | int) or not 0 < data_cfg.val_fraction <= 0.5:
      _fail("val_fraction", data_cfg.val_fraction, "expected a number in (0, 0.5]")
    if isinstance(data_cfg.extra_text_dirs, str):
      _fail("extra_text_dirs", data_cfg.extra_text_dirs, "expected a tuple of directories")
    for d in data_cfg.extra_text_dirs:
      if not os.path.isdir(d):
        _fail("extra_text_dirs", tuple(data_cfg.extra_text_dirs), f"{d!r} is not a directory")
    if data_cfg.path and os.path.exists(data_cfg.path) and not os.path.isdir(data_cfg.path):
      _fail("path", data_cfg.path, "the stdlib cache root must be a directory")
  else:  # tokens
    _check_rows_dir(data_cfg.path)
    meta = row_files.read_meta(data_cfg.path)
    if seq_len is not None:
      row_files.check_seq_len(meta, int(seq_len), data_cfg.path)
    # One row read: a wrong dtype or seq_len in meta.json is refused here, before any compile,
    # not at the first batch (the per-file rows and max_id were checked by read_meta).
    row_files.open_split(data_cfg.path, meta, "train").read(np.array([0]))
    return

  if train_tokens is not None and seq_len is not None and _rows_possible(train_tokens, seq_len) < 1:
    raise ValueError(
      f"seq_len={seq_len} is too long for the training split of data.source="
      f"{data_cfg.source!r}: {train_tokens} tokens hold no window of seq_len + 1 tokens"
    )


def _check_rows_dir(path: str) -> None:
  """data.path must be a row dataset; the old flat token dirs are named as such (#28)."""
  if not path:
    _fail("path", path, 'source "tokens" needs the row dataset directory')
  if not os.path.isdir(path):
    _fail("path", path, "not a directory (expected a row dataset: *.array_record, meta.json)")
  if row_files.is_rows_dir(path):
    return
  if os.path.exists(os.path.join(path, "train.bin")):
    _fail(
      "path",
      path,
      "flat token files (train.bin) are no longer read (#28): prepare the text again with "
      "python -m anytime.lm.prepare (ArrayRecord rows)",
    )
  _fail(
    "path",
    path,
    f"no {row_files.META_FILE} of format {row_files.FORMAT!r} in it (write datasets with "
    "python -m anytime.lm.prepare)",
  )


def _rows_possible(num_tokens: int, seq_len: int) -> int:
  return (num_tokens - 1) // seq_len


# --------------------------------------------------------------------------------------------
# Row datasets: data.path, or the stdlib corpus's cache (anytime.lm.row_files).


@functools.lru_cache(maxsize=8)
def _stdlib_dir(
  vocab: int, val_fraction: float, extra: tuple[str, ...], path: str, row_len: int
) -> str:
  return corpus.ensure_stdlib_tokens(
    vocab_size=vocab,
    val_fraction=val_fraction,
    extra_text_dirs=extra,
    cache_path=path or None,
    seq_len=row_len,
  )


def stdlib_token_dir(data_cfg, seq_len: int | None = None) -> str:
  """The cached row dataset of the stdlib corpus for this config and trainer seq_len (prepared
  on first call; rows stored at corpus.row_seq_len(seq_len))."""
  return _stdlib_dir(
    int(data_cfg.tokenizer_vocab_size),
    float(data_cfg.val_fraction),
    tuple(str(d) for d in data_cfg.extra_text_dirs),
    data_cfg.path or "",
    corpus.row_seq_len(seq_len),
  )


def dataset_dir(data_cfg, seq_len: int | None = None) -> str | None:
  """The row dataset a "tokens" or "stdlib" config reads (None for "synthetic")."""
  if data_cfg.source == "tokens":
    return data_cfg.path
  if data_cfg.source == "stdlib":
    return stdlib_token_dir(data_cfg, seq_len)
  return None


def vocab_size(data_cfg) -> int:
  """Vocabulary of the source: the tokenizer's (stdlib), meta.json's (tokens), data.vocab_size."""
  validate_data_config(data_cfg)
  if data_cfg.source == "tokens":
    return int(row_files.read_meta(data_cfg.path)["vocab_size"])
  if data_cfg.source == "stdlib":
    return int(data_cfg.tokenizer_vocab_size)
  return int(data_cfg.vocab_size)


# --------------------------------------------------------------------------------------------
# The synthetic source: a sparse random Markov chain.


def _synthetic_args(data_cfg) -> tuple[int, ...]:
  return (
    int(data_cfg.vocab_size),
    int(data_cfg.synthetic_branching),
    int(data_cfg.synthetic_doc_len),
    int(data_cfg.synthetic_train_tokens),
    int(data_cfg.synthetic_val_tokens),
    int(data_cfg.synthetic_seed),
  )


def synthetic_chain(data_cfg) -> MarkovChain:
  """The chain behind data_cfg's synthetic source (its entropy_rate is the loss to approach)."""
  v, branching, *_, seed = _synthetic_args(data_cfg)
  return markov_chain(v - 1, branching, seed)


def synthetic_entropy_rate(data_cfg) -> float:
  """Nats/token of the synthetic chain. The best loss on the packed stream is this plus about
  (log(doc_len) + H(stationary)) / doc_len for the EOS positions (0.02 nats at doc_len 512)."""
  return synthetic_chain(data_cfg).entropy_rate


def synthetic_tokens(data_cfg) -> TokenData:
  """Both splits of the synthetic source (validates the config first)."""
  validate_data_config(data_cfg)
  if data_cfg.source != "synthetic":
    raise ValueError(f"data.source={data_cfg.source!r}: only the synthetic source is in memory")
  return synthetic_data(*_synthetic_args(data_cfg))


def _synthetic(data_cfg, seq_len: int) -> TokenData:
  data = synthetic_tokens(data_cfg)
  if _rows_possible(len(data.train), seq_len) < 1:
    raise ValueError(
      f"seq_len={seq_len} is too long: the training split has {len(data.train)} tokens"
    )
  return data


def _row_dataset(data_cfg, seq_len: int) -> tuple[dict, dict[str, row_files.RowSplit]] | None:
  """(meta, splits) of the row dataset the config reads; None for the synthetic source."""
  path = dataset_dir(data_cfg, seq_len)
  if path is None:
    return None
  meta, splits = row_files.open_dataset(path)
  row_files.check_seq_len(meta, seq_len, path)
  return meta, splits


def _read_step(rows, order, per_epoch: int, global_batch: int, first: int, local: int, step):
  """This process's batch of global step `step`: rows order[step*B + first + i], i < local."""
  positions = range(step * global_batch + first, step * global_batch + first + local)
  indices = np.array([order[p] for p in positions], dtype=np.int64)
  epochs = np.array(positions, dtype=np.int64) // per_epoch
  return _split_row_batch(rows.read(epochs, indices))


def _split_row_batch(rows: np.ndarray) -> dict[str, np.ndarray]:
  return dict(inputs=np.ascontiguousarray(rows[:, :-1]), targets=np.ascontiguousarray(rows[:, 1:]))


def make_train_iterator(
  data_cfg,
  *,
  seq_len: int,
  global_batch_size: int,
  seed: int,
  process_index: int = 0,
  process_count: int = 1,
) -> TrainIterator:
  """Endless deterministic training batches of global_batch_size // process_count rows each.

  Each batch is dict(inputs=int32[B_local, seq_len], targets=int32[B_local, seq_len]); the rows
  are this process's contiguous slice of global step t's rows (see the module docstring).
  """
  validate_data_config(
    data_cfg,
    seq_len=seq_len,
    global_batch_size=global_batch_size,
    process_index=process_index,
    process_count=process_count,
  )
  if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
    raise ValueError(f"seed={seed!r} is invalid: expected an integer >= 0")
  mixed = mix_seed(int(seed))
  stored = _row_dataset(data_cfg, int(seq_len))
  if stored is not None:
    rows, identity = (
      row_files.StoredRows(stored[1]["train"], seq_len),
      row_files.identity(stored[0]),
    )
  else:
    data = _synthetic(data_cfg, int(seq_len))
    rows, identity = WindowRows(data.train, seq_len, mixed), data.identity
  per_epoch = rows.rows_per_epoch
  local = global_batch_size // process_count
  # 2**50 rows in all (effectively endless): grain computes some lengths in float, so an
  # unbounded repeat (length sys.maxsize) would overflow in batch/slice.
  epochs = max(1, 2**50 // per_epoch)
  order = grain.MapDataset.range(per_epoch).shuffle(seed=mixed).repeat(epochs)
  # One element per step (not per row: grain's per-element work cost more than reading a row):
  # this process's rows of global step t are order[t*B + p*B_local + i], read in one call.
  steps = len(order) // global_batch_size
  read = functools.partial(
    _read_step, rows, order, per_epoch, global_batch_size, process_index * local, local
  )
  ds = grain.MapDataset.range(steps).map(read)
  read_options = grain.ReadOptions(
    num_threads=int(data_cfg.num_threads), prefetch_buffer_size=int(data_cfg.prefetch)
  )
  fingerprint = dict(
    source=data_cfg.source,
    sampling=data_cfg.sampling,
    seq_len=int(seq_len),
    global_batch_size=int(global_batch_size),
    seed=int(seed),
    data=identity,
  )
  return TrainIterator(ds, read_options, fingerprint)


def eval_rows_available(data_cfg, *, seq_len: int) -> int:
  """How many distinct validation rows of seq_len + 1 tokens the held-out split holds."""
  validate_data_config(data_cfg, seq_len=seq_len)
  stored = _row_dataset(data_cfg, int(seq_len))
  if stored is not None:
    return row_files.StoredRows(stored[1]["val"], seq_len).rows_per_epoch
  return _rows_possible(len(synthetic_data(*_synthetic_args(data_cfg)).val), seq_len)


def make_eval_batches(
  data_cfg,
  *,
  seq_len: int,
  batch_size: int,
  num_batches: int,
  process_index: int = 0,
  process_count: int = 1,
) -> list[dict[str, np.ndarray]]:
  """Fixed validation batches: rows r = 0, 1, ... of the held-out split (tokens r*L .. r*L + L).

  Global batch b holds rows b*batch_size .. (b+1)*batch_size - 1; this process gets its
  contiguous slice of batch_size // process_count rows. Raises ValueError when the split holds
  fewer than batch_size * num_batches rows (no row is repeated).
  """
  validate_data_config(
    data_cfg,
    seq_len=seq_len,
    global_batch_size=batch_size,
    process_index=process_index,
    process_count=process_count,
  )
  if not isinstance(num_batches, int | np.integer) or num_batches < 1:
    raise ValueError(f"num_batches={num_batches!r} is invalid: expected an integer >= 1")
  stored = _row_dataset(data_cfg, int(seq_len))
  if stored is not None:
    val_rows = row_files.StoredRows(stored[1]["val"], seq_len)
    available = val_rows.rows_per_epoch
  else:
    val = synthetic_data(*_synthetic_args(data_cfg)).val
    available = _rows_possible(len(val), seq_len)
  if batch_size * num_batches > available:
    raise ValueError(
      f"batch_size={batch_size} x num_batches={num_batches} = {batch_size * num_batches} "
      f"validation rows requested, but the held-out split holds {available} "
      f"rows of seq_len + 1 = {seq_len + 1} tokens; use at most "
      f"{available // batch_size} batches"
    )
  local = batch_size // process_count
  batches = []
  for b in range(num_batches):
    first = b * batch_size + process_index * local
    if stored is not None:
      rows = val_rows.read(None, np.arange(first, first + local))
    else:
      rows = np.stack(
        [
          np.asarray(val[r * seq_len : r * seq_len + seq_len + 1])
          for r in range(first, first + local)
        ]
      ).astype(np.int32)
    batches.append(_split_row_batch(rows))
  return batches


__all__: Sequence[str] = (
  "TrainIterator",
  "dataset_dir",
  "default_data_config",
  "eval_rows_available",
  "make_eval_batches",
  "make_train_iterator",
  "stdlib_token_dir",
  "synthetic_entropy_rate",
  "synthetic_tokens",
  "validate_data_config",
  "vocab_size",
)
