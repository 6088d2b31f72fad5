"""experiments/laws_lm/data.py: the other train splits keep the stdlib corpus's validation files
and tokenizer byte for byte and change only the train rows (a prefix of the stored rows, or the
same rows followed by the extra files' rows, packed by the prepare pipeline's own step); run names
and parents are retargeted."""

import os

import numpy as np
import pytest

from anytime.lm import beam_prepare, data, row_files, shards
from anytime.lm import tokenizer as tokenizer_lib
from experiments.laws_lm import data as lld
from experiments.laws_lm import long as laws_lm_long

LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz_"))


def _text(rng, n):
  words = ("".join(rng.choice(LETTERS, size=int(rng.integers(1, 9)))) for _ in range(n))
  return " ".join(words) + "\n"


@pytest.fixture
def base(tmp_path, monkeypatch):
  """A small row dataset standing in for the stdlib one (two shards), and two extra files."""
  rng = np.random.default_rng(0)
  src = tmp_path / "src"
  src.mkdir()
  paths = []
  for k in range(60):
    (src / f"d{k:02d}.py").write_text(_text(rng, int(rng.integers(20, 200))))
    paths.append(str(src / f"d{k:02d}.py"))
  base_dir = str(tmp_path / "cache" / "stdlib-abc")
  input_shards = [shards.Shard(k, "text", tuple(paths[30 * k : 30 * k + 30]), 0) for k in (0, 1)]
  beam_prepare.prepare_shards(
    input_shards, base_dir, vocab_size=300, val_fraction=0.1, seq_len=32,
    runner=beam_prepare.IN_PROCESS,
  )  # fmt: skip
  extra = tmp_path / "extra"
  extra.mkdir()
  texts = [_text(rng, 50), _text(rng, 80)]
  for k, t in enumerate(texts):
    (extra / f"e{k}.py").write_text(t)
  monkeypatch.setattr(lld, "_stdlib_dir", lambda cache: base_dir)
  monkeypatch.setattr(lld, "extra_files", lambda: [str(extra / f"e{k}.py") for k in range(2)])
  return base_dir, str(tmp_path / "cache"), texts


def _rows(path):
  meta, splits = row_files.open_dataset(path)
  return meta, {s: splits[s].read(np.arange(splits[s].rows)) for s in ("train", "val")}


def _same_bytes(a, b, name):
  with open(os.path.join(a, name), "rb") as f, open(os.path.join(b, name), "rb") as g:
    return f.read() == g.read()


def _same_val_and_tokenizer(path, base_dir, meta, meta0):
  assert meta["splits"]["val"] == meta0["splits"]["val"]
  for name in [e["file"] for e in meta0["splits"]["val"]["files"]] + [meta0["tokenizer"]]:
    assert _same_bytes(path, base_dir, name), name


def test_quarter_is_the_first_quarter_of_the_stored_rows(base):
  base_dir, cache, _ = base
  path = lld.prepare_kind("quarter", cache)
  assert path == os.path.join(cache, "laws-quarter-abc")
  meta0, rows0 = _rows(base_dir)
  meta, rows = _rows(path)
  assert len(meta0["splits"]["train"]["files"]) == 2 and len(rows["train"]) > 8
  assert len(rows["train"]) == meta["splits"]["train"]["rows"] == len(rows0["train"]) // 4
  np.testing.assert_array_equal(rows["train"], rows0["train"][: len(rows["train"])])
  _same_val_and_tokenizer(path, base_dir, meta, meta0)
  assert meta["splits"]["train"]["documents"] < meta0["splits"]["train"]["documents"]
  mtime = os.path.getmtime(os.path.join(path, row_files.META_FILE))
  assert lld.prepare_kind("quarter", cache) == path  # reused, not rewritten
  assert os.path.getmtime(os.path.join(path, row_files.META_FILE)) == mtime
  assert lld.train_tokens(path) == len(rows["train"]) * 32 + 1  # one file's packed stream
  # The trainer reads it.
  cfg = data.default_data_config()
  cfg.source, cfg.path = "tokens", path
  assert next(data.make_train_iterator(cfg, seq_len=16, global_batch_size=4, seed=0))[
    "inputs"
  ].shape == (4, 16)


