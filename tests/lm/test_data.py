"""anytime.lm.data: determinism, resume, sharding, window/document contents, validation, entropy."""

import json
import os

import numpy as np
import pytest

from anytime.lm import corpus, data, prepare
from anytime.lm import rows as rows_lib


def synthetic_cfg(**overrides):
  cfg = data.default_data_config()
  cfg.source = "synthetic"
  cfg.vocab_size = 64
  cfg.synthetic_train_tokens = 20_000
  cfg.synthetic_val_tokens = 4_000
  cfg.synthetic_doc_len = 100
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


def write_token_dir(path, train, val, *, vocab, eos_id=None, dtype=None, meta_overrides=None):
  """A token dir holding the given arrays, in the format anytime.lm.prepare writes."""
  dtype = np.dtype(dtype or prepare.token_dtype(vocab))
  os.makedirs(path, exist_ok=True)
  np.asarray(train, dtype=dtype).tofile(os.path.join(path, "train.bin"))
  np.asarray(val, dtype=dtype).tofile(os.path.join(path, "val.bin"))
  meta = dict(
    format=prepare.FORMAT,
    format_version=prepare.FORMAT_VERSION,
    dtype=dtype.name,
    vocab_size=vocab,
    eos_id=eos_id,
    splits=dict(train=dict(tokens=len(train)), val=dict(tokens=len(val))),
  )
  meta.update(meta_overrides or {})
  with open(os.path.join(path, "meta.json"), "w") as f:
    json.dump(meta, f)
  return path


def tokens_cfg(path, **overrides):
  cfg = data.default_data_config()
  cfg.source = "tokens"
  cfg.path = str(path)
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def assert_batches_equal(xs, ys):
  assert len(xs) == len(ys)
  for x, y in zip(xs, ys, strict=True):
    np.testing.assert_array_equal(x["inputs"], y["inputs"])
    np.testing.assert_array_equal(x["targets"], y["targets"])


# ---------------------------------------------------------------------------- batches and resume


def test_batch_shapes_dtypes_and_shifted_targets():
  it = data.make_train_iterator(synthetic_cfg(), seq_len=32, global_batch_size=6, seed=0)
  for batch in take(it, 3):
    assert set(batch) == {"inputs", "targets"}
    assert batch["inputs"].shape == batch["targets"].shape == (6, 32)
    assert batch["inputs"].dtype == batch["targets"].dtype == np.int32
    np.testing.assert_array_equal(batch["targets"][:, :-1], batch["inputs"][:, 1:])
    assert batch["inputs"].min() >= 0 and batch["inputs"].max() < 64


