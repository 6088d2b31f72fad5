"""The prepare pipeline on Apache Beam: JSON-lines shards (or a text dir) -> ArrayRecord rows.

    python -m anytime.lm.prepare --input='PATH/c4-train.*.json.gz' --output_dir=OUT
        [--val_input='PATH/c4-validation.*.json.gz' | --val_fraction=0.01] [--text_field=text]
        [--tokenizer=FILE.model|FILE.json [--eos_token=TOKEN]] [--vocab_size=N]
        [--seq_len=1024] [--skip_bad_records] [--overwrite] [--runner=DirectRunner]
        [Beam pipeline options, e.g. --direct_num_workers=2 or --project/--region/--temp_location]
    python -m anytime.lm.prepare --input_dir=DIR --output_dir=OUT [--split=file|line|paragraph]

Beam, not a home-made engine, because C4 (365M documents) outgrows one machine: the same
command runs on Dataflow, Flink or Spark by pipeline options alone, and on one machine on the
embedded DirectRunner (named explicitly: Beam's default, Prism, downloads a binary at run time).

One ParDo call turns one input shard into its row files (anytime.lm.row_files), written under a
temporary name and renamed, so the output depends only on the shard: identical bytes with any
number of workers. Beam's own ArrayRecord sink is not used: it writes local disk only and holds
every record in memory once the shard count is fixed. meta.json is written by the last step,
from every shard's statistics, so an interrupted run never looks finished. Without --tokenizer a
sentencepiece BPE is trained first, on the launcher, on a bounded sample of the training text.

--runner=InProcess runs the same two steps in this process without Beam (prepare_shards): the
embedded stdlib corpus (anytime.lm.corpus) is prepared this way on first use, so every dataset
the trainer reads, small or C4, is one format written by one code path.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Sequence

from anytime.lm import row_files, shards
from anytime.lm import tokenizer as tokenizer_lib

ENCODE_BATCH_CHARS = 1 << 20
IN_PROCESS = "InProcess"  # --runner: the same steps in this process, no Beam (small corpora)


def _fs():
  shards.import_beam()
  from apache_beam.io.filesystems import FileSystems

  return FileSystems


def _is_local(path: str) -> bool:
  return "://" not in path


def _publish(local_tmp: str, dest: str) -> None:
  """Moves a finished local file to dest (a rename on local disk, an upload + rename elsewhere)."""
  if _is_local(dest):
    os.replace(local_tmp, dest)
    return
  fs = _fs()
  staging = f"{dest}.tmp-{uuid.uuid4().hex}"
  with open(local_tmp, "rb") as src, fs.create(staging) as out:
    while chunk := src.read(16 << 20):
      out.write(chunk)
  fs.rename([staging], [dest])
  os.remove(local_tmp)


def _write_bytes(dest: str, data: bytes) -> None:
  tmp_dir = os.path.dirname(dest) if _is_local(dest) else None
  fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=".tmp-")
  with os.fdopen(fd, "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
  _publish(tmp, dest)


def write_shard(shard: shards.Shard, tok, opts: dict) -> list[dict]:
  """Writes the shard's train and val row files into opts["output_dir"]; returns their stats.

  Raises shards.BadInput for bad input (the pipeline drops the shard when skipping bad input)
  and ValueError for a token id outside the tokenizer's range (always fatal: a tokenizer bug).
  """
  out, seq_len = opts["output_dir"], opts["seq_len"]
  dtype = row_files.token_dtype(tok.vocab_size)
  le = dtype.newbyteorder("<")
  local_dir = out if _is_local(out) else tempfile.gettempdir()
  names = {s: row_files.file_name(s, shard.index) for s in row_files.SPLITS}
  tmps = {s: os.path.join(local_dir, f".{names[s]}.tmp-{uuid.uuid4().hex}") for s in names}
  writers = {s: row_files.rows_writer(tmps[s]) for s in names}
  packers = {s: row_files.RowPacker(seq_len, tok.eos_id, dtype) for s in names}
  stats = {s: dict(rows=0, documents=0, max_id=-1) for s in names}
  counts = {"bad_records": 0}
  val_fraction = 0.0 if opts["val_by_shard"] else opts["val_fraction"]

  def flush(batch):
    texts = [t for _, t in batch]
    threads = opts.get("encode_threads", 1)  # C++ threads; the ids do not depend on them
    encoded = tok.encode_batch(texts, num_threads=threads)
    for (where, text), ids in zip(batch, encoded, strict=True):
      top = max(ids, default=-1)
      if top >= tok.vocab_size or min(ids, default=0) < 0:
        raise ValueError(
          f"{where}: token id {top} outside the tokenizer's range [0, {tok.vocab_size})"
        )
      split = "val" if shard.split == "val" or shards.is_val(text, val_fraction) else "train"
      st = stats[split]
      st["documents"] += 1
      st["max_id"] = max(st["max_id"], top, tok.eos_id)
      for row in packers[split].add(ids):
        writers[split].write(row.astype(le, copy=False).tobytes())
        st["rows"] += 1

  try:
    batch, chars = [], 0
    docs = shards.documents(
      shard,
      text_field=opts["text_field"],
      split=opts["split"],
      skip_bad=opts["skip_bad"],
      counts=counts,
    )
    for where, text in docs:
      batch.append((where, text))
      chars += len(text)
      if chars >= ENCODE_BATCH_CHARS:
        flush(batch)
        batch, chars = [], 0
    if batch:
      flush(batch)
    for w in writers.values():
      w.close()
    result = []
    for s in names:
      _publish(tmps[s], os.path.join(out, names[s]) if _is_local(out) else f"{out}/{names[s]}")
      result.append(
        dict(
          stats[s],
          split=s,
          file=names[s],
          shard=shard.index,
          input=shard.name,
          tokens=packers[s].tokens,
          dropped_tokens=packers[s].dropped,
          bad_records=counts["bad_records"] if s == "train" else 0,
        )
      )
    return result
  finally:
    for s in names:
      if os.path.exists(tmps[s]):
        writers[s].close()
        os.remove(tmps[s])


def _write_shard_fn(tok_bytes: bytes, tok_kind: str, eos_token: str | None, opts: dict):
  """The ParDo: the tokenizer is rebuilt once per worker (setup), never pickled."""
  beam = shards.import_beam()

  class WriteShard(beam.DoFn):
    def setup(self):
      os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
      self.tok = tokenizer_lib.from_bytes(tok_bytes, tok_kind, eos_token)

    def process(self, shard):
      yield from _shard_stats(shard, self.tok, opts)

  return WriteShard()


def _shard_stats(shard: shards.Shard, tok, opts: dict) -> list[dict]:
  """write_shard's statistics, or the shard reported as skipped (bad input, when skipping)."""
  try:
    return write_shard(shard, tok, opts)
  except shards.BadInput as err:
    if not opts["skip_bad"]:
      raise
    return [dict(split="skipped", shard=shard.index, input=shard.name, error=str(err))]


