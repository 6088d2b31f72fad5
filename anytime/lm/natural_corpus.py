"""``python -m anytime.lm.natural_corpus``: natural text from Debian documentation, offline.

    python -m anytime.lm.natural_corpus --output_dir=OUT [--install] [--vocab_size=4096]
        [--params=100000] [--val_fraction=0.02] [--allow_missing]

Issue #30 needs ~40-64M training tokens of natural text (32x Chinchilla of a 50-100k
non-embedding-parameter model in at most one epoch) on a machine without network access to C4.
Every source here is free software documentation a fresh Debian/Ubuntu machine installs with one
``apt-get install`` line (SOURCES: package, license, which of its files are read). The command
installs nothing unless asked (--install): it reads the files dpkg says each package installed
(/var/lib/dpkg/info/PKG.list, so other packages' files never change the corpus) and prints the
install line for what is missing.

Steps: one document per file/page (HTML -> text with html.parser, gzip'd troff -> text with its
macros stripped, POD/plain text as is) -> drop short documents -> drop exact and near duplicates
(anytime.lm.near_dup, in SOURCES order, so the first copy is kept) -> hold out val_fraction of
every source's documents by content hash (at least one per source) -> gzip'd JSON-lines shards
``{"text", "source"}`` per split under OUT/jsonl -> the project's prepare pipeline
(beam_prepare.prepare_shards with the val shards as --val_input) into OUT/rows, the row format
the trainer reads, exactly as ``python -m anytime.lm.prepare --input=... --val_input=...`` would.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from anytime.lm import corpus, near_dup
from anytime.lm.extract import html_to_text, man_to_text

MIN_CHARS = 500  # shorter documents (stub pages, link-only man pages) are dropped
SHARD_CHARS = 64 << 20  # text per JSON-lines shard (uncompressed)
CHINCHILLA_TOKENS_PER_PARAM = 20


@dataclasses.dataclass(frozen=True)
class Source:
  name: str
  package: str  # Debian package ("" for the running interpreter's stdlib)
  license: str
  select: Callable[[str], str | None]  # installed path -> "html" | "man" | "text" | None


def _under(prefix: str, suffixes: tuple[str, ...], kind: str, exclude: tuple[str, ...] = ()):
  def select(path: str) -> str | None:
    if path.startswith(prefix) and path.endswith(suffixes) and not any(e in path for e in exclude):
      return kind
    return None

  return select


def _fortune(path: str) -> str | None:
  base = os.path.basename(path)
  return "text" if path.startswith("/usr/share/games/fortunes/") and "." not in base else None


def _man(path: str) -> str | None:
  return "man" if re.match(r"/usr/share/man/man\w+/[^/]+\.gz$", path) else None


_SPHINX_EXTRA = ("/_static/", "/_sources/", "genindex", "/search.html", "modindex")

SOURCES = (
  Source("stdlib", "", "PSF-2.0", lambda p: "text"),
  Source(
    "python-doc",
    "python3.11-doc",
    "PSF-2.0",
    _under("/usr/share/doc/python3.11/html/", (".html",), "html", ("genindex", "modindex")),
  ),
  Source(
    "linux-doc",
    "linux-doc-6.1",
    "GPL-2.0",
    _under("/usr/share/doc/linux-doc-6.1/Documentation/", (".rst.gz", ".txt.gz"), "text"),
  ),
  Source(
    "postgresql-doc",
    "postgresql-doc-15",
    "PostgreSQL",
    _under("/usr/share/doc/postgresql-doc-15/html/", (".html",), "html", ("bookindex",)),
  ),
  Source(
    "sqlite-doc", "sqlite3-doc", "public-domain", _under("/usr/share/doc/", (".html",), "html")
  ),
  Source(
    "perl-doc", "perl-doc", "GPL-1+ or Artistic", _under("/usr/share/perl/", (".pod",), "text")
  ),
  Source("git-doc", "git-doc", "GPL-2.0", _under("/usr/share/doc/git-doc/", (".txt",), "text")),
  Source("man", "manpages", "man-pages licenses (verbatim, GPL, BSD; DFSG-free)", _man),
  Source("man-dev", "manpages-dev", "man-pages licenses (verbatim, GPL, BSD; DFSG-free)", _man),
  Source("fortunes", "fortunes", "BSD-3-Clause / public domain", _fortune),
  Source(
    "scipy-doc",
    "python-scipy-doc",
    "BSD-3-Clause",
    _under("/usr/share/doc/python-scipy-doc/html/", (".html",), "html", _SPHINX_EXTRA),
  ),
  Source(
    "octave-doc",
    "octave-doc",
    "GPL-3+",
    _under("/usr/share/doc/octave/octave.html/", (".html",), "html", ("Index",)),
  ),
  Source(
    "perl-modules",
    "perl-modules-5.36",
    "GPL-1+ or Artistic",
    _under("/usr/share/perl/", (".pm", ".pod"), "text"),
  ),
  Source(
    "debian-handbook",
    "debian-handbook",
    "GPL-2.0+ or CC-BY-SA-3.0",
    _under("/usr/share/doc/debian-handbook/html/en-US/", (".html",), "html"),
  ),
  Source("debian-reference", "debian-reference-en", "GPL-2+", _under("/", (".html",), "html")),
  Source(
    "debian-policy", "debian-policy", "GPL-2+", _under("/", (".html",), "html", _SPHINX_EXTRA)
  ),
  Source(
    "developers-reference",
    "developers-reference",
    "GPL-2",
    _under("/", (".html",), "html", _SPHINX_EXTRA),
  ),
  Source(
    "erlang-doc",
    "erlang-doc",
    "Apache-2.0",
    _under("/usr/share/doc/erlang-doc/", (".html",), "html", ("/java/", "index")),
  ),
  Source("openssl-man", "libssl-doc", "Apache-2.0", _man),
  Source("vim-doc", "vim-doc", "Vim (GPL-compatible)", _under("/", (".html",), "html")),
  Source("nodejs-doc", "nodejs-doc", "Expat", _under("/", (".html",), "html", ("/all.html",))),
  Source(
    "stdlib-tests",
    "libpython3.11-testsuite",
    "PSF-2.0",
    _under("/usr/lib/python3.11/", (".py",), "text"),
  ),
)


def _dpkg_list(package: str) -> list[str] | None:
  for name in (f"{package}.list", f"{package}:all.list"):
    path = os.path.join("/var/lib/dpkg/info", name)
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]
  return None


def source_files(source: Source) -> list[tuple[str, str]] | None:
  """(path, kind) of the source's documents, sorted; None when its package is not installed."""
  if not source.package:
    root = corpus.stdlib_dir()
    return [(os.path.join(root, rel), "text") for rel in corpus.stdlib_files(root)]
  listed = _dpkg_list(source.package)
  if listed is None:
    return None
  found = []
  for path in sorted(set(listed)):
    kind = source.select(path)
    if kind and os.path.isfile(path) and not os.path.islink(path):
      found.append((path, kind))
  return found