@pytest.mark.parametrize("sampling", ["windows", "documents"])
def test_deterministic_given_seed_and_seed_matters(sampling):
  cfg = synthetic_cfg(sampling=sampling)
  make = lambda seed: data.make_train_iterator(cfg, seq_len=16, global_batch_size=4, seed=seed)
  a, b, c = take(make(3), 5), take(make(3), 5), take(make(4), 5)
  assert_batches_equal(a, b)
  assert not all(np.array_equal(x["inputs"], y["inputs"]) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("sampling", ["windows", "documents"])
@pytest.mark.parametrize("num_threads", [0, 2])
def test_resume_from_state_equals_uninterrupted(sampling, num_threads):
  # 20k tokens / 64 = ~310 rows per epoch, 16 rows per step: 60 steps cross 3 epoch boundaries.
  cfg = synthetic_cfg(sampling=sampling, num_threads=num_threads)
  kwargs = dict(seq_len=64, global_batch_size=16, seed=7)
  uninterrupted = take(data.make_train_iterator(cfg, **kwargs), 60)
  first = data.make_train_iterator(cfg, **kwargs)
  head = take(first, 23)
  state = json.loads(json.dumps(first.get_state()))  # what a checkpoint stores
  assert state["step"] == 23
  take(first, 5)  # the old iterator running on must not matter
  resumed = data.make_train_iterator(cfg, **kwargs)
  resumed.set_state(state)
  assert_batches_equal(head + take(resumed, 37), uninterrupted)
  assert resumed.get_state()["step"] == 60


def test_set_state_rejects_a_different_sequence():
  it = data.make_train_iterator(synthetic_cfg(), seq_len=16, global_batch_size=4, seed=0)
  next(it)
  state = it.get_state()
  other = data.make_train_iterator(synthetic_cfg(), seq_len=16, global_batch_size=4, seed=1)
  with pytest.raises(ValueError, match=r"different batch sequence.*seed"):
    other.set_state(state)
  with pytest.raises(ValueError, match=r"not a data-iterator state"):
    other.set_state({"next_index": 3})


@pytest.mark.parametrize("sampling", ["windows", "documents"])
def test_process_shards_are_disjoint_slices_of_the_global_batch(sampling):
  cfg = synthetic_cfg(sampling=sampling)
  kwargs = dict(seq_len=16, global_batch_size=8, seed=5)
  whole = take(data.make_train_iterator(cfg, **kwargs), 10)
  shards = [
    take(data.make_train_iterator(cfg, process_index=p, process_count=4, **kwargs), 10)
    for p in range(4)
  ]
  for step in range(10):
    parts = [shards[p][step]["inputs"] for p in range(4)]
    assert all(part.shape == (2, 16) for part in parts)
    np.testing.assert_array_equal(np.concatenate(parts), whole[step]["inputs"])
    rows = {part.tobytes() for part in np.concatenate(parts)}
    assert len(rows) == 8  # no row read by two processes


def test_state_saved_by_one_process_resumes_on_two():
  cfg = synthetic_cfg()
  kwargs = dict(seq_len=16, global_batch_size=8, seed=2)
  single = data.make_train_iterator(cfg, **kwargs)
  expected = take(single, 9)[4:]
  single = data.make_train_iterator(cfg, **kwargs)
  take(single, 4)
  state = single.get_state()
  halves = []
  for p in range(2):
    it = data.make_train_iterator(cfg, process_index=p, process_count=2, **kwargs)
    it.set_state(state)
    halves.append(take(it, 5))
  for step in range(5):
    got = np.concatenate([halves[0][step]["inputs"], halves[1][step]["inputs"]])
    np.testing.assert_array_equal(got, expected[step]["inputs"])


# ---------------------------------------------------------------------------- row contents


def test_windows_are_file_slices_covering_each_epoch_once(tmp_path):
  n, seq_len = 3001, 10
  train = np.arange(n)  # every token identifies its position
  write_token_dir(tmp_path, train, np.arange(50), vocab=4000)
  per_epoch = (n - seq_len) // seq_len  # 299 rows
  it = data.make_train_iterator(tokens_cfg(tmp_path), seq_len=seq_len, global_batch_size=1, seed=0)
  epochs = []
  for _ in range(2):
    starts = []
    for batch in take(it, per_epoch):
      row = np.concatenate([batch["inputs"][0], batch["targets"][0][-1:]])
      start = int(row[0])
      np.testing.assert_array_equal(row, train[start : start + seq_len + 1])
      starts.append(start)
    offsets = {s % seq_len for s in starts}
    assert len(offsets) == 1  # one random offset per epoch ...
    offset = offsets.pop()
    # ... and every window of that grid exactly once, in a shuffled order.
    assert sorted(starts) == [offset + r * seq_len for r in range(per_epoch)]
    assert starts != sorted(starts)
    epochs.append(starts)
  assert epochs[0] != epochs[1]


def test_documents_rows_pack_every_document_once_per_epoch(tmp_path):
  rng = np.random.default_rng(0)
  eos, vocab = 0, 1000
  docs = [rng.integers(1, vocab, size=rng.integers(1, 40)) for _ in range(60)]
  train = np.concatenate([np.append(d, eos) for d in docs])
  write_token_dir(tmp_path, train, np.arange(1, 50), vocab=vocab, eos_id=eos)
  cfg = tokens_cfg(tmp_path, sampling="documents")
  seq_len = 8
  per_epoch = (len(train) - 1) // seq_len
  it = data.make_train_iterator(cfg, seq_len=seq_len, global_batch_size=1, seed=1)
  rows = [np.concatenate([b["inputs"][0], b["targets"][0][-1:]]) for b in take(it, 2 * per_epoch)]
  for epoch in range(2):
    epoch_rows = {r.tobytes() for r in rows[epoch * per_epoch : (epoch + 1) * per_epoch]}
    assert len(epoch_rows) == per_epoch
    # The iterator's rows are the packed stream's rows in a shuffled order; rebuild the stream
    # in row order (consecutive rows share one token) and check it holds whole documents.
    packed = rows_lib.DocumentRows(train, seq_len, rows_lib.mix_seed(1), eos)
    stream = np.concatenate(
      [packed(epoch, r)[:-1] for r in range(per_epoch)] + [packed(epoch, per_epoch - 1)[-1:]]
    )
    assert {packed(epoch, r).tobytes() for r in range(per_epoch)} == epoch_rows
    pieces = np.split(stream, np.flatnonzero(stream == eos) + 1)
    complete = [tuple(p[:-1]) for p in pieces if len(p) and p[-1] == eos]
    tail = pieces[-1] if len(pieces[-1]) and pieces[-1][-1] != eos else pieces[-1][:0]
    # Every document appears whole and at most once; the documents missing are exactly the ones
    # cut off at the end (fewer than seq_len tokens are left over), the tail starts one of them.
    assert len(stream) == seq_len * per_epoch + 1
    assert len(complete) == len(set(complete))
    assert set(complete) <= {tuple(d) for d in docs}
    missing = [d for d in docs if tuple(d) not in set(complete)]
    assert sum(len(d) + 1 for d in missing) == len(train) - (len(stream) - len(tail))
    assert len(tail) == 0 or any(tuple(d[: len(tail)]) == tuple(tail) for d in missing)
  # Different epochs pack the documents in different orders.
  assert {r.tobytes() for r in rows[:per_epoch]} != {r.tobytes() for r in rows[per_epoch:]}


def test_eval_batches_are_fixed_val_slices_sharded_by_process(tmp_path):
  val = np.arange(1000, 1500)
  write_token_dir(tmp_path, np.arange(600), val, vocab=2000)
  cfg = tokens_cfg(tmp_path)
  batches = data.make_eval_batches(cfg, seq_len=10, batch_size=4, num_batches=3)
  assert len(batches) == 3
  for b, batch in enumerate(batches):
    for i in range(4):
      r = 4 * b + i
      np.testing.assert_array_equal(batch["inputs"][i], val[r * 10 : r * 10 + 10])
      np.testing.assert_array_equal(batch["targets"][i], val[r * 10 + 1 : r * 10 + 11])
  again = data.make_eval_batches(cfg, seq_len=10, batch_size=4, num_batches=3)
  assert_batches_equal(batches, again)
  halves = [
    data.make_eval_batches(
      cfg, seq_len=10, batch_size=4, num_batches=3, process_index=p, process_count=2
    )
    for p in range(2)
  ]
  for b in range(3):
    got = np.concatenate([halves[0][b]["inputs"], halves[1][b]["inputs"]])
    np.testing.assert_array_equal(got, batches[b]["inputs"])
  with pytest.raises(ValueError, match=r"holds 49 rows.*at most 12 batches"):
    data.make_eval_batches(cfg, seq_len=10, batch_size=4, num_batches=13)


def test_synthetic_val_is_not_train():
  cfg = synthetic_cfg()
  tokens = data.load_tokens(cfg)
  assert len(tokens.train) >= 20_000 and len(tokens.val) >= 4_000
  assert tokens.eos_id == 63 and data.vocab_size(cfg) == 64
  train_rows = {tokens.train[i : i + 24].tobytes() for i in range(0, len(tokens.train) - 24)}
  val_rows = [tokens.val[i : i + 24].tobytes() for i in range(0, len(tokens.val) - 24, 24)]
  assert not any(r in train_rows for r in val_rows)


def test_synthetic_loss_of_the_true_bigram_approaches_the_entropy_rate():
  cfg = synthetic_cfg(vocab_size=32, synthetic_train_tokens=400_000, synthetic_doc_len=512)
  rate = data.synthetic_entropy_rate(cfg)
  chain = data.synthetic_chain(cfg)
  assert 0.3 < rate < np.log(cfg.synthetic_branching)
  assert abs(chain.stationary.sum() - 1) < 1e-9
  dense = np.zeros((31, 31))
  np.add.at(dense, (np.arange(31)[:, None], chain.successors), chain.probs)
  np.testing.assert_allclose(chain.stationary @ dense, chain.stationary, atol=1e-6)
  # A bigram model estimated from the training split, scored on the validation split: its loss
  # is the entropy rate plus the EOS positions' cost, about (log 512 + H(pi)) / 512 = 0.02 nats.
  tokens = data.load_tokens(cfg)
  counts = np.full((32, 32), 0.01)
  np.add.at(counts, (tokens.train[:-1].astype(int), tokens.train[1:].astype(int)), 1)
  probs = counts / counts.sum(axis=1, keepdims=True)
  val = tokens.val.astype(int)
  loss = -np.mean(np.log(probs[val[:-1], val[1:]]))
  assert rate - 0.01 < loss < rate + 0.04, (loss, rate)
  # and the chain itself is what the split follows: a successor outside the chain never occurs.
  allowed = np.zeros((32, 32), bool)
  allowed[np.arange(31)[:, None], chain.successors] = True
  allowed[:, 31] = allowed[31, :] = True
  assert allowed[val[:-1], val[1:]].all()


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
  ("field", "value", "message"),
  [
    ("source", "c4", r"data.source='c4' is invalid: one of \('synthetic', 'stdlib', 'tokens'\)"),
    ("sampling", "random", r"data.sampling='random' is invalid: one of"),
    ("num_threads", -1, r"data.num_threads=-1 is invalid: allowed range"),
    ("prefetch", -2, r"data.prefetch=-2 is invalid: allowed range is \[0, 1024\]"),
    ("vocab_size", 2, r"data.vocab_size=2 is invalid: allowed range is \[3"),
    ("synthetic_branching", 64, r"data.synthetic_branching=64 is invalid: allowed range"),
  ],
)
def test_bad_fields_are_named(field, value, message):
  cfg = synthetic_cfg()
  cfg[field] = value
  with pytest.raises(ValueError, match=message):
    data.validate_data_config(cfg)


