"""The embedded default corpus: the Python standard library's own sources.

Every machine with Python has them, so the LM trainer runs on real text with no download. The
corpus is the ``.py`` files under ``sysconfig.get_paths()["stdlib"]`` of the running interpreter,
excluding what differs between installations of the same Python version: third-party packages
(``site-packages``, ``dist-packages``), the test suites (``test``, ``tests``, ``idle_test``:
Debian ships them in a separate package), build configuration (``config-*`` dirs,
``_sysconfigdata*.py``). For CPython 3.11 that is 732 files, 12.1 MB, 3.5M tokens with the
4096-piece BPE. ``extra_text_dirs`` adds the text files of other directories (e.g. the stdlib's
``test`` dir, /usr/share/doc) to make the corpus larger.

On first use the corpus is prepared (tokenizer + token files, anytime.lm.prepare) into
``<cache root>/stdlib-<key>``: the cache root is data_cfg.path, else $ANYTIME_CACHE, else
~/.cache/anytime; the key hashes the Python version, the file names and contents, the options and
the sentencepiece version, so a changed corpus or option gets a new directory and an unchanged one
is reused. The directory appears by an atomic rename only once complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import sysconfig
from collections.abc import Sequence

import sentencepiece

from anytime.lm import prepare

_EXCLUDED_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
_EXTRA_EXTENSIONS = (".py", ".txt", ".rst", ".md", ".gz")
CORPUS_VERSION = 1  # bump when the file selection or preparation changes


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


def corpus_documents(extra_text_dirs: Sequence[str] = ()) -> list[prepare.Document]:
  """The documents (one per file) of the stdlib corpus and any extra directories, in order."""
  root = stdlib_dir()
  documents = []
  for rel in stdlib_files(root):
    with open(os.path.join(root, rel), "rb") as f:
      documents.append((f"stdlib/{rel}", f.read().decode("utf-8", errors="replace")))
  for k, extra in enumerate(extra_text_dirs):
    for name, text in prepare.read_text_documents(extra, extensions=_EXTRA_EXTENSIONS):
      documents.append((f"extra{k}/{name}", text))
  return documents


def cache_root(path: str | None = None) -> str:
  return os.path.abspath(
    os.path.expanduser(
      path or os.environ.get("ANYTIME_CACHE") or os.path.join("~", ".cache", "anytime")
    )
  )


def corpus_key(
  documents: Sequence[prepare.Document], *, vocab_size: int, val_fraction: float
) -> tuple[str, dict]:
  """(short hex key, description) identifying the prepared corpus."""
  content = hashlib.sha256()
  for name, text in documents:
    content.update(name.encode() + b"\x00" + text.encode("utf-8", errors="replace") + b"\x00")
  description = dict(
    corpus="stdlib",
    corpus_version=CORPUS_VERSION,
    python=platform.python_implementation() + " " + ".".join(map(str, sys.version_info[:3])),
    documents=len(documents),
    content_sha256=content.hexdigest(),
    vocab_size=vocab_size,
    val_fraction=val_fraction,
    sentencepiece=sentencepiece.__version__,
    format_version=prepare.FORMAT_VERSION,
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
) -> str:
  """The token-file dir of the stdlib corpus, preparing it first if it is not cached yet."""
  documents = corpus_documents(extra_text_dirs)
  key, description = corpus_key(documents, vocab_size=vocab_size, val_fraction=val_fraction)
  description["extra_text_dirs"] = [os.path.abspath(d) for d in extra_text_dirs]
  output_dir = os.path.join(cache_root(cache_path), f"stdlib-{key}")
  if os.path.exists(os.path.join(output_dir, prepare.META_FILE)):
    return output_dir
  try:
    meta = prepare.prepare_documents(
      documents,
      output_dir,
      vocab_size=vocab_size,
      val_fraction=val_fraction,
      num_threads=num_threads,
      source=description,
    )
  except (ValueError, OSError):
    # Another process may have published the same directory first: then use it.
    if os.path.exists(os.path.join(output_dir, prepare.META_FILE)):
      return output_dir
    raise
  if meta["vocab_size"] != vocab_size:
    raise ValueError(f"stdlib tokenizer has {meta['vocab_size']} pieces, expected {vocab_size}")
  return output_dir