def test_fresh_appends_the_extra_files_rows_encoded_with_the_same_tokenizer(base):
  base_dir, cache, texts = base
  path = lld.prepare_kind("fresh", cache)
  meta0, rows0 = _rows(base_dir)
  meta, rows = _rows(path)
  n0 = len(rows0["train"])
  np.testing.assert_array_equal(rows["train"][:n0], rows0["train"])
  _same_val_and_tokenizer(path, base_dir, meta, meta0)
  added = meta["splits"]["train"]["files"][-1]
  assert added["file"] == "train-00002.array_record" and added["documents"] == len(texts)
  tok = tokenizer_lib.Tokenizer.from_file(os.path.join(base_dir, meta0["tokenizer"]))
  tail = rows["train"][n0:]
  stream = np.concatenate([tail[0], *(r[1:] for r in tail[1:])])  # rows overlap by one token
  ends = np.flatnonzero(stream == meta0["eos_id"])
  pieces = np.split(stream, ends + 1)
  assert tok.decode(pieces[0][:-1].tolist()) == texts[0]
  assert texts[1].startswith(tok.decode(pieces[1][:-1] if len(ends) > 1 else pieces[1]))
  assert meta["source"]["laws_lm_data"]["extra_files"] == 2
  assert lld.train_tokens(path) == meta0["splits"]["train"]["tokens"] + added["tokens"]


def test_extra_files_skip_test_suites_vendored_code_and_large_files(tmp_path, monkeypatch):
  lib, site = tmp_path / "lib", tmp_path / "site"
  for rel in ("test/test_a.py", "test/data/x.py", "test/tests/no.py", "test/notes.txt"):
    (lib / rel).parent.mkdir(parents=True, exist_ok=True)
    (lib / rel).write_text("x = 1\n")
  for rel in ("pkg/a.py", "pkg/tests/no.py", "pkg/_vendor/no.py", "pkg/big.py"):
    (site / rel).parent.mkdir(parents=True, exist_ok=True)
    (site / rel).write_text("x = 1\n")
  (site / "pkg/big.py").write_text("x" * (lld._MAX_FILE_BYTES + 1))
  monkeypatch.setattr(lld.corpus, "stdlib_dir", lambda: str(lib))
  monkeypatch.setattr(lld.sysconfig, "get_paths", lambda: {"purelib": str(site)})
  got = [os.path.relpath(p, tmp_path) for p in lld.extra_files()]
  assert got == ["lib/test/test_a.py", "lib/test/data/x.py", "site/pkg/a.py"]  # walk order


def test_bad_kind_is_refused_before_any_write(tmp_path):
  with pytest.raises(ValueError, match=r"kind='half'.*allowed"):
    lld.prepare_kind("half", str(tmp_path))
  with pytest.raises(ValueError, match="kind='half'"):
    lld.retarget([], "half")
  assert os.listdir(tmp_path) == []


def test_retarget_renames_runs_parents_and_branch_sources():
  runs = laws_lm_long.runs(("constant", "wsd10_linear"), (0,))
  moved = lld.retarget(runs, "fresh", "/data/fresh")
  parent, branch = moved
  assert parent.name == "fresh_" + runs[0].name and parent.parent is None
  assert branch.parent == parent.name
  cmd = branch.command("/root")
  assert f"--config.init_from=/root/{parent.name}" in cmd
  assert cmd[-2:] == ["--config.data.source=tokens", "--config.data.path=/data/fresh"]
  # everything else about the runs is unchanged
  for a, b in zip(runs, moved, strict=True):
    assert (a.total_steps, a.start_step, a.lm_arg) == (b.total_steps, b.start_step, b.lm_arg)
  assert [r.name for r in laws_lm_long.runs(("constant",), (0,), "fresh")] == [parent.name]