def test_bad_structure_and_call_arguments_are_named(tmp_path):
  cfg = synthetic_cfg()
  cfg.seq_length = 5
  with pytest.raises(ValueError, match=r"unknown data field\(s\) \['seq_length'\]"):
    data.validate_data_config(cfg)
  cfg = synthetic_cfg()
  with pytest.raises(ValueError, match=r"seq_len=0 is invalid"):
    data.make_train_iterator(cfg, seq_len=0, global_batch_size=4, seed=0)
  with pytest.raises(ValueError, match=r"global_batch_size=6 is invalid: expected a positive "):
    data.make_train_iterator(cfg, seq_len=8, global_batch_size=6, seed=0, process_count=4)
  with pytest.raises(ValueError, match=r"process_index=2 is invalid"):
    data.make_train_iterator(cfg, seq_len=8, global_batch_size=4, seed=0, process_index=2,
                             process_count=2)  # fmt: skip
  with pytest.raises(ValueError, match=r"seed=-1 is invalid"):
    data.make_train_iterator(cfg, seq_len=8, global_batch_size=4, seed=-1)
  with pytest.raises(ValueError, match=r"seq_len=30000 is too long"):
    data.validate_data_config(cfg, seq_len=30_000)
  with pytest.raises(ValueError, match=r"data.path='' is invalid: source \"tokens\" needs"):
    data.validate_data_config(tokens_cfg(""))
  with pytest.raises(ValueError, match=r"not a directory"):
    data.validate_data_config(tokens_cfg(tmp_path / "nowhere"))
  with pytest.raises(ValueError, match=r"no meta.json"):
    data.validate_data_config(tokens_cfg(tmp_path))
  stdlib = data.default_data_config()
  stdlib.extra_text_dirs = (str(tmp_path / "nowhere"),)
  with pytest.raises(ValueError, match=r"data.extra_text_dirs=.*is not a directory"):
    data.validate_data_config(stdlib)