def read_document(path: str, kind: str) -> str:
  with open(path, "rb") as f:
    data = f.read()
  if path.endswith(".gz"):
    data = gzip.decompress(data)
  if b"\x00" in data:
    return ""
  text = data.decode("utf-8", errors="replace")
  if kind == "html":
    return html_to_text(text)
  if kind == "man":
    return man_to_text(text)
  return text


def content_hash(text: str) -> int:
  return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def collect(sources, files_of=source_files, min_chars: int = MIN_CHARS) -> tuple[list, dict]:
  """(documents as (source, text), per-source counts): extracted, short ones and duplicates out."""
  dedup = near_dup.Deduplicator()
  docs, stats = [], {}
  for source in sources:
    st = stats[source.name] = dict(files=0, short=0, exact=0, near=0, documents=0, chars=0)
    for path, kind in files_of(source) or []:
      st["files"] += 1
      text = read_document(path, kind).strip()
      if len(text) < min_chars:
        st["short"] += 1
        continue
      verdict = dedup.add(text)
      if verdict != "kept":
        st[verdict] += 1
        continue
      st["documents"] += 1
      st["chars"] += len(text)
      docs.append((source.name, text))
  return docs, stats


def split_documents(docs: list[tuple[str, str]], val_fraction: float) -> tuple[list, list]:
  """(train, val) by content hash, per source; a source whose hashes pick no document gives its
  smallest-hash one, so every source is in validation. Both are sorted by hash (sources mixed)."""
  cut = val_fraction * 2**64
  hashed = sorted((content_hash(t), s, t) for s, t in docs)
  val = [d for d in hashed if d[0] < cut]
  in_val = {s for _, s, _ in val}
  for h, s, t in hashed:
    if s not in in_val:
      val.append((h, s, t))
      in_val.add(s)
  val_keys = {(h, s) for h, s, _ in val}
  train = [d for d in hashed if (d[0], d[1]) not in val_keys]
  return [(s, t) for _, s, t in train], [(s, t) for _, s, t in sorted(val)]


