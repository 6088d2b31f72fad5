"""The Beam prepare pipeline on C4-shaped shards the tests write (DirectRunner, no download):
text -> ArrayRecord rows -> the trainer's batches, worker-count independence, HF tokenizers,
resume and multi-process slices on row datasets, and every kind of bad input."""

import gzip
import json
import os

import numpy as np
import pytest

pytest.importorskip("apache_beam")

from anytime.lm import beam_prepare, data, row_files, shards
from anytime.lm import tokenizer as tokenizer_lib

WORD_TEXT = "the of and to in a is that for it as was with be by on not he this are or from at"
WORDS = WORD_TEXT.split()


def _docs(seed, n):
  rng = np.random.default_rng(seed)
  return [" ".join(rng.choice(WORDS, size=int(rng.integers(5, 120)))) for _ in range(n)]


def write_c4(directory, num_shards=3, docs_per_shard=80, split="train"):
  """C4-layout shards: c4-<split>.0000k-of-0000n.json.gz, one JSON object per line."""
  os.makedirs(directory, exist_ok=True)
  texts = []
  for k in range(num_shards):
    docs = _docs(k + (100 if split == "validation" else 0), docs_per_shard)
    texts.append(docs)
    name = os.path.join(directory, f"c4-{split}.{k:05d}-of-{num_shards:05d}.json.gz")
    with gzip.open(name, "wt") as f:
      for i, t in enumerate(docs):
        f.write(json.dumps({"text": t, "timestamp": "2019-04-25", "url": f"u/{k}/{i}"}) + "\n")
  return texts


def prepare(tmp_path, out="out", *extra, glob=None):
  args = [
    f"--input={glob or tmp_path / 'c4' / 'c4-train.*.json.gz'}",
    f"--output_dir={tmp_path / out}",
    "--vocab_size=300",
    "--seq_len=32",
    "--val_fraction=0.1",
    *extra,
  ]
  return beam_prepare.run(args)


def read_rows(path, meta, split):
  rows = []
  for entry in meta["splits"][split]["files"]:
    if entry["rows"]:
      s = row_files.open_split(
        str(path),
        {
          **meta,
          "splits": {split: {**meta["splits"][split], "files": [entry], "rows": entry["rows"]}},
        },
        split,
      )
      rows.append(np.stack([s.row(i) for i in range(s.rows)]))
  return rows