def test_token_dir_checks_on_open(tmp_path):
  good = np.arange(100) % 50
  write_token_dir(tmp_path / "ok", good, good, vocab=50, eos_id=0)
  assert data.vocab_size(tokens_cfg(tmp_path / "ok")) == 50
  assert len(data.open_token_dir(str(tmp_path / "ok")).train) == 100

  # Written as uint16 but declared uint32: the sizes disagree.
  write_token_dir(
    tmp_path / "dtype", good, good, vocab=50, dtype=np.uint16, meta_overrides={"dtype": "uint32"}
  )
  with pytest.raises(ValueError, match=r"is not 100 tokens of uint32.*wrong dtype"):
    data.open_token_dir(str(tmp_path / "dtype"))

  write_token_dir(tmp_path / "count", good, good, vocab=50)
  meta = json.loads((tmp_path / "count" / "meta.json").read_text())
  meta["splits"]["train"]["tokens"] = 120
  (tmp_path / "count" / "meta.json").write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=r"train.bin: 200 bytes is not 120 tokens"):
    data.open_token_dir(str(tmp_path / "count"))

  bad = good.copy()
  bad[37] = 50
  write_token_dir(tmp_path / "range", bad, good, vocab=50)
  with pytest.raises(
    ValueError, match=r"token id 50 at position 37 is out of range for vocab_size=50"
  ):
    data.open_token_dir(str(tmp_path / "range"))

  write_token_dir(tmp_path / "kind", good, good, vocab=50, meta_overrides={"dtype": "int8"})
  with pytest.raises(ValueError, match=r"dtype='int8', allowed: 'uint16', 'uint32'"):
    data.validate_data_config(tokens_cfg(tmp_path / "kind"))

  write_token_dir(tmp_path / "eos", good, good, vocab=50, eos_id=None)
  with pytest.raises(ValueError, match='"documents" needs an eos_id'):
    data.make_train_iterator(
      tokens_cfg(tmp_path / "eos", sampling="documents"), seq_len=4, global_batch_size=2, seed=0
    )


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
  assert meta["splits"]["train"]["tokens"] > 2_000_000
  val_share = meta["splits"]["val"]["chars"] / (
    meta["splits"]["val"]["chars"] + meta["splits"]["train"]["chars"]
  )
  assert 0.04 < val_share < 0.06
  mtime = os.path.getmtime(os.path.join(token_dir, "meta.json"))
  data._stdlib_dir.cache_clear()
  assert data.stdlib_token_dir(cfg) == token_dir  # reused, not rebuilt
  assert os.path.getmtime(os.path.join(token_dir, "meta.json")) == mtime
  from anytime.lm.tokenizer import Tokenizer

  tok = Tokenizer.from_file(os.path.join(token_dir, "tokenizer.model"))
  batch = next(data.make_train_iterator(cfg, seq_len=256, global_batch_size=16, seed=0))
  sources = "\x00".join(t for _, t in corpus.corpus_documents())
  checked = 0
  for row in batch["inputs"]:
    text = tok.decode(row)
    if tok.eos_id not in row and "\ufffd" not in text:  # within one file, whole characters
      assert text in sources
      checked += 1
  assert checked >= 4


