"""Train splits of other sizes for the schedule-law runs: is the data repetition the cause?

The schedule sets of laws_lm* train on the stdlib corpus with the 1,024-piece BPE: 4.53M train
tokens, so the 32-unit runs (15.7M tokens) see each token about 3.5 times and the 8-unit runs
(3.9M tokens) about 0.9 times. This module writes two token directories that change only the
train split, with the stdlib corpus's tokenizer and validation split unchanged:

- ``quarter``: the first quarter of the stdlib train tokens (cut after an EOS), so that the
  8-unit runs repeat their data as often as the 32-unit runs do (3.5 passes);
- ``fresh``: the stdlib train tokens followed by more Python sources, encoded with the same
  tokenizer: the stdlib's own ``test`` package and the ``.py`` files of this interpreter's
  site-packages (minus test suites, vendored copies and files over 1 MB), so that the 32-unit
  runs see each token about 0.3 times. Which files these are depends on the installed package
  versions; ``meta.json`` records their count and a hash of their names and contents.

Each is ``<cache root>/laws-<kind>-<stdlib key>`` (cache root as anytime.lm.corpus), written to a
temporary directory and renamed when complete. Runs read it with ``data.source=tokens``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sysconfig
import uuid

import numpy as np

from anytime.lm import corpus, prepare
from anytime.lm import tokenizer as tokenizer_lib
from anytime.sweeps import common as sc

KINDS = ("quarter", "fresh")
VOCAB = 1024  # laws_lm's tokenizer (the demo sweep's data.tokenizer_vocab_size)
_SKIP_DIRS = {"test", "tests", "testing", "_vendor", "_distutils", "__pycache__"}
_MAX_FILE_BYTES = 1 << 20  # generated tables and data dumps, not code


def _check_kind(kind: str) -> None:
  if kind not in KINDS:
    raise ValueError(f"kind={kind!r} is invalid: allowed {KINDS}.")


def _stdlib_dir(cache: str | None) -> str:
  return corpus.ensure_stdlib_tokens(vocab_size=VOCAB, cache_path=cache)


def token_dir(kind: str, cache: str | None = None) -> str:
  """Where the ``kind`` train split lives (it need not exist yet)."""
  _check_kind(kind)
  base = os.path.basename(_stdlib_dir(cache))
  return os.path.join(corpus.cache_root(cache), f"laws-{kind}-{base.removeprefix('stdlib-')}")


def extra_files() -> list[str]:
  """The sources ``fresh`` appends, sorted: the stdlib's test package, then site-packages."""
  roots = [os.path.join(corpus.stdlib_dir(), "test"), sysconfig.get_paths()["purelib"]]
  found = []
  for root in roots:
    if not os.path.isdir(root):
      continue
    for directory, subdirs, files in os.walk(root):
      # The test package is wanted itself, its nested test dirs are not.
      subdirs[:] = sorted(d for d in subdirs if d not in _SKIP_DIRS)
      for name in sorted(files):
        path = os.path.join(directory, name)
        wanted = name.endswith(".py") and not os.path.islink(path) and os.path.isfile(path)
        if wanted and os.path.getsize(path) <= _MAX_FILE_BYTES:
          found.append(path)
  return found


def _tokens(path: str, meta: dict, split: str) -> np.ndarray:
  file = os.path.join(path, meta["splits"][split]["file"])
  return np.memmap(file, dtype=meta["dtype"], mode="r")


def prepare_kind(kind: str, cache: str | None = None, num_threads: int = 2) -> str:
  """Writes the ``kind`` token directory if it does not exist yet; returns its path."""
  out = token_dir(kind, cache)
  if os.path.exists(os.path.join(out, prepare.META_FILE)):
    return out
  base = _stdlib_dir(cache)
  with open(os.path.join(base, prepare.META_FILE)) as f:
    meta = json.load(f)
  train = _tokens(base, meta, "train")
  eos = meta["eos_id"]
  if kind == "quarter":
    ends = np.flatnonzero(np.asarray(train[: train.size // 4]) == eos)
    parts = [np.asarray(train[: int(ends[-1]) + 1])]
    source = dict(kind=kind, from_tokens=int(train.size))
  else:
    tok = tokenizer_lib.Tokenizer.from_file(os.path.join(base, meta["tokenizer"]))
    files = extra_files()
    digest = hashlib.sha256()
    texts = []
    for path in files:
      with open(path, "rb") as f:
        data = f.read()
      digest.update(os.path.relpath(path, os.path.dirname(path)).encode() + b"\x00" + data)
      texts.append(data.decode("utf-8", errors="replace"))
    parts = [np.asarray(train)]
    for ids in tok.encode_batch(texts, num_threads=num_threads):
      parts.append(np.asarray([*ids, eos], dtype=meta["dtype"]))
    source = dict(kind=kind, extra_files=len(files), extra_sha256=digest.hexdigest())
  train_out = np.concatenate(parts).astype(meta["dtype"])
  tmp = f"{out}.tmp-{os.getpid()}-{uuid.uuid4().hex}"
  os.makedirs(tmp)
  try:
    train_out.tofile(os.path.join(tmp, meta["splits"]["train"]["file"]))
    for name in (meta["splits"]["val"]["file"], meta["tokenizer"]):
      shutil.copyfile(os.path.join(base, name), os.path.join(tmp, name))
    new = dict(meta)
    new["splits"] = dict(meta["splits"])
    new["splits"]["train"] = dict(meta["splits"]["train"], tokens=int(train_out.size))
    new["source"] = dict(meta["source"], laws_lm_data=source)
    with open(os.path.join(tmp, prepare.META_FILE), "w") as f:
      json.dump(new, f, indent=2, sort_keys=True)
    os.rename(tmp, out)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    if os.path.exists(os.path.join(out, prepare.META_FILE)):
      return out  # another process published it first
    raise
  return out


def train_tokens(path: str) -> int:
  with open(os.path.join(path, prepare.META_FILE)) as f:
    return int(json.load(f)["splits"]["train"]["tokens"])


def prefixed(runs: list[sc.Run], prefix: str) -> list[sc.Run]:
  """``runs`` renamed ``<prefix><name>``, with their parents and WSD ``init_from``."""

  def rename(name):
    return None if name is None else prefix + name

  out = []
  for r in runs:
    overrides = tuple((k, rename(v) if k == "init_from" else v) for k, v in r.overrides)
    out.append(
      dataclasses.replace(r, name=rename(r.name), parent=rename(r.parent), overrides=overrides)
    )
  return out


def retarget(runs: list[sc.Run], kind: str, path: str = "") -> list[sc.Run]:
  """``runs`` renamed ``<kind>_<name>`` (parents and WSD ``init_from`` too), reading the
  ``kind`` token directory at ``path`` (empty: names only, for reading logs)."""
  _check_kind(kind)
  data = (("data.source", "tokens"), ("data.path", path))
  return [dataclasses.replace(r, overrides=r.overrides + data) for r in prefixed(runs, f"{kind}_")]
