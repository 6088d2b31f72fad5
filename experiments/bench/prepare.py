"""The Beam prepare pipeline and grain's row reading: ``python -m experiments.bench prepare``.

Writes C4-shaped json.gz shards of English-like text (generated, no download) at two input sizes
(--mb and 4x --mb), prepares each in a child process (so its peak RSS is the pipeline's alone)
with a sentencepiece BPE and with an HF tokenizers BPE, and reports tokens per CPU-second and
peak RSS; then reads the rows back shuffled through the trainer's iterator at 0, 1 and 2 grain
threads and prints each rate's ratio to the 150m step's consumption on an accelerator, assumed
from its FLOPs (stated in the output); and the hours full C4 (156B tokens) would take on N workers
at the measured rate. --read=DIR only times the reads of an existing row dataset.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from anytime import cli

C4_TOKENS = 156e9
# 150m step: 256 x 1024 tokens, 6N FLOPs/token with N = 151M; v5e-16: 16 x 197 TFLOP/s bf16.
STEP_TOKENS, PARAMS, PEAK_FLOPS, MFU = 256 * 1024, 151e6, 16 * 197e12, 0.40


def write_shards(directory: str, megabytes: float, num_shards: int = 4) -> None:
  rng = np.random.default_rng(0)
  words = np.array(
    ["the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he", "this", "are", "or", "from", "at", "which", "have", "an", "they", "you", "were", "her", "all", "she", "there", "would", "their", "we", "him", "been", "has", "when", "who", "will", "more", "no", "if", "out", "so", "said", "what", "up", "its", "about", "into", "than", "them", "can", "only", "other", "new", "some", "could", "time", "these", "two", "may", "then", "do", "first", "any", "my", "now", "such", "like", "our", "over", "man", "me", "even", "most", "made", "after", "also", "did", "many", "before", "must", "through", "back", "years", "where", "much", "your", "way", "well", "down", "should", "because", "each", "just", "those", "people", "how", "too", "little", "state", "good", "very", "make", "world", "still", "own", "see", "men", "work", "long", "get", "here", "between", "both", "life", "being", "under", "never", "day", "same", "another", "know", "while", "last", "might", "us", "great", "old", "year", "off", "come", "since", "against", "go", "came", "right", "used", "take", "three"]  # noqa: E501
  )  # fmt: skip
  per_shard = int(megabytes * 1e6 / num_shards)
  for k in range(num_shards):
    with gzip.open(os.path.join(directory, f"c4-train.{k:05d}-of-{num_shards:05d}.json.gz"),
                   "wt", compresslevel=1) as f:  # fmt: skip
      written = 0
      while written < per_shard:
        text = " ".join(rng.choice(words, size=int(rng.integers(50, 800))))
        f.write(json.dumps({"text": text, "url": "u", "timestamp": "2019"}) + "\n")
        written += len(text)


def hf_tokenizer(shard_dir: str, path: str, vocab: int) -> None:
  from tokenizers import Tokenizer, models, pre_tokenizers, trainers

  tok = Tokenizer(models.BPE(unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  texts = []
  first = os.path.join(shard_dir, sorted(os.listdir(shard_dir))[0])
  with gzip.open(first, "rt") as f:
    for line, _ in zip(f, range(2000), strict=False):
      texts.append(json.loads(line)["text"])
  tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab,
                                                     special_tokens=["<unk>", "<|endoftext|>"]))  # fmt: skip  # noqa: E501
  tok.save(path)


def run_child(args: list[str]) -> dict:
  """Runs the prepare command in a child; returns its meta plus CPU seconds and peak RSS."""
  code = (
    "import json,resource,sys,time;from anytime.lm import beam_prepare as b;"
    "t=time.perf_counter();m=b.run(sys.argv[1:]);w=time.perf_counter()-t;"
    "r=resource.getrusage(resource.RUSAGE_SELF);"
    "print(json.dumps(dict(wall=w,cpu=r.ru_utime+r.ru_stime,rss_mb=r.ru_maxrss/1024,"
    "tokens=m['splits']['train']['tokens']+m['splits']['val']['tokens'])))"
  )
  out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       check=True)  # fmt: skip
  return json.loads(out.stdout.strip().splitlines()[-1])


def bench_read(path: str, seq_len: int, batch: int, steps: int, threads: int = 1) -> float:
  """Tokens/s of the trainer's shuffled training batches from the row dataset at path."""
  from anytime.lm import data

  cfg = data.default_data_config()
  cfg.source, cfg.path, cfg.num_threads = "tokens", path, threads
  it = data.make_train_iterator(cfg, seq_len=seq_len, global_batch_size=batch, seed=0)
  next(it)
  started = time.perf_counter()
  for _ in range(steps):
    next(it)
  seconds = time.perf_counter() - started
  it.close()
  return steps * batch * seq_len / seconds