def tiny_corpus(extra_text_dirs=()):
  rng = np.random.default_rng(0)
  words = np.array(
    ["alpha", "beta", "gamma", "delta", "epsilon", "def", "return", "import", "class", "self"]
  )
  return [
    (f"stdlib/m{k}.py", "\n".join(" ".join(rng.choice(words, 8)) for _ in range(30)))
    for k in range(10)
  ]


def test_stdlib_cache_is_keyed_reused_and_only_complete_dirs_count(tmp_path, monkeypatch):
  monkeypatch.setattr(corpus, "corpus_documents", tiny_corpus)
  monkeypatch.setenv("ANYTIME_CACHE", str(tmp_path))
  # A directory left by a killed preparation does not count as the cache.
  (tmp_path / ".stdlib-0000.tmp-1-x").mkdir()
  first = corpus.ensure_stdlib_tokens(vocab_size=300, val_fraction=0.2)
  assert os.path.dirname(first) == str(tmp_path)
  assert os.path.basename(first).startswith("stdlib-")
  assert sorted(os.listdir(tmp_path)) == sorted([".stdlib-0000.tmp-1-x", os.path.basename(first)])
  with open(os.path.join(first, "meta.json")) as f:
    meta = json.load(f)
  assert meta["vocab_size"] == 300 and meta["source"]["corpus"] == "stdlib"

  def must_not_prepare(*args, **kwargs):
    raise AssertionError("prepared again although cached")

  real_prepare = prepare.prepare_documents
  monkeypatch.setattr(prepare, "prepare_documents", must_not_prepare)
  assert corpus.ensure_stdlib_tokens(vocab_size=300, val_fraction=0.2) == first
  # Another option is another corpus, in another directory.
  monkeypatch.setattr(prepare, "prepare_documents", real_prepare)
  second = corpus.ensure_stdlib_tokens(vocab_size=300, val_fraction=0.3)
  assert second != first

  # Another process publishing the same directory first: this one uses it and leaves no litter.
  def publish_first(documents, output_dir, **kwargs):
    real_prepare(documents, output_dir, **kwargs)  # the "other process"
    return real_prepare(documents, output_dir, **kwargs)  # ours: finds it exists

  monkeypatch.setattr(prepare, "prepare_documents", publish_first)
  third = corpus.ensure_stdlib_tokens(vocab_size=320, val_fraction=0.2)
  assert os.path.exists(os.path.join(third, "meta.json"))
  assert len(os.listdir(tmp_path)) == 4  # the stale tmp dir + three corpora


def test_uint32_token_files_for_large_vocabularies(tmp_path):
  vocab = 70_000  # above uint16: the T5/C4 case is 32128 (uint16); larger tokenizers use uint32
  train = (vocab - 5000) + (np.arange(5000) * 37) % 5000  # distinct ids, all >= 65000
  write_token_dir(tmp_path, train, train[:600], vocab=vocab, eos_id=vocab - 1)
  assert json.loads((tmp_path / "meta.json").read_text())["dtype"] == "uint32"
  assert os.path.getsize(tmp_path / "train.bin") == 4 * 5000
  cfg = tokens_cfg(tmp_path)
  assert data.vocab_size(cfg) == vocab
  batch = next(data.make_train_iterator(cfg, seq_len=20, global_batch_size=2, seed=0))
  assert batch["inputs"].max() >= 65536
  for row in batch["inputs"]:
    start = int(np.flatnonzero(train == row[0])[0])
    np.testing.assert_array_equal(row, train[start : start + 20])
