"""The embedded stdlib corpus: file selection, vocabulary, cache keys, end to end."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from anytime.lm import beam_prepare, corpus, data


def test_stdlib_file_selection_is_sorted_and_excludes_installation_specific_files():
  files = corpus.stdlib_files()
  assert files == sorted(files) and len(files) > 300
  assert "os.py" in files and "json/decoder.py" in files
  for f in files:
    parts = f.split("/")
    assert not {"site-packages", "dist-packages", "test", "tests", "idle_test"} & set(parts)
    assert not parts[-1].startswith("_sysconfigdata")


def test_stdlib_vocab_size_needs_no_preparation(tmp_path, monkeypatch):
  monkeypatch.setenv("ANYTIME_CACHE", str(tmp_path))
  cfg = data.default_data_config()
  cfg.tokenizer_vocab_size = 1024
  assert data.vocab_size(cfg) == 1024
  data.validate_data_config(cfg, seq_len=256, global_batch_size=32)
  assert os.listdir(tmp_path) == []  # validation and vocab_size computed nothing, wrote nothing


@pytest.mark.slow
def test_stdlib_corpus_end_to_end(tmp_path):
  """Prepares the stdlib corpus from scratch (about 10 s), then reuses the cache."""
  cfg = data.default_data_config()
  cfg.path = str(tmp_path)
  token_dir = data.stdlib_token_dir(cfg)
  assert os.path.basename(token_dir).startswith("stdlib-")
  assert [p for p in os.listdir(tmp_path)] == [os.path.basename(token_dir)]  # no temp dirs left
  with open(os.path.join(token_dir, "meta.json")) as f:
    meta = json.load(f)
  assert meta["vocab_size"] == 4096 and meta["dtype"] == "uint16"
  assert meta["format"] == "anytime-rows" and meta["seq_len"] == corpus.ROW_SEQ_LEN
  assert meta["splits"]["train"]["tokens"] > 2_000_000
  val_share = meta["splits"]["val"]["documents"] / (
    meta["splits"]["val"]["documents"] + meta["splits"]["train"]["documents"]
  )
  assert 0.03 < val_share < 0.07  # held out by content hash, 5% of the documents
  mtime = os.path.getmtime(os.path.join(token_dir, "meta.json"))
  data._stdlib_dir.cache_clear()
  assert data.stdlib_token_dir(cfg) == token_dir  # reused, not rebuilt
  assert os.path.getmtime(os.path.join(token_dir, "meta.json")) == mtime
  from anytime.lm.tokenizer import Tokenizer

  tok = Tokenizer.from_file(os.path.join(token_dir, "tokenizer.model"))
  batch = next(data.make_train_iterator(cfg, seq_len=256, global_batch_size=16, seed=0))
  sources = "\x00".join(
    Path(p).read_bytes().decode("utf-8", errors="replace") for _, p in corpus.corpus_files()
  )
  checked = 0
  for row in batch["inputs"]:
    text = tok.decode(row)
    if tok.eos_id not in row and "\ufffd" not in text:  # within one file, whole characters
      assert text in sources
      checked += 1
  assert checked >= 4


def tiny_corpus(root):
  rng = np.random.default_rng(0)
  words = np.array(
    ["alpha", "beta", "gamma", "delta", "epsilon", "def", "return", "import", "class", "self"]
  )
  files = []
  for k in range(10):
    path = os.path.join(root, f"m{k}.py")
    with open(path, "w") as f:
      f.write("\n".join(" ".join(rng.choice(words, 8)) for _ in range(30)))
    files.append((f"stdlib/m{k}.py", path))
  return files


def test_stdlib_cache_is_keyed_reused_and_only_complete_dirs_count(tmp_path, monkeypatch):
  (tmp_path / "src").mkdir()
  files = tiny_corpus(str(tmp_path / "src"))
  monkeypatch.setattr(corpus, "corpus_files", lambda extra_text_dirs=(): files)
  cache = tmp_path / "cache"
  cache.mkdir()
  monkeypatch.setenv("ANYTIME_CACHE", str(cache))
  # A directory left by a killed preparation does not count as the cache.
  (cache / ".stdlib-0000.tmp-1-x").mkdir()
  first = corpus.ensure_stdlib_tokens(vocab_size=300, val_fraction=0.2, seq_len=16)
  assert os.path.dirname(first) == str(cache)
  assert os.path.basename(first).startswith("stdlib-")
  assert sorted(os.listdir(cache)) == sorted([".stdlib-0000.tmp-1-x", os.path.basename(first)])
  with open(os.path.join(first, "meta.json")) as f:
    meta = json.load(f)
  assert meta["vocab_size"] == 300 and meta["source"]["corpus"] == "stdlib"
  assert meta["format"] == "anytime-rows" and meta["seq_len"] == 1024  # 16 divides 1024

  def must_not_prepare(*args, **kwargs):
    raise AssertionError("prepared again although cached")

  real_prepare = beam_prepare.prepare_shards
  monkeypatch.setattr(beam_prepare, "prepare_shards", must_not_prepare)
  assert corpus.ensure_stdlib_tokens(vocab_size=300, val_fraction=0.2, seq_len=256) == first
  # Another option or a stored row length 1024 is no multiple of is another corpus.
  monkeypatch.setattr(beam_prepare, "prepare_shards", real_prepare)
  second = corpus.ensure_stdlib_tokens(vocab_size=300, val_fraction=0.3)
  assert second != first
  odd = corpus.ensure_stdlib_tokens(vocab_size=300, val_fraction=0.2, seq_len=48)
  assert odd not in (first, second)
  assert json.loads(Path(odd, "meta.json").read_text())["seq_len"] == 48

  # Another process publishing the same directory first: this one uses it and leaves no litter.
  def publish_first(input_shards, output_dir, **kwargs):
    other = os.path.join(os.path.dirname(output_dir), "other-tmp")
    real_prepare(input_shards, other, **kwargs)  # the "other process", published ...
    key = os.path.basename(output_dir).split(".tmp-")[0].lstrip(".")
    os.rename(other, os.path.join(os.path.dirname(output_dir), key))
    return real_prepare(input_shards, output_dir, **kwargs)  # ... before ours renames

  monkeypatch.setattr(beam_prepare, "prepare_shards", publish_first)
  third = corpus.ensure_stdlib_tokens(vocab_size=320, val_fraction=0.2)
  assert os.path.exists(os.path.join(third, "meta.json"))
  assert len(os.listdir(cache)) == 5  # the stale tmp dir + four corpora