def assemble_meta(stats: list[dict], base: dict, num_shards: int) -> dict:
  """meta.json's content from every shard's statistics (sorted by shard: worker-independent)."""
  seen = {s["shard"] for s in stats}
  if seen != set(range(num_shards)):
    raise RuntimeError(f"shards {sorted(set(range(num_shards)) - seen)} produced no statistics")
  stats = sorted(stats, key=lambda s: (s["shard"], s["split"]))
  meta = dict(base)
  meta["splits"] = {}
  for split in row_files.SPLITS:
    files = [{k: v for k, v in s.items() if k != "split"} for s in stats if s["split"] == split]
    meta["splits"][split] = dict(
      files=files,
      **{k: sum(f[k] for f in files) for k in ("rows", "tokens", "documents", "dropped_tokens")},
    )
  skipped = [s for s in stats if s["split"] == "skipped"]
  meta["skipped"] = dict(
    records=sum(f["bad_records"] for f in meta["splits"]["train"]["files"]),
    shards=[dict(input=s["input"], error=s["error"]) for s in skipped],
  )
  return meta


def _meta_writer(output_dir: str, base: dict, num_shards: int):
  def write(stats):
    meta = assemble_meta(list(stats), base, num_shards)
    meta["seconds"] = round(time.time() - base["started"], 1)
    dest = (
      os.path.join(output_dir, row_files.META_FILE)
      if _is_local(output_dir)
      else (f"{output_dir}/{row_files.META_FILE}")
    )
    _write_bytes(dest, json.dumps(meta, indent=1, sort_keys=True).encode())
    return meta

  return write


def _check_output_dir(output_dir: str, overwrite: bool) -> None:
  """Refuses a finished dataset unless overwrite; then removes its meta.json first, files after."""
  meta = f"{output_dir}/{row_files.META_FILE}"
  if _is_local(output_dir):  # no Beam needed (the in-process runner)
    exists, delete = os.path.exists, lambda paths: [os.remove(p) for p in paths]
    listing = lambda: [f"{output_dir}/{n}" for n in _listdir(output_dir)]
  else:
    fs = _fs()
    exists, delete = fs.exists, fs.delete
    listing = lambda: [
      m.path for r in fs.match([f"{output_dir}/*.array_record"]) for m in r.metadata_list
    ]
  if exists(meta):
    if not overwrite:
      raise ValueError(
        f"--output_dir={output_dir!r} already holds a finished dataset ({row_files.META_FILE}); "
        "pass --overwrite to replace it"
      )
    delete([meta])  # from here on the directory no longer looks finished
  stale = [p for p in listing() if p.endswith(".array_record")]
  if stale:
    delete(stale)
  if _is_local(output_dir):
    os.makedirs(output_dir, exist_ok=True)


