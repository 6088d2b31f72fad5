"""anytime.lm.prepare --input_dir (text files -> the row format) and the tokenizer: lossless,
deterministic, the in-process runner byte-identical to Beam's, held-out split, atomic output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anytime.lm import data, prepare, row_files, shards
from anytime.lm.tokenizer import Tokenizer

WORD_TEXT = (
  "the of and to in is was for on that with by as at from it his an were are which this be or has "
  "def return class import self None True False if else elif while lambda yield async await"
)
WORDS = WORD_TEXT.split()


def write_corpus(root, num_files=14, seed=0):
  """A small directory of English-ish and code-ish text (with indentation, unicode and tabs)."""
  rng = np.random.default_rng(seed)
  texts = {}
  for k in range(num_files):
    lines = []
    for _ in range(int(rng.integers(20, 60))):
      indent = "    " * int(rng.integers(0, 3))
      words = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12))))
      lines.append(indent + words + rng.choice([":", ".", " = 1", "\t# note", " — café"]))
    name = f"{'sub/' if k % 3 == 0 else ''}doc{k:02d}.txt"
    texts[name] = "\n".join(lines) + "\n"
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
      f.write(texts[name])
  with open(os.path.join(root, "blob.bin"), "wb") as f:
    f.write(b"\x00\x01binary")  # skipped: not text
  return texts


def split_stream(tokens, eos):
  pieces = np.split(np.asarray(tokens), np.flatnonzero(np.asarray(tokens) == eos) + 1)
  assert len(pieces[-1]) == 0  # every document ends with EOS
  return [p[:-1] for p in pieces[:-1]]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("text")
  return str(root), write_corpus(root)


@pytest.fixture(scope="module")
def prepared(corpus_dir, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("prep") / "tokens")
  meta = prepare.main(
    [f"--input_dir={corpus_dir[0]}", f"--output_dir={out}", "--vocab_size=400",
     "--val_fraction=0.2", "--seq_len=32"]
  )  # fmt: skip
  return out, meta


def test_prepared_files_decode_to_the_documents_split_by_document(corpus_dir, prepared):
  _, texts = corpus_dir
  out, meta = prepared
  assert sorted(os.listdir(out)) == [
    "meta.json", "tokenizer.model", "train-00000.array_record", "val-00000.array_record"
  ]  # fmt: skip
  assert meta["vocab_size"] == 400 and meta["dtype"] == "uint16" and meta["eos_id"] == 2
  tok = Tokenizer.from_file(os.path.join(out, "tokenizer.model"))
  assert tok.sha256 == meta["tokenizer_sha256"]
  decoded = {}
  for split in ("train", "val"):
    rows = row_files.open_dataset(out)[1][split]
    if not rows.rows:
      decoded[split] = []
      continue
    parts = [rows.row(i) for i in range(rows.rows)]
    stream = np.concatenate([parts[0], *(p[1:] for p in parts[1:])])  # rows overlap by one token
    cut = int(np.flatnonzero(stream == tok.eos_id)[-1]) + 1  # the tail past the last EOS is cut
    decoded[split] = [tok.decode(d) for d in split_stream(stream[:cut], tok.eos_id)]
    assert len(decoded[split]) <= meta["splits"][split]["documents"]
  # Lossless (indentation, tabs, unicode), each document on one side (the tail's one is cut).
  assert set(decoded["train"] + decoded["val"]) <= set(texts.values())
  assert len(decoded["train"]) + len(decoded["val"]) >= len(texts) - 2
  assert not set(decoded["train"]) & set(decoded["val"])
  assert sum(meta["splits"][s]["documents"] for s in ("train", "val")) == len(texts)
  # The data pipeline reads it.
  cfg = data.default_data_config()
  cfg.source, cfg.path = "tokens", out
  assert data.vocab_size(cfg) == 400
  batch = next(data.make_train_iterator(cfg, seq_len=32, global_batch_size=4, seed=0))
  assert batch["inputs"].shape == (4, 32) and batch["inputs"].max() < 400


def test_prepare_is_deterministic_and_reuses_a_given_tokenizer(corpus_dir, prepared, tmp_path):
  out, meta = prepared
  again = prepare.main(
    [f"--input_dir={corpus_dir[0]}", f"--output_dir={tmp_path / 'a'}", "--vocab_size=400",
     "--val_fraction=0.2", "--seq_len=32"]
  )  # fmt: skip
  reused = prepare.main(
    [f"--input_dir={corpus_dir[0]}", f"--output_dir={tmp_path / 'b'}", "--val_fraction=0.2",
     f"--tokenizer={os.path.join(out, 'tokenizer.model')}", "--seq_len=32"]
  )  # fmt: skip
  assert again["tokenizer_sha256"] == reused["tokenizer_sha256"] == meta["tokenizer_sha256"]
  assert not reused["tokenizer_trained"]
  for name in ("train-00000.array_record", "val-00000.array_record", "tokenizer.model"):
    ref = (Path(out) / name).read_bytes()
    assert (tmp_path / "a" / name).read_bytes() == ref
    assert (tmp_path / "b" / name).read_bytes() == ref


def test_in_process_runner_writes_the_beam_runners_bytes(corpus_dir, prepared, tmp_path):
  """The stdlib cache's runner (no Beam) and the command line's DirectRunner: one format, one
  byte sequence, so the trainer cannot tell which wrote a dataset."""
  out, meta = prepared
  local = prepare.main(
    [f"--input_dir={corpus_dir[0]}", f"--output_dir={tmp_path / 'p'}", "--val_fraction=0.2",
     f"--tokenizer={os.path.join(out, 'tokenizer.model')}", "--seq_len=32", "--runner=InProcess"]
  )  # fmt: skip
  for name in ("train-00000.array_record", "val-00000.array_record"):
    assert (tmp_path / "p" / name).read_bytes() == (Path(out) / name).read_bytes()
  assert local["splits"] == meta["splits"] and local["runner"] == "InProcess"


def test_val_is_held_out_by_content_not_by_name_or_listing_order():
  texts = [f"document {k} " + "x" * k for k in range(400)]
  val = {t for t in texts if shards.is_val(t, 0.2)}
  assert {t for t in reversed(texts) if shards.is_val(t, 0.2)} == val
  assert 0.12 < len(val) / len(texts) < 0.28
  assert {t for t in texts if shards.is_val(t, 0.1)} <= val  # a smaller fraction is a subset


def test_document_splitting_modes(tmp_path):
  (tmp_path / "a.txt").write_text("one\ntwo\n\nthree\n\n\nfour")
  (tmp_path / "b.txt").write_text("five")
  (tmp_path / "c.bin").write_bytes(b"\x00binary")
  (shard,) = shards.text_shards(str(tmp_path))
  docs = lambda split: [t for _, t in shards.documents(shard, split=split)]
  assert docs("file") == ["one\ntwo\n\nthree\n\n\nfour", "five"]
  assert docs("line") == ["one", "two", "three", "four", "five"]
  assert [t.strip() for t in docs("paragraph")] == ["one\ntwo", "three", "four", "five"]
  with pytest.raises(SystemExit):
    prepare.main([f"--input_dir={tmp_path}", f"--output_dir={tmp_path / 'o'}", "--split=words"])


def test_refuses_to_overwrite_and_a_failed_run_never_looks_finished(
  corpus_dir, prepared, tmp_path, monkeypatch
):
  out, _ = prepared
  with pytest.raises(ValueError, match=r"already holds a finished dataset.*--overwrite"):
    prepare.main([f"--input_dir={corpus_dir[0]}", f"--output_dir={out}"])

  def crash(*args, **kwargs):
    raise KeyboardInterrupt  # a kill half-way through writing the row files

  monkeypatch.setattr(row_files.RowPacker, "add", crash)
  target = tmp_path / "never"
  with pytest.raises(BaseException):  # noqa: B017 (Beam may wrap the interrupt)
    prepare.main([f"--input_dir={corpus_dir[0]}", f"--output_dir={target}", "--vocab_size=400"])
  assert not (target / "meta.json").exists()
  assert not [n for n in os.listdir(target) if n.endswith(".array_record")]


def test_bad_inputs_are_rejected(tmp_path, corpus_dir):
  with pytest.raises(ValueError, match=r"is not a directory"):
    prepare.main([f"--input_dir={tmp_path / 'missing'}", f"--output_dir={tmp_path / 'o'}"])
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match=r"holds no files"):
    prepare.main([f"--input_dir={tmp_path / 'empty'}", f"--output_dir={tmp_path / 'o'}"])
  with pytest.raises(ValueError, match=r"vocab_size=100 is too small"):
    prepare.main([f"--input_dir={corpus_dir[0]}", f"--output_dir={tmp_path / 'o'}",
                  "--vocab_size=100"])  # fmt: skip
  with pytest.raises(ValueError, match=r"could not train a 50000-piece BPE"):
    prepare.main([f"--input_dir={corpus_dir[0]}", f"--output_dir={tmp_path / 'o'}",
                  "--vocab_size=50000"])  # fmt: skip
  assert not (tmp_path / "o" / "meta.json").exists()


def test_command_line_entry_point(corpus_dir, tmp_path):
  out = tmp_path / "cli"
  run = subprocess.run(
    [sys.executable, "-m", "anytime.lm.prepare", f"--input_dir={corpus_dir[0]}",
     f"--output_dir={out}", "--vocab_size=300", "--split=line", "--extensions=.txt"],
    capture_output=True, text=True, check=False,
  )  # fmt: skip
  assert run.returncode == 0, run.stderr
  assert "tokens/s" in run.stdout
  meta = json.loads((out / "meta.json").read_text())
  assert meta["vocab_size"] == 300 and meta["format"] == "anytime-rows"
  assert meta["splits"]["train"]["documents"] + meta["splits"]["val"]["documents"] > 400
  bad = subprocess.run(
    [sys.executable, "-m", "anytime.lm.prepare", f"--input_dir={tmp_path / 'x'}",
     f"--output_dir={tmp_path / 'y'}"],
    capture_output=True, text=True, check=False,
  )  # fmt: skip
  assert bad.returncode != 0 and "input_dir=" in bad.stderr and "is not a directory" in bad.stderr
