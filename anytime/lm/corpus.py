"""The embedded default corpus: the Python standard library's own sources.

Every machine with Python has them, so the LM trainer runs on real text with no download. The
corpus is the ``.py`` files under ``sysconfig.get_paths()["stdlib"]`` of the running interpreter,
excluding what differs between installations of the same Python version: third-party packages
(``site-packages``, ``dist-packages``), the test suites (``test``, ``tests``, ``idle_test``:
Debian ships them in a separate package), build configuration (``config-*`` dirs,
``_sysconfigdata*.py``). For CPython 3.11 that is 732 files, 12.1 MB, 3.5M tokens with the
4096-piece BPE. ``extra_text_dirs`` adds the text files of other directories (e.g. the stdlib's
``test`` dir, /usr/share/doc) to make the corpus larger.

On first use the corpus is prepared into ``<cache root>/stdlib-<key>``: the cache root is
data_cfg.path, else $ANYTIME_CACHE, else ~/.cache/anytime; the key hashes the Python version, the
file names and contents, the options, the stored row length and the sentencepiece version, so a
changed corpus or option gets a new directory and an unchanged one is reused. It is the one
dataset format (anytime.lm.row_files), written by the prepare pipeline's own steps
(anytime.lm.beam_prepare.prepare_shards, runner ``InProcess``: no Beam start-up, the same bytes
``python -m anytime.lm.prepare`` writes for these files), into a temporary directory renamed
only once complete.

Rows are stored at seq_len 1024 (ROW_SEQ_LEN), which every preset's seq_len divides; a trainer
seq_len that does not divide it gets its own cache directory at that length.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import sysconfig
import uuid
from collections.abc import Sequence

import sentencepiece

from anytime.lm import beam_prepare, row_files, shards

_EXCLUDED_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
_EXTRA_EXTENSIONS = (".py", ".txt", ".rst", ".md", ".gz")
CORPUS_VERSION = 2  # bump when the file selection or preparation changes (2: row format, #28)
ROW_SEQ_LEN = 1024  # stored row length; every preset's seq_len divides it


def stdlib_dir() -> str:
  return sysconfig.get_paths()["stdlib"]


def stdlib_files(root: str | None = None) -> list[str]:
  """Relative posix paths of the stdlib .py files the corpus uses, sorted."""
  root = root or stdlib_dir()
  found = []
  for directory, subdirs, files in os.walk(root):
    subdirs[:] = sorted(
      d for d in subdirs if d not in _EXCLUDED_DIRS and not d.startswith("config-")
    )
    for name in files:
      if name.endswith(".py") and not name.startswith("_sysconfigdata"):
        rel = os.path.relpath(os.path.join(directory, name), root)
        found.append(rel.replace(os.sep, "/"))
  return sorted(found)


def corpus_files(extra_text_dirs: Sequence[str] = ()) -> list[tuple[str, str]]:
  """(name, path) of every file of the corpus, in order: the stdlib's, then each extra dir's."""
  root = stdlib_dir()
  found = [(f"stdlib/{rel}", os.path.join(root, rel)) for rel in stdlib_files(root)]
  for k, extra in enumerate(extra_text_dirs):
    for path in shards.list_files(extra, _EXTRA_EXTENSIONS):
      found.append((f"extra{k}/{os.path.relpath(path, extra).replace(os.sep, '/')}", path))
  return found


def row_seq_len(seq_len: int | None = None) -> int:
  """The stored row length for a trainer seq_len: ROW_SEQ_LEN when seq_len divides it."""
  if seq_len is None or ROW_SEQ_LEN % int(seq_len) == 0:
    return ROW_SEQ_LEN
  return int(seq_len)


def cache_root(path: str | None = None) -> str:
  return os.path.abspath(
    os.path.expanduser(
      path or os.environ.get("ANYTIME_CACHE") or os.path.join("~", ".cache", "anytime")
    )
  )


def corpus_key(
  files: Sequence[tuple[str, str]], *, vocab_size: int, val_fraction: float, seq_len: int
) -> tuple[str, dict]:
  """(short hex key, description) identifying the prepared corpus."""
  content = hashlib.sha256()
  for name, path in files:
    with open(path, "rb") as f:
      content.update(name.encode() + b"\x00" + f.read() + b"\x00")
  description = dict(
    corpus="stdlib",
    corpus_version=CORPUS_VERSION,
    python=platform.python_implementation() + " " + ".".join(map(str, sys.version_info[:3])),
    documents=len(files),
    content_sha256=content.hexdigest(),
    vocab_size=vocab_size,
    val_fraction=val_fraction,
    seq_len=seq_len,
    sentencepiece=sentencepiece.__version__,
    format=row_files.FORMAT,
    format_version=row_files.FORMAT_VERSION,
  )
  key = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]
  return key, description


def ensure_stdlib_tokens(
  *,
  vocab_size: int = 4096,
  val_fraction: float = 0.05,
  extra_text_dirs: Sequence[str] = (),
  cache_path: str | None = None,
  num_threads: int = 2,
  seq_len: int | None = None,
) -> str:
  """The row dataset of the stdlib corpus, preparing it first if it is not cached yet.

  seq_len is the trainer's; the rows are stored at row_seq_len(seq_len). num_threads encodes
  with that many sentencepiece threads (the ids do not depend on it).
  """
  files = corpus_files(extra_text_dirs)
  stored = row_seq_len(seq_len)
  key, description = corpus_key(
    files, vocab_size=vocab_size, val_fraction=val_fraction, seq_len=stored
  )
  description["extra_text_dirs"] = [os.path.abspath(d) for d in extra_text_dirs]
  root = cache_root(cache_path)
  output_dir = os.path.join(root, f"stdlib-{key}")
  if os.path.exists(os.path.join(output_dir, row_files.META_FILE)):
    return output_dir
  tmp = os.path.join(root, f".stdlib-{key}.tmp-{os.getpid()}-{uuid.uuid4().hex}")
  try:
    meta = beam_prepare.prepare_shards(
      shards.file_shards([path for _, path in files]),
      tmp,
      vocab_size=vocab_size,
      seq_len=stored,
      val_fraction=val_fraction,
      runner=beam_prepare.IN_PROCESS,
      encode_threads=num_threads,
      source=description,
    )
    if meta["vocab_size"] != vocab_size:
      raise ValueError(f"stdlib tokenizer has {meta['vocab_size']} pieces, expected {vocab_size}")
    os.rename(tmp, output_dir)
  except (ValueError, OSError):
    shutil.rmtree(tmp, ignore_errors=True)
    # Another process may have published the same directory first: then use it.
    if os.path.exists(os.path.join(output_dir, row_files.META_FILE)):
      return output_dir
    raise
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return output_dir
