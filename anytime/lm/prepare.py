"""``python -m anytime.lm.prepare``: the Beam pipeline (anytime.lm.beam_prepare), and the in-memory
flat-token writer the cached stdlib corpus still uses.

    python -m anytime.lm.prepare --input='c4-train.*.json.gz' | --input_dir=DIR --output_dir=OUT ...

writes an ArrayRecord row dataset (anytime.lm.row_files; docs/data.md). The functions below,
prepare_documents and friends, are what the stdlib corpus cache (anytime.lm.corpus) and
experiments/laws_lm build on; they hold the corpus in memory. prepare_documents:

Trains a lossless sentencepiece BPE (anytime.lm.tokenizer) on the training documents, or loads the
one given by --tokenizer, and writes OUT/ in the token-file format that anytime.lm.data reads:

    train.bin, val.bin   flat arrays of token ids (uint16 when vocab_size <= 65536, else uint32),
                         every document followed by EOS
    tokenizer.model      the sentencepiece model the ids come from
    meta.json            format, dtype, vocab_size, eos_id, tokenizer file + sha256, per split the
                         number of tokens and documents, and where the text came from

The validation split is held out by document: documents are ordered by the sha256 of their name
(path relative to the input dir, plus ":k" for the k-th line or paragraph) and taken from the front,
skipping any that would overshoot, until they hold val_fraction of the characters (at least one
document each side). This depends only on the names and texts, never on the file system's listing
order or on a random seed. The output directory is written
under a temporary name and renamed when complete, so an interrupted run never leaves a directory
that looks finished. The corpus is held in memory while it is prepared (fine for a few GB here);
for C4-scale data write the same format with your own tokenization job.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Sequence

import numpy as np

from anytime.lm import tokenizer as tokenizer_lib

FORMAT = "anytime-tokens"
FORMAT_VERSION = 1
META_FILE = "meta.json"
TOKENIZER_FILE = "tokenizer.model"
SPLIT_FILES = {"train": "train.bin", "val": "val.bin"}
SPLITS = ("file", "line", "paragraph")

Document = tuple[str, str]  # (name, text)


def token_dtype(vocab_size: int) -> np.dtype:
  """The narrowest unsigned dtype holding every id below vocab_size."""
  return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def _read_text(path: str) -> str | None:
  """The file's text (gzip transparently), or None for binary files (NUL bytes)."""
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError):
    return None
  if b"\x00" in data:
    return None
  return data.decode("utf-8", errors="replace")


def list_files(root: str, extensions: Sequence[str] | None = None) -> list[str]:
  """Regular files under root (recursively, symlinks not followed), sorted by relative path."""
  found = []
  for directory, subdirs, files in os.walk(root):
    subdirs.sort()
    for name in files:
      path = os.path.join(directory, name)
      if not os.path.isfile(path) or os.path.islink(path):
        continue
      if extensions and not any(name.endswith(ext) for ext in extensions):
        continue
      found.append(os.path.relpath(path, root))
  return sorted(found, key=lambda p: p.replace(os.sep, "/"))


def documents_from_texts(named_texts: Sequence[Document], split: str = "file") -> list[Document]:
  """Cuts (name, text) pairs into documents: the whole text, each line, or each paragraph."""
  if split not in SPLITS:
    raise ValueError(f"split={split!r} is not one of {SPLITS}")
  documents = []
  for name, text in named_texts:
    if split == "file":
      parts = [text]
    elif split == "line":
      parts = text.splitlines()
    else:
      parts = [p for p in text.replace("\r\n", "\n").split("\n\n")]
    documents.extend(
      (name if split == "file" else f"{name}:{k}", part)
      for k, part in enumerate(parts)
      if part.strip()
    )
  return documents


def read_text_documents(
  input_dir: str, *, split: str = "file", extensions: Sequence[str] | None = None
) -> list[Document]:
  """The documents of every text file under input_dir (names are posix relative paths)."""
  if not os.path.isdir(input_dir):
    raise ValueError(f"input_dir={input_dir!r} is not a directory")
  named_texts = []
  for rel in list_files(input_dir, extensions):
    text = _read_text(os.path.join(input_dir, rel))
    if text is not None:
      named_texts.append((rel.replace(os.sep, "/"), text))
  documents = documents_from_texts(named_texts, split)
  if not documents:
    raise ValueError(f"input_dir={input_dir!r} holds no text documents (extensions={extensions})")
  return documents


def split_documents(
  documents: Sequence[Document], val_fraction: float
) -> tuple[list[Document], list[Document]]:
  """(train, val): val takes documents in sha256(name) order until it has val_fraction of the chars.

  A document that would push val past 1.05 x its share is skipped (kept for training), so the
  split is close to val_fraction even with a few large documents.

  The returned lists keep the input order. Needs >= 2 documents; names must be unique.
  """
  if not 0.0 < val_fraction < 1.0:
    raise ValueError(f"val_fraction={val_fraction} must be in (0, 1)")
  if len(documents) < 2:
    raise ValueError(
      f"need at least 2 documents to hold one out for validation, got {len(documents)}"
    )
  names = [name for name, _ in documents]
  if len(set(names)) != len(names):
    raise ValueError("document names must be unique")
  order = sorted(range(len(documents)), key=lambda i: hashlib.sha256(names[i].encode()).digest())
  total = sum(len(text) for _, text in documents)
  target = val_fraction * total
  val_ids, val_chars = set(), 0
  for i in order:
    if val_chars >= target or len(val_ids) == len(documents) - 1:
      break
    size = len(documents[i][1])
    if not val_ids or val_chars + size <= 1.05 * target:  # skip documents that overshoot
      val_ids.add(i)
      val_chars += size
  train = [d for i, d in enumerate(documents) if i not in val_ids]
  val = [d for i, d in enumerate(documents) if i in val_ids]
  return train, val


