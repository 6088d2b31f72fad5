"""Token-file directories (what ``anytime.lm.prepare`` writes, or any tool can): their
``meta.json`` checked against the files on disk, and both splits memory-mapped.

Kept apart from :mod:`anytime.lm.data` (configs, sampling, batches) because this is the one place
that trusts bytes written by another program: every check here names the file and what is wrong
with it, before a single batch is built from it.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from anytime.lm import prepare

_SCAN_CHUNK = 1 << 24  # tokens per chunk of the on-open id scan (32 MB of uint16)


def _fail_path(value, allowed: str) -> None:
  raise ValueError(f"data.path={value!r} is invalid: {allowed}")


@dataclasses.dataclass(frozen=True)
class TokenData:
  """Both splits of a source as 1-D integer arrays (memory maps for token files)."""

  train: np.ndarray
  val: np.ndarray
  vocab_size: int
  eos_id: int | None
  identity: str  # names the data for iterator-state checks


def read_meta(path: str) -> dict:
  """meta.json of a token dir, with its header checked against the files on disk."""
  meta_path = os.path.join(path, prepare.META_FILE)
  if not os.path.isdir(path):
    _fail_path(path, "not a directory (expected train.bin, val.bin, meta.json)")
  if not os.path.isfile(meta_path):
    _fail_path(path, f"no {prepare.META_FILE} in it (write token dirs with anytime.lm.prepare)")
  try:
    with open(meta_path) as f:
      meta = json.load(f)
  except (OSError, json.JSONDecodeError) as err:
    raise ValueError(f"{meta_path}: not readable JSON ({err})") from err
  where = f"{meta_path}:"
  for field in ("dtype", "vocab_size", "eos_id", "splits"):
    if field not in meta:
      raise ValueError(f"{where} missing field {field!r}")
  if meta.get("format", prepare.FORMAT) != prepare.FORMAT:
    raise ValueError(f"{where} format={meta['format']!r}, expected {prepare.FORMAT!r}")
  if meta["dtype"] not in ("uint16", "uint32"):
    raise ValueError(f"{where} dtype={meta['dtype']!r}, allowed: 'uint16', 'uint32'")
  vocab = meta["vocab_size"]
  if not isinstance(vocab, int) or vocab < 1:
    raise ValueError(f"{where} vocab_size={vocab!r}, expected a positive integer")
  if meta["dtype"] == "uint16" and vocab > 2**16:
    raise ValueError(f"{where} vocab_size={vocab} does not fit dtype uint16 (use uint32)")
  eos = meta["eos_id"]
  if eos is not None and (not isinstance(eos, int) or not 0 <= eos < vocab):
    raise ValueError(f"{where} eos_id={eos!r}, expected null or an id in [0, {vocab})")
  itemsize = np.dtype(meta["dtype"]).itemsize
  for split, default_file in prepare.SPLIT_FILES.items():
    info = meta["splits"].get(split)
    if not isinstance(info, dict) or not isinstance(info.get("tokens"), int):
      raise ValueError(f"{where} splits.{split}.tokens missing (an integer token count)")
    file = os.path.join(path, info.get("file", default_file))
    if not os.path.isfile(file):
      raise ValueError(f"{where} split {split!r}: file {file} does not exist")
    size = os.path.getsize(file)
    if size % itemsize or size // itemsize != info["tokens"]:
      raise ValueError(
        f"{file}: {size} bytes is not {info['tokens']} tokens of {meta['dtype']} "
        f"({info['tokens'] * itemsize} bytes) as {prepare.META_FILE} says: wrong dtype or a "
        "truncated/foreign file"
      )
    if info["tokens"] < 2:
      raise ValueError(f"{file}: {info['tokens']} tokens, need at least 2")
  return meta


def open_token_dir(path: str) -> TokenData:
  """Memory-maps a token dir after checking meta.json, file sizes and a sample of the ids."""
  meta = read_meta(path)
  arrays = {}
  for split, default_file in prepare.SPLIT_FILES.items():
    file = os.path.join(path, meta["splits"][split].get("file", default_file))
    tokens = np.memmap(file, dtype=meta["dtype"], mode="r")
    _check_ids(tokens, meta["vocab_size"], file)
    arrays[split] = tokens
  identity = (
    f"tokens:{meta.get('tokenizer_sha256', '')}:"
    f"{meta['splits']['train']['tokens']}:{meta['splits']['val']['tokens']}"
  )
  return TokenData(arrays["train"], arrays["val"], meta["vocab_size"], meta["eos_id"], identity)


def _check_ids(tokens: np.ndarray, vocab: int, file: str) -> None:
  """Every id must be below vocab: an id past the embedding table is a silent NaN at step 1.

  A sample is not enough (issue #31: one bad id in the unsampled middle reached the model), so
  the whole split is scanned in chunks of the memory map (bounded memory; about 1 GB/s here, so
  a few seconds for the corpora this format is meant for; row files check per row as read).
  """
  for first in range(0, len(tokens), _SCAN_CHUNK):
    chunk = np.asarray(tokens[first : first + _SCAN_CHUNK])
    if chunk.size and int(chunk.max()) >= vocab:
      k = int(np.argmax(chunk >= vocab))
      raise ValueError(
        f"{file}: token id {int(chunk[k])} at position {first + k} is out of range for "
        f"vocab_size={vocab} (the whole file is checked on open; wrong dtype, vocab or tokenizer?)"
      )
