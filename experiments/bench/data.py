"""Throughput of the data pipeline and of the prepare step: ``python -m experiments.bench data``.

Prints, for this machine:
  - prepare: the stdlib corpus tokenized from scratch into a temporary cache (tokenizer training
    and encoding timed separately; chars/s and tokens/s), and its token counts;
  - pipeline: training batches/s and tokens/s that make_train_iterator delivers (stdlib source,
    seq_len 256, global batch 32 by default) for each sampling and grain thread count, and for the
    synthetic source; plus the time to build the validation batches.
Options: --seq_len, --batch, --steps, --extra_text_dirs=DIR1,DIR2 (prepare a larger corpus too).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from anytime import cli
from anytime.lm import corpus, data


def bench_prepare(extra_text_dirs: tuple[str, ...] = ()) -> dict:
  with tempfile.TemporaryDirectory() as cache:
    started = time.perf_counter()
    documents = corpus.corpus_documents(extra_text_dirs)
    read = time.perf_counter() - started
    token_dir = corpus.ensure_stdlib_tokens(extra_text_dirs=extra_text_dirs, cache_path=cache)
    total = time.perf_counter() - started
    with open(os.path.join(token_dir, "meta.json")) as f:
      meta = json.load(f)
  chars = sum(len(t) for _, t in documents)
  tokens = sum(s["tokens"] for s in meta["splits"].values())
  return dict(
    extra_text_dirs=list(extra_text_dirs),
    documents=len(documents),
    megabytes=round(chars / 1e6, 2),
    train_tokens=meta["splits"]["train"]["tokens"],
    val_tokens=meta["splits"]["val"]["tokens"],
    chars_per_token=round(chars / tokens, 3),
    seconds_read_and_hash=round(read, 2),
    seconds_tokenizer=meta["seconds"]["tokenizer"],
    seconds_encode=meta["seconds"]["encode"],
    seconds_total=round(total, 2),
    prepare_tokens_per_s=round(tokens / total),
    encode_tokens_per_s=round(tokens / meta["seconds"]["encode"]),
  )


def bench_pipeline(cfg, *, seq_len: int, batch: int, steps: int) -> dict:
  started = time.perf_counter()
  iterator = data.make_train_iterator(cfg, seq_len=seq_len, global_batch_size=batch, seed=0)
  next(iterator)
  first = time.perf_counter() - started
  started = time.perf_counter()
  for _ in range(steps):
    next(iterator)
  seconds = time.perf_counter() - started
  iterator.close()
  return dict(
    source=cfg.source,
    sampling=cfg.sampling,
    num_threads=cfg.num_threads,
    seconds_to_first_batch=round(first, 3),
    batches_per_s=round(steps / seconds, 1),
    tokens_per_s=round(steps * batch * seq_len / seconds),
  )


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seq_len", type=int, default=256)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--extra_text_dirs", default="")
  args = parser.parse_args(argv)
  for flag in ("seq_len", "batch", "steps"):
    cli.at_least(f"--{flag}", getattr(args, flag), 1)
  for d in filter(None, args.extra_text_dirs.split(",")):
    cli.input_dir("--extra_text_dirs", d)

  print("prepare (stdlib corpus, 4096-piece BPE, from scratch):")
  runs = [()]
  if args.extra_text_dirs:
    runs.append(tuple(d for d in args.extra_text_dirs.split(",") if d))
  for extra in runs:
    print("  " + json.dumps(bench_prepare(extra)))

  print(f"pipeline (seq_len {args.seq_len}, global batch {args.batch}, {args.steps} steps):")
  cfg = data.default_data_config()
  data.stdlib_token_dir(cfg)  # prepare the default cache outside the timing
  for sampling in ("windows", "documents"):
    for threads in (0, 1, 2):
      cfg.sampling, cfg.num_threads = sampling, threads
      print("  " + json.dumps(bench_pipeline(cfg, **vars_of(args))))
  synthetic = data.default_data_config()
  synthetic.source = "synthetic"
  print("  " + json.dumps(bench_pipeline(synthetic, **vars_of(args))))
  started = time.perf_counter()
  cfg.sampling = "windows"
  batches = data.make_eval_batches(cfg, seq_len=args.seq_len, batch_size=args.batch, num_batches=8)
  print(
    f"  eval: {len(batches)} batches of {args.batch} x {args.seq_len} in "
    f"{time.perf_counter() - started:.3f} s; validation rows available: "
    f"{data.eval_rows_available(cfg, seq_len=args.seq_len)}"
  )


def vars_of(args) -> dict:
  return dict(seq_len=args.seq_len, batch=args.batch, steps=args.steps)
