"""anytime.lm.data: determinism, resume, sharding, row contents, the one dataset format (rows),
validation, the stdlib cache, entropy."""

import json
import os

import numpy as np
import pytest

from anytime.lm import data, row_files


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


def write_rows_dir(
  path, train, val, *, vocab, seq_len, eos_id=0, dtype=None, meta_overrides=None, files=1
):
  """A row dataset holding the given token streams cut into rows of seq_len + 1 (stride seq_len),
  in the one format (anytime.lm.row_files) - written directly, as any tool may; train's rows are
  spread over `files` files. Returns the stored rows of each split."""
  dtype = np.dtype(dtype or row_files.token_dtype(vocab))
  os.makedirs(path, exist_ok=True)
  meta = dict(
    format=row_files.FORMAT,
    format_version=row_files.FORMAT_VERSION,
    dtype=dtype.name,
    vocab_size=vocab,
    eos_id=eos_id,
    seq_len=seq_len,
    splits={},
  )
  stored = {}
  for split, stream in (("train", train), ("val", val)):
    stream = np.asarray(stream)
    n = (stream.size - 1) // seq_len
    rows = np.stack([stream[r * seq_len : r * seq_len + seq_len + 1] for r in range(n)])
    stored[split] = rows
    entries = []
    for k, part in enumerate(np.array_split(rows, files if split == "train" else 1)):
      name = row_files.file_name(split, k)
      writer = row_files.rows_writer(os.path.join(path, name))
      for row in part:
        writer.write(row.astype(dtype.newbyteorder("<")).tobytes())
      writer.close()
      entries.append(dict(file=name, rows=len(part), max_id=int(part.max())))
    meta["splits"][split] = dict(files=entries, rows=n, tokens=int(stream.size))
  meta.update(meta_overrides or {})
  with open(os.path.join(path, "meta.json"), "w") as f:
    json.dump(meta, f)
  return stored


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