def report_reads(path: str, threads=(0, 1, 2), steps: int = 300) -> None:
  """Read rates by grain thread count against the 150m step's consumption, in one run.

  The need is the whole v5e-16 slice's (4 hosts, each reading its quarter of the 256-row batch,
  so a host needs a quarter of it); batch 64 is one host's share.
  """
  need = STEP_TOKENS / (STEP_TOKENS * 6 * PARAMS / (PEAK_FLOPS * MFU))
  files = [f for f in os.listdir(path) if f.startswith("train-")]
  size = sum(os.path.getsize(os.path.join(path, f)) for f in files)
  print(f"150m on v5e-16 at {MFU:.0%} MFU consumes {need / 1e6:.2f}M tokens/s (6N FLOPs/token, "
        f"N=151M; {need / 4e6:.2f}M per host); reading {len(files)} train files, "
        f"{size / 1e6:.0f} MB:")  # fmt: skip
  for n in threads:
    read = bench_read(path, 1024, 64, steps, n)
    print(f"  grain read (shuffled, seq_len 1024, batch 64, num_threads={n}): "
          f"{read / 1e6:.1f}M tokens/s: headroom {read / need:.0f}x the slice, "
          f"{4 * read / need:.0f}x a host")  # fmt: skip


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--mb", type=float, default=10.0, help="smaller input size (MB of text)")
  p.add_argument("--vocab", type=int, default=512)  # the generated text has ~200 words
  p.add_argument("--workers", default="100,1000")
  p.add_argument("--read", default="", help="only time reading this row dataset (no prepare)")
  args = p.parse_args(argv)
  cli.positive("--mb", args.mb)
  cli.at_least("--vocab", args.vocab, 64)
  workers = args.workers.split(",")
  cli.require("--workers", args.workers, all(w.isdigit() and int(w) > 0 for w in workers),
              "comma-separated core counts > 0")  # fmt: skip
  if args.read:
    cli.input_dir("--read", args.read)
    report_reads(args.read)
    return
  with tempfile.TemporaryDirectory() as tmp:
    rates = {}
    for scale in (1, 4):
      shard_dir = os.path.join(tmp, f"in{scale}")
      os.makedirs(shard_dir)
      write_shards(shard_dir, args.mb * scale)
      glob = os.path.join(shard_dir, "*.json.gz")
      if scale == 1:
        spm = run_child([f"--input={glob}", f"--output_dir={tmp}/spm_train",
                         f"--vocab_size={args.vocab}", "--tokenizer_sample_chars=5000000"])  # fmt: skip  # noqa: E501
        hf_tokenizer(shard_dir, os.path.join(tmp, "hf.json"), args.vocab)
      for kind, tok in (("sentencepiece", f"{tmp}/spm_train/tokenizer.model"),
                        ("hf", os.path.join(tmp, "hf.json"))):  # fmt: skip
        out = f"{tmp}/out_{kind}_{scale}"
        r = run_child([f"--input={glob}", f"--output_dir={out}", f"--tokenizer={tok}"])
        r["tokens_per_cpu_s"] = r["tokens"] / r["cpu"]
        rates[kind] = r["tokens_per_cpu_s"] if scale == 4 else rates.get(kind)
        print(json.dumps(dict(kind=kind, input_mb=args.mb * scale,
                              **{k: round(v, 2) for k, v in r.items()})))  # fmt: skip
    print(json.dumps(dict(first_run_with_bpe_training=spm)))
    report_reads(f"{tmp}/out_sentencepiece_4")
    for kind, rate in rates.items():
      for n in (int(w) for w in args.workers.split(",")):
        hours = C4_TOKENS / rate / 3600
        print(f"full C4 with {kind}: {hours:,.0f} core-hours = {hours / n:.1f} h on {n} cores")
