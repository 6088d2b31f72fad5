"""Row files: the dataset format of ``python -m anytime.lm.prepare`` (ArrayRecord rows + meta.json).

A dataset directory holds

    train-00000.array_record, ...   one file per input shard and split; record r is row r: the
    val-00000.array_record, ...     little-endian bytes of seq_len + 1 token ids (meta's dtype)
    tokenizer.model | tokenizer.json
    meta.json                       written last: its presence means the dataset is complete

Rows are cut from the shard's documents packed end to end, each followed by EOS, with stride
seq_len: row r is stream[r*L : r*L + L + 1], so consecutive rows share one token and every token
after the first is a target exactly once. The tail shorter than L + 1 is dropped (counted).

Fixed-length records are what makes C4 scale: grain reads any row by index (global shuffle, each
process its slice) without the one-byte-per-token document index a flat token stream needs, and a
file per input shard lets any number of workers write them with identical bytes. This module
holds everything about the format that needs no Beam: packing, writing one file, meta checks, and
the reader the trainer uses; anytime.lm.beam_prepare runs the pipeline.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator

import numpy as np

FORMAT = "anytime-rows"
FORMAT_VERSION = 2
META_FILE = "meta.json"
SPLITS = ("train", "val")
# One record per chunk: a shuffled read touches one record, not a 64k-record group.
WRITER_OPTIONS = "group_size:1,uncompressed"


def token_dtype(vocab_size: int) -> np.dtype:
  """The narrowest unsigned dtype holding every id below vocab_size."""
  return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def file_name(split: str, shard_index: int) -> str:
  return f"{split}-{shard_index:05d}.array_record"


class RowPacker:
  """Packs documents (each + EOS) into rows of L + 1 tokens with stride L; keeps < L + 1 pending."""

  def __init__(self, seq_len: int, eos_id: int, dtype: np.dtype):
    self.seq_len, self.eos_id, self.dtype = seq_len, eos_id, np.dtype(dtype)
    self._pending = np.zeros(0, dtype=self.dtype)
    self.tokens = 0  # document tokens seen, EOS included

  def add(self, ids: Iterable[int]) -> Iterator[np.ndarray]:
    """Adds one document; yields the rows it completes."""
    doc = np.fromiter(ids, dtype=np.int64)
    doc = np.append(doc, self.eos_id).astype(self.dtype)
    self.tokens += doc.size
    stream = np.concatenate([self._pending, doc])
    L = self.seq_len
    count = max(0, (stream.size - 1) // L)
    for r in range(count):
      yield stream[r * L : r * L + L + 1]
    self._pending = stream[count * L :]

  @property
  def dropped(self) -> int:
    """Tokens that never became a target (the pending tail; the first row's first token aside)."""
    return max(0, self._pending.size - 1)


def rows_writer(path: str):
  """An ArrayRecord writer for one row file (local path; the pipeline copies remote ones)."""
  from array_record.python.array_record_module import ArrayRecordWriter

  return ArrayRecordWriter(path, WRITER_OPTIONS)


# --------------------------------------------------------------------------------------------
# meta.json, checked against the files on disk.


def _fail(where: str, what: str) -> None:
  raise ValueError(f"{where} {what}")


def is_rows_dir(path: str) -> bool:
  """Whether path's meta.json declares this format (the only one the trainer reads)."""
  try:
    with open(os.path.join(path, META_FILE)) as f:
      return json.load(f).get("format") == FORMAT
  except (OSError, ValueError, AttributeError):
    return False


def read_meta(path: str) -> dict:
  """meta.json of a row dataset with its fields, types and files checked; ValueError otherwise."""
  meta_path = os.path.join(path, META_FILE)
  with open(meta_path) as f:
    meta = json.load(f)
  where = f"{meta_path}:"
  for field in ("format_version", "dtype", "vocab_size", "eos_id", "seq_len", "splits"):
    if field not in meta:
      _fail(where, f"missing field {field!r}")
  if meta["format_version"] != FORMAT_VERSION:
    _fail(where, f"format_version={meta['format_version']!r}, this code reads {FORMAT_VERSION}")
  if meta["dtype"] not in ("uint16", "uint32"):
    _fail(where, f"dtype={meta['dtype']!r}, allowed: 'uint16', 'uint32'")
  vocab = meta["vocab_size"]
  if not isinstance(vocab, int) or vocab < 1:
    _fail(where, f"vocab_size={vocab!r}, expected a positive integer")
  if meta["dtype"] == "uint16" and vocab > 2**16:
    _fail(where, f"vocab_size={vocab} does not fit dtype uint16 (use uint32)")
  if not isinstance(meta["eos_id"], int) or not 0 <= meta["eos_id"] < vocab:
    _fail(where, f"eos_id={meta['eos_id']!r}, expected an id in [0, {vocab})")
  if not isinstance(meta["seq_len"], int) or meta["seq_len"] < 1:
    _fail(where, f"seq_len={meta['seq_len']!r}, expected a positive integer")
  for split in SPLITS:
    info = meta["splits"].get(split)
    if not isinstance(info, dict) or not isinstance(info.get("files"), list):
      _fail(where, f"splits.{split}.files missing (a list of row files)")
    for entry in info["files"]:
      file = os.path.join(path, entry["file"])
      if not os.path.isfile(file):
        _fail(where, f"split {split!r}: row file {file} does not exist")
      max_id = entry.get("max_id", -1)
      if max_id >= vocab:
        _fail(
          f"{file}:",
          f"holds token id {max_id} >= vocab_size={vocab} (meta.json's max_id; wrong tokenizer?)",
        )
  if not meta["splits"]["train"]["rows"]:
    _fail(where, "the training split holds no rows")
  return meta


@dataclasses.dataclass(frozen=True)
class RowSplit:
  """One split's rows by global index across its files (ArrayRecord random access)."""

  files: tuple[str, ...]
  rows: int
  seq_len: int
  dtype: np.dtype
  vocab_size: int
  file_rows: tuple[int, ...]

  def __post_init__(self):
    object.__setattr__(self, "_source", None)

  def source(self):
    if self._source is None:
      import grain

      object.__setattr__(self, "_source", grain.sources.ArrayRecordDataSource(list(self.files)))
      if len(self._source) != self.rows:
        raise ValueError(
          f"{os.path.dirname(self.files[0])}: the row files hold {len(self._source)} rows, "
          f"meta.json says {self.rows} (a file was replaced or truncated)"
        )
    return self._source

  def file_of(self, row: int) -> str:
    return self.files[int(np.searchsorted(np.cumsum(self.file_rows), row, side="right"))]

  def row(self, index: int) -> np.ndarray:
    """Row index as int32[seq_len + 1], its ids checked against vocab_size (issue #31)."""
    return self.read(np.array([index]))[0].astype(np.int32)

  def read(self, indices: np.ndarray) -> np.ndarray:
    """Rows indices as [n, seq_len + 1] of the stored dtype, read in one batched call.

    The records are fetched one by one (ArrayRecord's own batched reads, __getitems__ and
    reader.read, start threads per call and measured 2-4x slower here) and then joined, checked
    and converted once per batch: per-row numpy work was the reader's cost (docs/data.md,
    "Throughput"). The id check repeats meta.json's per-file max_id (checked on open) on the
    bytes actually read, so a file replaced after prepare still never feeds an id past the
    embedding table (issue #31).
    """
    indices = np.asarray(indices, dtype=np.int64)
    source = self.source()
    records = [source[i] for i in indices.tolist()]
    width = self.seq_len + 1
    joined = b"".join(records)
    if len(joined) != indices.size * width * self.dtype.itemsize:
      sizes = np.array([len(r) for r in records])
      k = int(np.argmax(sizes != width * self.dtype.itemsize))
      raise ValueError(
        f"{self.file_of(int(indices[k]))}: row {int(indices[k])} holds "
        f"{sizes[k] / self.dtype.itemsize:g} tokens, expected seq_len + 1 = {width} (meta.json's "
        "dtype or seq_len is wrong)"
      )
    rows = np.frombuffer(joined, dtype=self.dtype).reshape(indices.size, width)
    if rows.size and int(rows.max()) >= self.vocab_size:
      k = int(np.argmax(rows.max(axis=1) >= self.vocab_size))
      raise ValueError(
        f"{self.file_of(int(indices[k]))}: row {int(indices[k])} holds token id "
        f"{int(rows[k].max())} >= vocab_size={self.vocab_size}"
      )
    return rows


def open_split(path: str, meta: dict, split: str) -> RowSplit:
  entries = [e for e in meta["splits"][split]["files"] if e["rows"]]
  return RowSplit(
    files=tuple(os.path.join(path, e["file"]) for e in entries),
    rows=int(meta["splits"][split]["rows"]),
    seq_len=int(meta["seq_len"]),
    dtype=np.dtype(meta["dtype"]).newbyteorder("<"),  # rows are little-endian
    vocab_size=int(meta["vocab_size"]),
    file_rows=tuple(int(e["rows"]) for e in entries),
  )


def check_seq_len(meta: dict, seq_len: int, path: str) -> int:
  """Rows of the trainer's seq_len per stored row (seq_len must divide the stored one)."""
  stored = int(meta["seq_len"])
  if seq_len > stored or stored % seq_len:
    raise ValueError(
      f"seq_len={seq_len} does not fit the dataset at {path}: its rows hold seq_len={stored} "
      f"(+1) tokens; train with a divisor of {stored} or prepare again with --seq_len={seq_len}"
    )
  return stored // seq_len


def sub_rows(split: RowSplit, indices: np.ndarray, seq_len: int) -> np.ndarray:
  """Rows indices at the trainer's seq_len as int32[n, seq_len + 1]: row i is part i % k of
  stored row i // k (k = stored seq_len // seq_len).

  Stored rows overlap their neighbours by one token, so the k parts of a row (stride seq_len,
  seq_len + 1 tokens each) again predict every token once.
  """
  indices = np.asarray(indices, dtype=np.int64)
  k = split.seq_len // seq_len
  stored = split.read(indices // k)
  if k == 1:
    return stored.astype(np.int32)
  cols = (indices % k)[:, None] * seq_len + np.arange(seq_len + 1)
  return stored[np.arange(indices.size)[:, None], cols].astype(np.int32)


def open_dataset(path: str) -> tuple[dict, dict[str, RowSplit]]:
  """(meta, {split: RowSplit}) of a row dataset, meta checked first."""
  meta = read_meta(path)
  return meta, {s: open_split(path, meta, s) for s in SPLITS}


def identity(meta: dict) -> str:
  """Names the dataset in the trainer's iterator-state fingerprint."""
  s = meta["splits"]
  return f"rows:{meta.get('tokenizer_sha256', '')}:{meta['seq_len']}:{s['train']['rows']}:" + str(
    s["val"]["rows"]
  )


class StoredRows:
  """Rows of a stored split at the trainer's seq_len; grain shuffles their order per epoch.

  The rows are fixed by prepare (documents packed with EOS, cut every seq_len tokens): an epoch
  is every row once, in the order grain's shuffle gives it.
  """

  def __init__(self, split: RowSplit, seq_len: int):
    self.split, self.seq_len = split, seq_len
    self.rows_per_epoch = split.rows * (split.seq_len // seq_len)

  def read(self, epochs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    del epochs
    return sub_rows(self.split, rows, self.seq_len)