def test_deterministic_given_seed_and_seed_matters():
  cfg = synthetic_cfg()
  make = lambda seed: data.make_train_iterator(cfg, seq_len=16, global_batch_size=4, seed=seed)
  a, b, c = take(make(3), 5), take(make(3), 5), take(make(4), 5)
  assert_batches_equal(a, b)
  assert not all(np.array_equal(x["inputs"], y["inputs"]) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("source", ["synthetic", "rows"])
@pytest.mark.parametrize("num_threads", [0, 2])
def test_resume_from_state_equals_uninterrupted(source, num_threads, tmp_path):
  # 20k tokens / 64 = ~310 rows per epoch, 16 rows per step: 60 steps cross 3 epoch boundaries.
  cfg = synthetic_cfg(num_threads=num_threads)
  if source == "rows":
    tokens = data.synthetic_tokens(cfg)
    write_rows_dir(tmp_path, tokens.train, tokens.val, vocab=64, seq_len=64, files=3)
    cfg = tokens_cfg(tmp_path, num_threads=num_threads)
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


@pytest.mark.parametrize("source", ["synthetic", "rows"])
def test_process_shards_are_disjoint_slices_of_the_global_batch(source, tmp_path):
  cfg = synthetic_cfg()
  if source == "rows":
    tokens = data.synthetic_tokens(cfg)
    write_rows_dir(tmp_path, tokens.train, tokens.val, vocab=64, seq_len=32, files=2)
    cfg = tokens_cfg(tmp_path)
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


@pytest.mark.parametrize("seq_len", [10, 5])
def test_rows_are_the_stored_rows_each_once_per_epoch_shuffled(tmp_path, seq_len):
  n = 3001
  train = np.arange(n)  # every token identifies its position
  write_rows_dir(tmp_path, train, np.arange(50), vocab=4000, seq_len=10, files=3)
  per_epoch = (n - 1) // seq_len  # at seq_len 5 each stored row is 2 rows, overlapping by one
  it = data.make_train_iterator(tokens_cfg(tmp_path), seq_len=seq_len, global_batch_size=1, seed=0)
  epochs = []
  for _ in range(2):
    starts = []
    for batch in take(it, per_epoch):
      row = np.concatenate([batch["inputs"][0], batch["targets"][0][-1:]])
      start = int(row[0])
      np.testing.assert_array_equal(row, train[start : start + seq_len + 1])
      starts.append(start)
    # Every row of the stream's grid exactly once, in a shuffled order.
    assert sorted(starts) == [r * seq_len for r in range(per_epoch)]
    assert starts != sorted(starts)
    epochs.append(starts)
  assert epochs[0] != epochs[1]


def test_documents_sampling_is_retired_with_a_reason(tmp_path):
  write_rows_dir(tmp_path, np.arange(100) % 50, np.arange(100) % 50, vocab=50, seq_len=10)
  with pytest.raises(ValueError, match=r"data.sampling='documents' is invalid: retired .*EOS"):
    data.make_train_iterator(
      tokens_cfg(tmp_path, sampling="documents"), seq_len=10, global_batch_size=2, seed=0
    )


def test_eval_batches_are_fixed_val_slices_sharded_by_process(tmp_path):
  val = np.arange(1000, 1500)
  write_rows_dir(tmp_path, np.arange(600), val, vocab=2000, seq_len=10)
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
  tokens = data.synthetic_tokens(cfg)
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
  tokens = data.synthetic_tokens(cfg)
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
  with pytest.raises(ValueError, match=r"no meta.json of format 'anytime-rows'"):
    data.validate_data_config(tokens_cfg(tmp_path))
  stdlib = data.default_data_config()
  stdlib.extra_text_dirs = (str(tmp_path / "nowhere"),)
  with pytest.raises(ValueError, match=r"data.extra_text_dirs=.*is not a directory"):
    data.validate_data_config(stdlib)


def _reads(path, seq_len=10):
  return next(data.make_train_iterator(tokens_cfg(path), seq_len=seq_len, global_batch_size=4,
                                       seed=0))  # fmt: skip


def test_row_dataset_checks_on_open_and_read(tmp_path):
  good = np.arange(101) % 50
  write_rows_dir(tmp_path / "ok", good, good, vocab=50, seq_len=10)
  assert data.vocab_size(tokens_cfg(tmp_path / "ok")) == 50
  assert _reads(tmp_path / "ok")["inputs"].shape == (4, 10)

  # Written as uint16 but declared uint32: each record holds half the tokens meta.json says.
  write_rows_dir(tmp_path / "dtype", good, good, vocab=50, seq_len=10,
                 meta_overrides={"dtype": "uint32"})  # fmt: skip
  with pytest.raises(ValueError, match=r"train-00000.array_record: row 0 holds 5.5 tokens, "):
    _reads(tmp_path / "dtype")

  write_rows_dir(tmp_path / "count", good, good, vocab=50, seq_len=10)
  meta = json.loads((tmp_path / "count" / "meta.json").read_text())
  meta["splits"]["train"]["rows"] = 12
  (tmp_path / "count" / "meta.json").write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=r"hold 10 rows, meta.json says 12"):
    _reads(tmp_path / "count")

  # An id >= vocab: meta.json's max_id refuses the file on open; when meta.json does not tell
  # (a file replaced after prepare), the batch holding the row is refused as it is read.
  bad = good.copy()
  bad[37] = 50
  write_rows_dir(tmp_path / "range", bad, good, vocab=50, seq_len=10)
  with pytest.raises(ValueError, match=r"train-00000.array_record: holds token id 50 >= "):
    _reads(tmp_path / "range")
  meta = json.loads((tmp_path / "range" / "meta.json").read_text())
  meta["splits"]["train"]["files"][0]["max_id"] = 49
  (tmp_path / "range" / "meta.json").write_text(json.dumps(meta))
  it = data.make_train_iterator(tokens_cfg(tmp_path / "range"), seq_len=10, global_batch_size=10,
                                seed=0)  # fmt: skip
  with pytest.raises(ValueError, match=r"train-00000.array_record: row 3 holds token id 50 >= "):
    next(it)

  write_rows_dir(tmp_path / "kind", good, good, vocab=50, seq_len=10,
                 meta_overrides={"dtype": "int8"})  # fmt: skip
  with pytest.raises(ValueError, match=r"dtype='int8', allowed: 'uint16', 'uint32'"):
    data.validate_data_config(tokens_cfg(tmp_path / "kind"))

  with pytest.raises(ValueError, match=r"seq_len=4 does not fit .*seq_len=10"):
    data.validate_data_config(tokens_cfg(tmp_path / "ok"), seq_len=4)

  # The flat token files of before issue #28 are named, with what to do instead.
  (tmp_path / "flat").mkdir()
  good.astype(np.uint16).tofile(tmp_path / "flat" / "train.bin")
  (tmp_path / "flat" / "meta.json").write_text(json.dumps({"format": "anytime-tokens"}))
  with pytest.raises(ValueError, match=r"flat token files \(train.bin\) are no longer read"):
    data.validate_data_config(tokens_cfg(tmp_path / "flat"))


def test_uint32_rows_for_large_vocabularies(tmp_path):
  vocab = 70_000  # above uint16: the T5/C4 case is 32128 (uint16); larger tokenizers use uint32
  train = (vocab - 5000) + (np.arange(5000) * 37) % 5000  # distinct ids, all >= 65000
  write_rows_dir(tmp_path, train, train[:600], vocab=vocab, eos_id=vocab - 1, seq_len=20)
  assert json.loads((tmp_path / "meta.json").read_text())["dtype"] == "uint32"
  cfg = tokens_cfg(tmp_path)
  assert data.vocab_size(cfg) == vocab
  batch = next(data.make_train_iterator(cfg, seq_len=20, global_batch_size=2, seed=0))
  assert batch["inputs"].max() >= 65536
  for row in batch["inputs"]:
    start = int(np.flatnonzero(train == row[0])[0])
    np.testing.assert_array_equal(row, train[start : start + 20])
