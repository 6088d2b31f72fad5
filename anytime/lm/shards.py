"""Input shards of the prepare pipeline: listing them, reading their documents, holding out val.

A shard is the unit one Beam worker turns into row files: one JSON-lines file (gzip or plain,
C4's ``c4-train.00000-of-01024.json.gz``), or a group of text files of a directory (the small-corpus
path). Everything here reads through Beam's FileSystems when Beam is installed, so ``gs://`` and
other remote paths work on Dataflow, and through plain ``open`` otherwise.

Bad input never passes silently: a malformed JSON line, a record without the text field or a
truncated gzip stream raises BadInput naming the file and line. With ``skip_bad=True`` a bad record
is skipped and counted instead, and a bad shard is reported to the caller to be dropped whole.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import zlib
from collections.abc import Iterator, Sequence

TEXT_SHARD_BYTES = 64 << 20  # text files grouped into shards of about this much input
TEXT_SPLITS = ("file", "line", "paragraph")


class BadInput(ValueError):
  """A malformed record or shard; the message starts with ``path:line:``."""


@dataclasses.dataclass(frozen=True)
class Shard:
  """Input shard ``index`` (its position in sorted order fixes its output file names)."""

  index: int
  kind: str  # "json" (JSON lines) or "text" (whole text files)
  paths: tuple[str, ...]
  bytes: int
  split: str = ""  # "val" when the shard is one of the input's own validation shards

  @property
  def name(self) -> str:
    return self.paths[0] if len(self.paths) == 1 else f"{self.paths[0]} (+{len(self.paths) - 1})"


class _QuietApitools:
  """Drops Beam's import-time warning about the GCP client libraries (not used on local files)."""

  def filter(self, record) -> bool:
    return "apitools" not in record.getMessage()


def import_beam():
  """apache_beam, imported with its import-time GCP warning kept off stderr."""
  import logging

  quiet = _QuietApitools()
  root = logging.getLogger()
  root.addFilter(quiet)
  try:
    import apache_beam
    import apache_beam.io.filesystems
  finally:
    root.removeFilter(quiet)
  return apache_beam


def _filesystems():
  try:
    import_beam()
    from apache_beam.io.filesystems import FileSystems

    return FileSystems
  except ImportError:  # the trainer-only install: local files
    return None


def match(pattern: str) -> list[tuple[str, int]]:
  """(path, bytes) of the files the glob matches, sorted by path; ValueError when none do."""
  fs = _filesystems()
  if fs is not None:
    found = [(m.path, m.size_in_bytes) for r in fs.match([pattern]) for m in r.metadata_list]
  else:
    import glob

    found = [(p, os.path.getsize(p)) for p in glob.glob(pattern) if os.path.isfile(p)]
  if not found:
    raise ValueError(f"--input={pattern!r} matches no files")
  return sorted(found)


def json_shards(pattern: str, val_pattern: str = "") -> list[Shard]:
  """The JSON-lines shards of --input (train, or held out by document) and --val_input (val)."""
  train = match(pattern)
  val = match(val_pattern) if val_pattern else []
  shared = {p for p, _ in train} & {p for p, _ in val}
  if shared:
    raise ValueError(f"--input and --val_input share files: {sorted(shared)[:3]}")
  tagged = [(p, n, "") for p, n in train] + [(p, n, "val") for p, n in val]
  return [Shard(k, "json", (p,), n, s) for k, (p, n, s) in enumerate(tagged)]


def list_files(input_dir: str, extensions: Sequence[str] | None = None) -> list[str]:
  """The regular files under input_dir (recursive, no symlinks), sorted by relative posix path."""
  if not os.path.isdir(input_dir):
    raise ValueError(f"input_dir={input_dir!r} is not a directory")
  files = []
  for directory, subdirs, names in os.walk(input_dir):
    subdirs.sort()
    for name in names:
      path = os.path.join(directory, name)
      wanted = not extensions or any(name.endswith(e) for e in extensions)
      if wanted and os.path.isfile(path) and not os.path.islink(path):
        files.append(path)
  return sorted(files, key=lambda p: os.path.relpath(p, input_dir).replace(os.sep, "/"))