def write_shards(docs: list[tuple[str, str]], directory: str, split: str) -> list[str]:
  """Gzip'd JSON-lines shards of about SHARD_CHARS characters; their paths."""
  os.makedirs(directory, exist_ok=True)
  groups, group, size = [], [], 0
  for doc in docs:
    group.append(doc)
    size += len(doc[1])
    if size >= SHARD_CHARS:
      groups.append(group)
      group, size = [], 0
  if group or not groups:
    groups.append(group)
  paths = []
  for k, group in enumerate(groups):
    path = os.path.join(directory, f"{split}-{k:05d}-of-{len(groups):05d}.json.gz")
    with gzip.GzipFile(path, "wb", mtime=0) as f:
      for source, text in group:
        f.write(json.dumps({"text": text, "source": source}, ensure_ascii=False).encode() + b"\n")
    paths.append(path)
  return paths


def missing_packages(sources=SOURCES) -> list[str]:
  return [s.package for s in sources if s.package and _dpkg_list(s.package) is None]


def install_line(packages) -> str:
  return "apt-get install -y --no-install-recommends " + " ".join(packages)


def build(
  output_dir: str,
  *,
  sources=SOURCES,
  files_of=source_files,
  vocab_size: int = 4096,
  val_fraction: float = 0.02,
  sample_chars: int = 30_000_000,
  seq_len: int = 1024,
  min_chars: int = MIN_CHARS,
  threads: int = 2,
  overwrite: bool = False,
) -> dict:
  """Collects, deduplicates, splits, writes the shards and prepares them; returns the report."""
  from anytime.lm import beam_prepare, shards
  from anytime.lm import tokenizer as tokenizer_lib

  rows = os.path.join(output_dir, "rows")
  if os.path.exists(os.path.join(rows, "meta.json")) and not overwrite:  # before the long part
    raise ValueError(f"{rows} already holds a finished dataset; pass --overwrite to replace it")
  t0 = time.time()
  docs, stats = collect(sources, files_of, min_chars)
  train, val = split_documents(docs, val_fraction)
  jsonl = os.path.join(output_dir, "jsonl")
  for old in glob.glob(os.path.join(jsonl, "*.json.gz")):
    os.remove(old)
  write_shards(train, jsonl, "train")
  write_shards(val, jsonl, "val")
  t1 = time.time()
  train_glob, val_glob = os.path.join(jsonl, "train-*"), os.path.join(jsonl, "val-*")
  meta = beam_prepare.prepare_shards(
    shards.json_shards(train_glob, val_glob),
    rows,
    vocab_size=vocab_size,
    sample_chars=sample_chars,
    seq_len=seq_len,
    val_input=val_glob,
    overwrite=overwrite,
    runner=beam_prepare.IN_PROCESS,
    encode_threads=threads,
    source=dict(corpus="natural", sources=[s.name for s in sources]),
  )
  t2 = time.time()
  tok = tokenizer_lib.Tokenizer.from_file(os.path.join(rows, meta["tokenizer"]))
  for split, split_docs in (("train", train), ("val", val)):
    for name in stats:
      texts = [t for s, t in split_docs if s == name]
      n = sum(len(ids) + 1 for ids in tok.encode_batch(texts, num_threads=threads))  # + EOS
      stats[name][f"{split}_tokens"] = n
      stats[name][f"{split}_documents"] = len(texts)
  report = dict(
    sources={
      s.name: dict(stats[s.name], package=s.package or "python3 (stdlib)", license=s.license)
      for s in sources
    },
    train_tokens=meta["splits"]["train"]["tokens"],
    val_tokens=meta["splits"]["val"]["tokens"],
    vocab_size=meta["vocab_size"],
    seconds=dict(extract_dedup_split=round(t1 - t0, 1), prepare=round(t2 - t1, 1)),
  )
  report["seconds"]["total"] = round(time.time() - t0, 1)
  with open(os.path.join(output_dir, "report.json"), "w") as f:
    json.dump(report, f, indent=1, sort_keys=True)
  return report


