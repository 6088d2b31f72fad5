"""Train splits of other sizes for the schedule-law runs: is the data repetition the cause?

The schedule sets of laws_lm* train on the stdlib corpus with the 1,024-piece BPE: about 4.5M
train tokens, so the 32-unit runs (15.7M tokens) see each token about 3.5 times and the 8-unit
runs (3.9M tokens) about 0.9 times. This module writes two row datasets (the one format,
anytime.lm.row_files) that change only the train split, with the stdlib corpus's tokenizer and
validation files unchanged byte for byte:

- ``quarter``: the first quarter of the stdlib train rows (in file order, each row as stored), so
  that the 8-unit runs repeat their data as often as the 32-unit runs do (3.5 passes);
- ``fresh``: the stdlib train rows followed by more Python sources, encoded with the same
  tokenizer and packed into rows by the prepare pipeline's own step (beam_prepare.write_shard,
  one more shard, every document to train): the stdlib's own ``test`` package and the ``.py``
  files of this interpreter's site-packages (minus test suites, vendored copies and files over
  1 MB), so that the 32-unit runs see each token about 0.3 times. Which files these are depends
  on the installed package versions; ``meta.json`` records their count and a hash of their names
  and contents.

Each is ``<cache root>/laws-<kind>-<stdlib key>`` (cache root as anytime.lm.corpus), written to a
temporary directory and renamed when complete. Runs read it with ``data.source=tokens``. (Before
issue #28 these were cut from the flat token stream; the committed laws_lm results rebuild from
their logs, so only new runs see the row-format splits.)
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

from anytime.lm import beam_prepare, corpus, row_files, shards
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


def _file_stats(rows: np.ndarray, entry: dict, eos: int) -> dict:
  """A row file's meta.json entry for rows cut from entry's file (tokens of its packed stream)."""
  stream_tokens = rows.shape[0] * (rows.shape[1] - 1) + (1 if len(rows) else 0)
  documents = int(np.count_nonzero(rows[:, 1:] == eos)) + int(len(rows) and rows[0, 0] == eos)
  return dict(
    entry,
    rows=int(rows.shape[0]),
    tokens=stream_tokens,
    documents=documents,
    dropped_tokens=0,
    max_id=int(rows.max()) if rows.size else -1,
  )


def _quarter(base: str, meta: dict, tmp: str) -> tuple[list[dict], dict]:
  """The first quarter of the train rows, copied record for record."""
  split = row_files.open_split(base, meta, "train")
  keep = split.rows // 4
  files, first = [], 0
  for entry in meta["splits"]["train"]["files"]:
    take = min(entry["rows"], keep - first)
    if take <= 0:
      break
    rows = split.read(np.arange(first, first + take))
    writer = row_files.rows_writer(os.path.join(tmp, entry["file"]))
    for row in rows:
      writer.write(row.tobytes())
    writer.close()
    files.append(_file_stats(rows, entry, meta["eos_id"]))
    first += entry["rows"]
  return files, dict(kind="quarter", from_rows=int(split.rows))


def _fresh(base: str, meta: dict, tmp: str, num_threads: int) -> tuple[list[dict], dict]:
  """Every train file, plus one more shard of the extra files (all train) by write_shard."""
  for entry in meta["splits"]["train"]["files"]:
    shutil.copyfile(os.path.join(base, entry["file"]), os.path.join(tmp, entry["file"]))
  tok = tokenizer_lib.Tokenizer.from_file(os.path.join(base, meta["tokenizer"]))
  files = extra_files()
  digest = hashlib.sha256()
  for path in files:
    with open(path, "rb") as f:
      digest.update(os.path.relpath(path, os.path.dirname(path)).encode() + b"\x00" + f.read())
  index = 1 + max(e["shard"] for s in ("train", "val") for e in meta["splits"][s]["files"])
  shard = shards.Shard(index, "text", tuple(files), sum(os.path.getsize(p) for p in files))
  opts = dict(
    output_dir=tmp,
    seq_len=meta["seq_len"],
    val_fraction=0.0,
    val_by_shard=True,  # with no val shard: every document to train
    text_field="text",
    split="file",
    skip_bad=False,
    encode_threads=num_threads,
  )
  stats = {s["split"]: s for s in beam_prepare.write_shard(shard, tok, opts)}
  os.remove(os.path.join(tmp, stats["val"]["file"]))  # empty; the val split stays the stdlib's
  added = {k: v for k, v in stats["train"].items() if k != "split"}
  source = dict(kind="fresh", extra_files=len(files), extra_sha256=digest.hexdigest())
  return [*meta["splits"]["train"]["files"], added], source


def prepare_kind(kind: str, cache: str | None = None, num_threads: int = 2) -> str:
  """Writes the ``kind`` row dataset if it does not exist yet; returns its path."""
  out = token_dir(kind, cache)
  if os.path.exists(os.path.join(out, row_files.META_FILE)):
    return out
  base = _stdlib_dir(cache)
  meta = row_files.read_meta(base)
  tmp = f"{out}.tmp-{os.getpid()}-{uuid.uuid4().hex}"
  os.makedirs(tmp)
  try:
    if kind == "quarter":
      files, source = _quarter(base, meta, tmp)
    else:
      files, source = _fresh(base, meta, tmp, num_threads)
    for name in [e["file"] for e in meta["splits"]["val"]["files"]] + [meta["tokenizer"]]:
      shutil.copyfile(os.path.join(base, name), os.path.join(tmp, name))
    new = dict(meta)
    train = dict(files=files)
    for k in ("rows", "tokens", "documents", "dropped_tokens"):
      train[k] = sum(int(f[k]) for f in files)
    new["splits"] = dict(meta["splits"], train=train)
    new["source"] = dict(meta.get("source", {}), laws_lm_data=source)
    with open(os.path.join(tmp, row_files.META_FILE), "w") as f:
      json.dump(new, f, indent=1, sort_keys=True)
    os.rename(tmp, out)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    if os.path.exists(os.path.join(out, row_files.META_FILE)):
      return out  # another process published it first
    raise
  return out


def train_tokens(path: str) -> int:
  """Tokens of the train split's packed streams (meta.json's count)."""
  with open(os.path.join(path, row_files.META_FILE)) as f:
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