@pytest.fixture(scope="module")
def c4(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("c4data")
  texts = write_c4(tmp / "c4")
  meta = prepare(tmp)
  return tmp, texts, meta


def test_round_trip_text_to_rows_to_batches(c4):
  tmp, texts, meta = c4
  out = tmp / "out"
  assert meta["format"] == "anytime-rows" and meta["seq_len"] == 32 and meta["vocab_size"] == 300
  assert meta["inputs"][0]["name"].endswith("/c4-train.00000-of-00003.json.gz")
  assert sorted(os.listdir(out))[-1] == "val-00002.array_record"
  tok = tokenizer_lib.Tokenizer.from_file(str(out / "tokenizer.model"))
  assert tok.sha256 == meta["tokenizer_sha256"]
  for k, rows in enumerate(read_rows(out, meta, "train")):
    stream = np.concatenate([rows[0], *(r[1:] for r in rows[1:])])  # rows overlap by one token
    docs = np.split(stream, np.flatnonzero(stream == meta["eos_id"]) + 1)
    want = [t for t in texts[k] if not shards.is_val(t, 0.1)]
    decoded = [tok.decode(d[:-1]) for d in docs[:-1]]
    assert decoded == want[: len(decoded)] and len(decoded) >= len(want) - 1
    assert tok.decode(docs[-1]) in want[len(decoded)]  # the cut tail: a prefix of the next
  total = sum(f["documents"] for s in ("train", "val") for f in meta["splits"][s]["files"])
  assert total == sum(map(len, texts)) and meta["splits"]["val"]["documents"] > 0

  # The trainer's batches at seq_len 16 (2 parts per stored row) cover one epoch exactly.
  cfg = data.default_data_config()
  cfg.source, cfg.path = "tokens", str(out)
  assert data.vocab_size(cfg) == 300
  per_epoch = meta["splits"]["train"]["rows"] * 2
  it = data.make_train_iterator(cfg, seq_len=16, global_batch_size=per_epoch, seed=3)
  batch = next(it)
  got = np.concatenate([batch["inputs"], batch["targets"][:, -1:]], axis=1)
  stored = np.concatenate(read_rows(out, meta, "train"))
  want = np.concatenate([stored[:, :17], stored[:, 16:]])
  assert sorted(map(tuple, got)) == sorted(map(tuple, want))
  assert not np.array_equal(got, want)  # shuffled


def test_output_does_not_depend_on_worker_count(c4, tmp_path):
  tmp, _, meta1 = c4
  meta2 = beam_prepare.run(
    [
      f"--input={tmp / 'c4' / 'c4-train.*.json.gz'}",
      f"--output_dir={tmp_path / 'two'}",
      f"--tokenizer={tmp / 'out' / 'tokenizer.model'}",
      "--seq_len=32",
      "--val_fraction=0.1",
      "--direct_num_workers=2",
      "--direct_running_mode=multi_threading",
    ]
  )
  for name in os.listdir(tmp / "out"):
    if name.endswith(".array_record"):
      assert (tmp / "out" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
  assert meta2["splits"] == meta1["splits"] or all(
    {k: v for k, v in f.items() if k != "input"} == {k: v for k, v in g.items() if k != "input"}
    for s in ("train", "val")
    for f, g in zip(meta1["splits"][s]["files"], meta2["splits"][s]["files"], strict=True)
  )


def test_resume_and_process_slices_on_row_datasets(c4):
  tmp, _, _ = c4
  cfg = data.default_data_config()
  cfg.source, cfg.path = "tokens", str(tmp / "out")
  whole = data.make_train_iterator(cfg, seq_len=32, global_batch_size=8, seed=1)
  ref = [next(whole) for _ in range(30)]  # > one epoch: ~100 rows / 8
  it = data.make_train_iterator(cfg, seq_len=32, global_batch_size=8, seed=1)
  [next(it) for _ in range(7)]
  state = json.loads(json.dumps(it.get_state()))
  resumed = data.make_train_iterator(cfg, seq_len=32, global_batch_size=8, seed=1)
  resumed.set_state(state)
  for k in range(7, 30):
    np.testing.assert_array_equal(next(resumed)["inputs"], ref[k]["inputs"])
  parts = [
    data.make_train_iterator(
      cfg, seq_len=32, global_batch_size=8, seed=1, process_index=p, process_count=2
    )
    for p in range(2)
  ]
  for part in parts:
    part.set_state(state)
  for k in range(7, 12):
    got = np.concatenate([next(p)["inputs"] for p in parts])
    np.testing.assert_array_equal(got, ref[k]["inputs"])
  evals = data.make_eval_batches(cfg, seq_len=16, batch_size=2, num_batches=2)
  assert evals[0]["inputs"].shape == (2, 16)
  with pytest.raises(ValueError, match=r"seq_len=24 does not fit the dataset.*seq_len=32"):
    data.make_train_iterator(cfg, seq_len=24, global_batch_size=2, seed=0)


def test_hf_tokenizer_and_the_inputs_own_validation_shards(tmp_path):
  from tokenizers import Tokenizer, models, pre_tokenizers, trainers

  texts = write_c4(tmp_path / "c4", num_shards=2, docs_per_shard=30)
  val_texts = write_c4(tmp_path / "c4", num_shards=1, docs_per_shard=20, split="validation")
  hf = Tokenizer(models.BPE(unk_token="<unk>"))
  hf.pre_tokenizer = pre_tokenizers.Whitespace()
  trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>", "<|endoftext|>"])
  hf.train_from_iterator([t for d in texts for t in d], trainer)
  hf.save(str(tmp_path / "hf.json"))
  meta = beam_prepare.run(
    [
      f"--input={tmp_path / 'c4' / 'c4-train.*.json.gz'}",
      f"--output_dir={tmp_path / 'out'}",
      f"--val_input={tmp_path / 'c4' / 'c4-validation.*.json.gz'}",
      f"--tokenizer={tmp_path / 'hf.json'}",
      "--seq_len=16",
    ]
  )
  assert meta["tokenizer_kind"] == "hf" and meta["tokenizer"] == "tokenizer.json"
  assert (
    meta["eos_id"] == hf.token_to_id("<|endoftext|>") and meta["vocab_size"] == hf.get_vocab_size()
  )
  assert meta["splits"]["val"]["documents"] == 20 and meta["splits"]["train"]["documents"] == 60
  assert meta["val"] == {"by": "shards", "input": str(tmp_path / "c4" / "c4-validation.*.json.gz")}
  rows = read_rows(tmp_path / "out", meta, "val")[0]
  stream = np.concatenate([rows[0], *(r[1:] for r in rows[1:])])
  first = stream[: list(stream).index(meta["eos_id"])]
  assert hf.decode(first.tolist()) == " ".join(val_texts[0][0].split())


# -------------------------------------------------------------------------------- bad inputs


def _shard_file(tmp_path, lines, name="c4-train.00000-of-00001.json"):
  os.makedirs(tmp_path / "bad", exist_ok=True)
  path = tmp_path / "bad" / name
  path.write_text("".join(line + "\n" for line in lines))
  return path


GOOD = json.dumps({"text": "the of and to in a is that"})


@pytest.mark.parametrize(
  "lines,pattern",
  [
    ([GOOD, "{not json", GOOD], r"c4-train.00000-of-00001.json:2: malformed JSON"),
    ([GOOD, GOOD, json.dumps({"content": "x"})], r"\.json:3: no string field 'text'"),
  ],
)
def test_bad_records_fail_naming_shard_and_line_or_are_skipped(c4, tmp_path, lines, pattern):
  shard = _shard_file(tmp_path, lines * 20)
  tok = f"--tokenizer={c4[0] / 'out' / 'tokenizer.model'}"
  with pytest.raises(Exception, match=pattern):
    prepare(tmp_path, "out", tok, glob=shard)
  assert not (tmp_path / "out" / "meta.json").exists()
  meta = prepare(tmp_path, "out2", tok, "--skip_bad_records", glob=shard)
  assert meta["skipped"]["records"] == 20 and meta["splits"]["train"]["documents"] == 40


def test_truncated_gzip_shard_fails_or_is_skipped_whole(c4, tmp_path):
  tok = f"--tokenizer={c4[0] / 'out' / 'tokenizer.model'}"
  write_c4(tmp_path / "c4", num_shards=2)
  victim = tmp_path / "c4" / "c4-train.00001-of-00002.json.gz"
  victim.write_bytes(victim.read_bytes()[:-200])
  with pytest.raises(Exception, match=r"00001-of-00002.json.gz:\d+: truncated or corrupt"):
    prepare(tmp_path, "out", tok)
  assert not (tmp_path / "out" / "meta.json").exists()
  meta = prepare(tmp_path, "out", tok, "--skip_bad_records")
  assert [s["input"] for s in meta["skipped"]["shards"]] == [str(victim)]
  assert [f["shard"] for f in meta["splits"]["train"]["files"]] == [0]
  assert not (tmp_path / "out" / "train-00001.array_record").exists()


def test_empty_glob_and_finished_output_dir(c4, tmp_path):
  tmp, _, _ = c4
  with pytest.raises(ValueError, match=r"--input=.*nothing-\*.json.gz' matches no files"):
    prepare(tmp_path, glob=tmp_path / "nothing-*.json.gz")
  with pytest.raises(ValueError, match=r"already holds a finished dataset.*--overwrite"):
    prepare(tmp, "out", f"--tokenizer={tmp / 'out' / 'tokenizer.model'}")


def test_token_ids_outside_the_tokenizer_range_fail(tmp_path):
  class Broken:
    vocab_size, eos_id = 10, 2

    def encode_batch(self, texts, num_threads=1):
      return [[3, 4, 12] for _ in texts]

  shard = shards.Shard(0, "json", (str(_shard_file(tmp_path, [GOOD])),), 0)
  opts = dict(
    output_dir=str(tmp_path),
    seq_len=4,
    val_fraction=0.1,
    val_by_shard=False,
    text_field="text",
    split="file",
    skip_bad=True,
  )
  with pytest.raises(ValueError, match=r"00001.json:1: token id 12 outside .*\[0, 10\)"):
    beam_prepare.write_shard(shard, Broken(), opts)
  assert not [n for n in os.listdir(tmp_path) if "array_record" in n]


def test_row_file_ids_checked_against_meta_on_open(c4, tmp_path):
  tmp, _, meta = c4
  import shutil

  shutil.copytree(tmp / "out", tmp_path / "d")
  meta = dict(meta, vocab_size=200)
  (tmp_path / "d" / "meta.json").write_text(json.dumps(meta))
  cfg = data.default_data_config()
  cfg.source, cfg.path = "tokens", str(tmp_path / "d")
  with pytest.raises(ValueError, match=r"train-00000.array_record: holds token id 2\d\d >= "):
    data.make_train_iterator(cfg, seq_len=32, global_batch_size=2, seed=0)