def format_report(report: dict, params: int) -> Iterator[str]:
  yield (
    f"{'source':<21}{'files':>7}{'short':>7}{'exact':>7}{'near':>6}{'docs':>7}{'chars':>13}"
    f"{'train tok':>13}{'val docs':>9}{'val tok':>11}"
  )
  for name, s in report["sources"].items():
    yield (
      f"{name:<21}{s['files']:>7}{s['short']:>7}{s['exact']:>7}{s['near']:>6}{s['documents']:>7}"
      f"{s['chars']:>13,}{s['train_tokens']:>13,}{s['val_documents']:>9}{s['val_tokens']:>11,}"
    )
  tot = {k: sum(s[k] for s in report["sources"].values()) for k in ("documents", "chars")}
  need = 32 * CHINCHILLA_TOKENS_PER_PARAM * params
  train = report["train_tokens"]
  yield (
    f"total: {tot['documents']:,} documents, {tot['chars']:,} chars; rows: train {train:,} "
    f"tokens, val {report['val_tokens']:,} tokens (vocab {report['vocab_size']})"
  )
  yield (
    f"32x Chinchilla of {params:,} non-embedding params = {need:,} tokens = "
    f"{need / train:.2f} epochs of the training split (one epoch covers 32x Chinchilla up to "
    f"{train // (32 * CHINCHILLA_TOKENS_PER_PARAM):,} params); seconds {report['seconds']}"
  )


def main(argv=None) -> dict | None:
  p = argparse.ArgumentParser(prog="python -m anytime.lm.natural_corpus", description=__doc__)
  p.add_argument("--output_dir", required=True)
  p.add_argument("--install", action="store_true", help="run the apt-get line for missing ones")
  p.add_argument("--allow_missing", action="store_true", help="build from the installed ones")
  p.add_argument("--vocab_size", type=int, default=4096)
  p.add_argument("--val_fraction", type=float, default=0.02)
  p.add_argument("--tokenizer_sample_chars", type=int, default=30_000_000)
  p.add_argument("--params", type=int, default=100_000, help="non-embedding params (epochs)")
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--overwrite", action="store_true")
  args = p.parse_args(argv)
  missing = missing_packages()
  if missing:
    print(f"missing: {install_line(missing)}")
    if args.install:
      subprocess.run(install_line(missing).split(), check=True)
    elif not args.allow_missing:
      sys.exit("natural_corpus: install them (or pass --install / --allow_missing)")
  try:
    report = build(
      args.output_dir,
      vocab_size=args.vocab_size,
      val_fraction=args.val_fraction,
      sample_chars=args.tokenizer_sample_chars,
      threads=args.threads,
      overwrite=args.overwrite,
    )
  except ValueError as err:
    sys.exit(f"natural_corpus: error: {err}")
  for line in format_report(report, args.params):
    print(line)
  return report


__all__ = ["SOURCES", "Source", "build", "collect", "main", "split_documents", "write_shards"]
if __name__ == "__main__":
  main()