def _listdir(path: str) -> list[str]:
  return sorted(os.listdir(path)) if os.path.isdir(path) else []


def train_tokenizer(
  input_shards,
  *,
  vocab_size: int,
  sample_chars: int,
  val_fraction: float,
  val_by_shard: bool = False,
  text_field: str = "text",
  split: str = "file",
  skip_bad: bool = False,
) -> tokenizer_lib.Tokenizer:
  """A BPE trained on the first sample_chars characters of training documents."""

  def texts():
    used = 0
    for shard in input_shards:
      if shard.split == "val":
        continue
      for _, text in shards.documents(shard, text_field=text_field, split=split, skip_bad=skip_bad):
        if val_by_shard or not shards.is_val(text, val_fraction):
          yield text
          used += len(text)
          if used >= sample_chars:
            return

  model = tokenizer_lib.train_bpe(texts(), vocab_size, max_chars=sample_chars)
  return tokenizer_lib.Tokenizer(model)


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
    prog="python -m anytime.lm.prepare",
    description=__doc__.split("\n")[0],
    epilog="Other --flags are Beam pipeline options.",
  )
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--input", help="glob of JSON-lines shards (.json, .jsonl, .json.gz)")
  src.add_argument("--input_dir", help="directory of text files (one document per file)")
  p.add_argument("--val_input", default="", help="glob of the input's own validation shards")
  p.add_argument("--output_dir", required=True, help="dataset directory (local or gs://...)")
  p.add_argument("--text_field", default="text", help="JSON field holding the document text")
  p.add_argument(
    "--split",
    default="file",
    choices=shards.TEXT_SPLITS,
    help="--input_dir: one document per file, line or blank-line paragraph",
  )
  p.add_argument("--extensions", default="", help="--input_dir: comma list of file suffixes")
  p.add_argument("--tokenizer", default="", help="sentencepiece .model or HF tokenizers .json")
  p.add_argument("--eos_token", default=None, help="HF .json: the end-of-document token")
  p.add_argument("--vocab_size", type=int, default=4096, help="BPE pieces when training one")
  p.add_argument(
    "--tokenizer_sample_chars",
    type=int,
    default=100_000_000,
    help="characters of training text the BPE is trained on",
  )
  p.add_argument("--seq_len", type=int, default=1024, help="rows hold seq_len + 1 tokens")
  p.add_argument(
    "--val_fraction",
    type=float,
    default=0.01,
    help="share of documents held out by content hash (without --val_input)",
  )
  p.add_argument(
    "--skip_bad_records",
    action="store_true",
    help="skip and count bad records/shards in meta.json instead of failing",
  )
  p.add_argument("--overwrite", action="store_true", help="replace a finished dataset")
  p.add_argument(
    "--runner",
    default="DirectRunner",
    help=f"Beam runner (DataflowRunner, ...), or {IN_PROCESS}: the same steps without Beam",
  )
  return p


def run(argv: Sequence[str] | None = None) -> dict:
  """Parses the command line, runs the pipeline to completion; returns meta.json's content."""
  args, beam_args = parser().parse_known_args(argv)
  if args.val_input and args.input_dir:
    raise ValueError("--val_input goes with --input (JSON-lines shards)")
  if args.input:
    input_shards = shards.json_shards(args.input, args.val_input)
  else:
    exts = [e for e in args.extensions.split(",") if e] or None
    input_shards = shards.text_shards(args.input_dir, exts)
  return prepare_shards(
    input_shards,
    args.output_dir,
    tokenizer=args.tokenizer,
    eos_token=args.eos_token,
    vocab_size=args.vocab_size,
    sample_chars=args.tokenizer_sample_chars,
    seq_len=args.seq_len,
    val_fraction=args.val_fraction,
    val_input=args.val_input,
    text_field=args.text_field,
    split=args.split,
    skip_bad=args.skip_bad_records,
    overwrite=args.overwrite,
    runner=args.runner,
    beam_args=beam_args,
  )