def file_shards(files: Sequence[str]) -> list[Shard]:
  """Text files, in the given order, grouped into shards of about TEXT_SHARD_BYTES each."""
  shards, group, size = [], [], 0
  for k, path in enumerate(files):
    group.append(path)
    size += os.path.getsize(path)
    if size >= TEXT_SHARD_BYTES or k == len(files) - 1:
      shards.append(Shard(len(shards), "text", tuple(group), size))
      group, size = [], 0
  return shards


def text_shards(input_dir: str, extensions: Sequence[str] | None = None) -> list[Shard]:
  """The regular files under input_dir (sorted, recursive) grouped into ~64 MB shards."""
  files = list_files(input_dir, extensions)
  if not files:
    raise ValueError(f"input_dir={input_dir!r} holds no files (extensions={extensions})")
  return file_shards(files)


def _open_bytes(path: str) -> io.BufferedIOBase:
  fs = _filesystems()
  if fs is None:
    return open(path, "rb")
  from apache_beam.io.filesystem import CompressionTypes

  return fs.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _json_documents(path: str, text_field: str, skip_bad: bool, counts: dict) -> Iterator:
  raw = _open_bytes(path)
  stream = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
  line_no = 0
  try:
    with raw:
      for line_no, line in enumerate(stream, start=1):
        if not line.strip():
          continue
        try:
          record = json.loads(line)
        except ValueError as err:
          if skip_bad:
            counts["bad_records"] += 1
            continue
          raise BadInput(f"{path}:{line_no}: malformed JSON ({err})") from err
        text = record.get(text_field) if isinstance(record, dict) else None
        if not isinstance(text, str):
          if skip_bad:
            counts["bad_records"] += 1
            continue
          raise BadInput(f"{path}:{line_no}: no string field {text_field!r} in the record")
        yield f"{path}:{line_no}", text
  except (EOFError, OSError, zlib.error) as err:
    raise BadInput(
      f"{path}:{line_no + 1}: truncated or corrupt compressed stream after line {line_no} ({err})"
    ) from err


def _text_documents(path: str, split: str) -> Iterator:
  with _open_bytes(path) as f:
    data = f.read()
  if path.endswith(".gz"):
    try:
      data = gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as err:
      raise BadInput(f"{path}:1: truncated or corrupt gzip file ({err})") from err
  if b"\x00" in data:  # binary file
    return
  text = data.decode("utf-8", errors="replace")
  if split == "file":
    parts = [text]
  elif split == "line":
    parts = text.splitlines()
  else:
    parts = text.replace("\r\n", "\n").split("\n\n")
  for k, part in enumerate(parts):
    if part.strip():
      yield f"{path}:{k + 1}", part


def documents(
  shard: Shard,
  *,
  text_field: str = "text",
  split: str = "file",
  skip_bad: bool = False,
  counts: dict | None = None,
) -> Iterator[tuple[str, str]]:
  """(where, text) of every document of the shard, in order; counts["bad_records"] is updated."""
  counts = counts if counts is not None else {"bad_records": 0}
  counts.setdefault("bad_records", 0)
  for path in shard.paths:
    if shard.kind == "json":
      yield from _json_documents(path, text_field, skip_bad, counts)
    else:
      yield from _text_documents(path, split)


def is_val(text: str, val_fraction: float) -> bool:
  """Held out by content hash: the same text lands in the same split wherever and however often
  it appears (C4 has duplicates; a duplicate never straddles train and val)."""
  digest = hashlib.blake2b(text.encode("utf-8", errors="replace"), digest_size=8).digest()
  return int.from_bytes(digest, "big") < val_fraction * 2**64