def _write_split(
  path: str, documents: Sequence[Document], tok: tokenizer_lib.Tokenizer, dtype, num_threads: int
) -> int:
  """Encodes documents (each followed by EOS) into path in batches; returns the number of tokens."""
  count = 0
  with open(path, "wb") as f:
    batch, batch_chars = [], 0
    for k, (_, text) in enumerate(documents):
      batch.append(text)
      batch_chars += len(text)
      if batch_chars >= 4_000_000 or k == len(documents) - 1:
        for ids in tok.encode_batch(batch, num_threads=num_threads):
          ids.append(tok.eos_id)
          np.asarray(ids, dtype=dtype).tofile(f)
          count += len(ids)
        batch, batch_chars = [], 0
  return count


def prepare_documents(
  documents: Sequence[Document],
  output_dir: str,
  *,
  vocab_size: int = 4096,
  tokenizer_path: str | None = None,
  val_fraction: float = 0.05,
  overwrite: bool = False,
  num_threads: int = 2,
  source: dict | None = None,
) -> dict:
  """Writes token files for documents into output_dir (atomically); returns the meta dict.

  With tokenizer_path, that sentencepiece model is used (vocab_size is ignored); otherwise a
  vocab_size-piece BPE is trained on the training documents only.
  """
  output_dir = os.path.abspath(output_dir)
  if os.path.exists(output_dir) and not overwrite:
    raise ValueError(f"output_dir={output_dir!r} exists; pass overwrite=True (--overwrite)")
  started = time.perf_counter()
  train, val = split_documents(documents, val_fraction)
  if tokenizer_path:
    tok = tokenizer_lib.Tokenizer.from_file(tokenizer_path)
  else:
    tok = tokenizer_lib.Tokenizer(tokenizer_lib.train_bpe((t for _, t in train), vocab_size))
  trained = time.perf_counter()
  dtype = token_dtype(tok.vocab_size)

  parent = os.path.dirname(output_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = os.path.join(
    parent, f".{os.path.basename(output_dir)}.tmp-{os.getpid()}-{uuid.uuid4().hex}"
  )
  os.makedirs(tmp)
  try:
    splits = {}
    for split, docs in (("train", train), ("val", val)):
      n = _write_split(os.path.join(tmp, SPLIT_FILES[split]), docs, tok, dtype, num_threads)
      splits[split] = dict(
        file=SPLIT_FILES[split],
        tokens=n,
        documents=len(docs),
        chars=sum(len(t) for _, t in docs),
      )
    with open(os.path.join(tmp, TOKENIZER_FILE), "wb") as f:
      f.write(tok.model_bytes)
    meta = dict(
      format=FORMAT,
      format_version=FORMAT_VERSION,
      dtype=dtype.name,
      vocab_size=tok.vocab_size,
      eos_id=tok.eos_id,
      tokenizer=TOKENIZER_FILE,
      tokenizer_sha256=tok.sha256,
      tokenizer_trained=not tokenizer_path,
      val_fraction=val_fraction,
      splits=splits,
      source=source or {},
      seconds=dict(
        tokenizer=round(trained - started, 3), encode=round(time.perf_counter() - trained, 3)
      ),
    )
    with open(os.path.join(tmp, META_FILE), "w") as f:
      json.dump(meta, f, indent=2, sort_keys=True)
    for name in os.listdir(tmp):
      with open(os.path.join(tmp, name), "rb") as f:
        os.fsync(f.fileno())
    _publish(tmp, output_dir, overwrite)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return meta


def _publish(tmp: str, output_dir: str, overwrite: bool) -> None:
  """Renames the complete tmp dir to output_dir (replacing an old one only when overwrite)."""
  if os.path.exists(output_dir):
    if not overwrite:
      raise FileExistsError(output_dir)
    trash = f"{tmp}.old"
    os.rename(output_dir, trash)
    os.rename(tmp, output_dir)
    shutil.rmtree(trash, ignore_errors=True)
  else:
    os.rename(tmp, output_dir)


def main(argv: Sequence[str] | None = None) -> dict:
  """The command line: the Beam pipeline of anytime.lm.beam_prepare (ArrayRecord row datasets)."""
  try:
    from anytime.lm import beam_prepare
  except ImportError as err:  # pragma: no cover - the trainer-only install
    raise ValueError(
      f"the prepare pipeline needs the beam extra: pip install -e '.[beam]' ({err})"
    ) from err
  return beam_prepare.main(argv)


if __name__ == "__main__":
  try:
    main()
  except ValueError as err:
    sys.exit(f"prepare: error: {err}")