def prepare_shards(
  input_shards: Sequence[shards.Shard],
  output_dir: str,
  *,
  tokenizer: str = "",
  eos_token: str | None = None,
  vocab_size: int = 4096,
  sample_chars: int = 100_000_000,
  seq_len: int = 1024,
  val_fraction: float = 0.01,
  val_input: str = "",
  text_field: str = "text",
  split: str = "file",
  skip_bad: bool = False,
  overwrite: bool = False,
  runner: str = "DirectRunner",
  beam_args: Sequence[str] = (),
  encode_threads: int = 1,
  source: dict | None = None,
) -> dict:
  """The pipeline on given shards (what run and the stdlib corpus cache call); returns the meta.

  runner=IN_PROCESS runs the same steps (write_shard per shard, then assemble_meta) one after
  the other in this process, without Beam: the row files are byte for byte the Beam runners'
  (write_shard's output depends only on its shard), and a small corpus skips Beam's start-up.
  """
  if seq_len < 1:
    raise ValueError(f"--seq_len={seq_len} must be >= 1")
  if not val_input and not 0 < val_fraction < 1:
    raise ValueError(f"--val_fraction={val_fraction} must be in (0, 1)")
  started = time.time()
  out = output_dir.rstrip("/")
  out = os.path.abspath(out) if _is_local(out) else out
  _check_output_dir(out, overwrite)
  if tokenizer:
    tok = tokenizer_lib.load(tokenizer, eos_token)
    tok_file = "tokenizer.json" if tokenizer.endswith(".json") else "tokenizer.model"
  else:
    tok = train_tokenizer(
      input_shards,
      vocab_size=vocab_size,
      sample_chars=sample_chars,
      val_fraction=val_fraction,
      val_by_shard=bool(val_input),
      text_field=text_field,
      split=split,
      skip_bad=skip_bad,
    )
    tok_file = "tokenizer.model"
  _write_bytes(
    os.path.join(out, tok_file) if _is_local(out) else f"{out}/{tok_file}", tok.model_bytes
  )
  dtype = row_files.token_dtype(tok.vocab_size)
  base = dict(
    format=row_files.FORMAT,
    format_version=row_files.FORMAT_VERSION,
    dtype=dtype.name,
    byte_order="little",
    vocab_size=tok.vocab_size,
    eos_id=tok.eos_id,
    seq_len=seq_len,
    row_tokens=seq_len + 1,
    stride=seq_len,
    tokenizer=tok_file,
    tokenizer_kind=tokenizer_lib.kind_of(tok),
    tokenizer_sha256=tok.sha256,
    tokenizer_trained=not tokenizer,
    text_field=text_field,
    val=dict(by="shards", input=val_input)
    if val_input
    else dict(by="content_hash", fraction=val_fraction),
    inputs=[dict(name=s.name, bytes=s.bytes, split=s.split or "train") for s in input_shards],
    runner=runner,
    started=started,
    **({"source": source} if source else {}),
  )
  opts = dict(
    output_dir=out,
    seq_len=seq_len,
    val_fraction=val_fraction,
    val_by_shard=bool(val_input),
    text_field=text_field,
    split=split,
    skip_bad=skip_bad,
    encode_threads=encode_threads,
  )
  write_meta = _meta_writer(out, base, len(input_shards))
  if runner == IN_PROCESS:
    return write_meta([s for shard in input_shards for s in _shard_stats(shard, tok, opts)])
  beam = shards.import_beam()
  from apache_beam.options.pipeline_options import PipelineOptions

  options = PipelineOptions([f"--runner={runner}", *beam_args])
  fn = _write_shard_fn(tok.model_bytes, tokenizer_lib.kind_of(tok), eos_token, opts)
  with beam.Pipeline(options=options) as pipeline:
    _ = (
      pipeline
      | "Shards" >> beam.Create(input_shards)
      | "Spread" >> beam.Reshuffle()
      | "WriteRows" >> beam.ParDo(fn)
      | "Gather" >> beam.combiners.ToList()
      | "WriteMeta" >> beam.Map(write_meta)
    )
  with _fs().open(f"{out}/{row_files.META_FILE}") as f:
    return json.loads(f.read())


def main(argv: Sequence[str] | None = None) -> dict:
  t0 = time.perf_counter()
  meta = run(argv)
  seconds = time.perf_counter() - t0
  tr, va = meta["splits"]["train"], meta["splits"]["val"]
  print(
    f"wrote {meta['inputs'] and len(meta['inputs'])} shard(s) -> train {tr['rows']:,} rows / "
    f"{tr['tokens']:,} tokens / {tr['documents']:,} docs, val {va['rows']:,} rows / "
    f"{va['tokens']:,} tokens; vocab {meta['vocab_size']} ({meta['dtype']}); skipped "
    f"{meta['skipped']['records']} records, {len(meta['skipped']['shards'])} shards; "
    f"{seconds:.1f} s ({(tr['tokens'] + va['tokens']) / seconds:,.0f} tokens/s)"
  )
  return meta


__all__ = ["IN_PROCESS", "assemble_meta", "main", "prepare_shards", "run", "write_shard"]
