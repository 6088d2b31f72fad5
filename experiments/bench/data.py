"""Throughput of the data pipeline and of the prepare step: ``python -m experiments.bench data``.

Prints, for this machine:
  - prepare: the stdlib corpus prepared from scratch into a temporary cache (the prepare
    pipeline's steps in-process: BPE training, encoding, row files; anytime.lm.corpus), its
    wall time, token counts and tokens/s;
  - pipeline: training batches/s and tokens/s that make_train_iterator delivers (stdlib source,
    seq_len 256, global batch 32 by default) for each grain thread count, and for the synthetic
    source; plus the time to build the validation batches.
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
    files = corpus.corpus_files(extra_text_dirs)
    megabytes = sum(os.path.getsize(p) for _, p in files) / 1e6
    token_dir = corpus.ensure_stdlib_tokens(extra_text_dirs=extra_text_dirs, cache_path=cache)
    total = time.perf_counter() - started
    with open(os.path.join(token_dir, "meta.json")) as f:
      meta = json.load(f)
  tokens = sum(s["tokens"] for s in meta["splits"].values())
  return dict(
    extra_text_dirs=list(extra_text_dirs),
    documents=len(files),
    megabytes=round(megabytes, 2),
    train_tokens=meta["splits"]["train"]["tokens"],
    val_tokens=meta["splits"]["val"]["tokens"],
    train_rows=meta["splits"]["train"]["rows"],
    bytes_per_token=round(megabytes * 1e6 / tokens, 3),
    seconds_total=round(total, 2),
    prepare_tokens_per_s=round(tokens / total),
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
  data.stdlib_token_dir(cfg, args.seq_len)  # prepare the default cache outside the timing
  for threads in (0, 1, 2):
    cfg.num_threads = threads
    print("  " + json.dumps(bench_pipeline(cfg, **vars_of(args))))
  synthetic = data.default_data_config()
  synthetic.source = "synthetic"
  print("  " + json.dumps(bench_pipeline(synthetic, **vars_of(args))))
  started = time.perf_counter()
  batches = data.make_eval_batches(cfg, seq_len=args.seq_len, batch_size=args.batch, num_batches=8)
  print(
    f"  eval: {len(batches)} batches of {args.batch} x {args.seq_len} in "
    f"{time.perf_counter() - started:.3f} s; validation rows available: "
    f"{data.eval_rows_available(cfg, seq_len=args.seq_len)}"
  )


def vars_of(args) -> dict:
  return dict(seq_len=args.seq_len, batch=args.batch, steps=args.steps)
