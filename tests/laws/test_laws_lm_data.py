"""experiments/laws_lm/data.py: the other train splits keep the stdlib corpus's validation split
and tokenizer byte for byte and change only the train tokens (a prefix cut after an EOS, or the
same tokens followed by the extra files' encodings); run names and parents are retargeted."""

import json
import os

import numpy as np
import pytest

from anytime.lm import prepare
from anytime.lm import tokenizer as tokenizer_lib
from experiments.laws_lm import data as lld
from experiments.laws_lm import long as laws_lm_long

LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz_"))


def _text(rng, n):
  words = ("".join(rng.choice(LETTERS, size=int(rng.integers(1, 9)))) for _ in range(n))
  return " ".join(words) + "\n"


@pytest.fixture
def base(tmp_path, monkeypatch):
  """A small prepared corpus standing in for the stdlib one, and two extra source files."""
  rng = np.random.default_rng(0)
  docs = [(f"d{k}.py", _text(rng, int(rng.integers(20, 200)))) for k in range(60)]
  base_dir = str(tmp_path / "cache" / "stdlib-abc")
  prepare.prepare_documents(docs, base_dir, vocab_size=300, val_fraction=0.1)
  extra = tmp_path / "extra"
  extra.mkdir()
  texts = [_text(rng, 50), _text(rng, 80)]
  for k, t in enumerate(texts):
    (extra / f"e{k}.py").write_text(t)
  monkeypatch.setattr(lld, "_stdlib_dir", lambda cache: base_dir)
  monkeypatch.setattr(lld, "extra_files", lambda: [str(extra / f"e{k}.py") for k in range(2)])
  return base_dir, str(tmp_path / "cache"), texts


def _read(path):
  with open(os.path.join(path, prepare.META_FILE)) as f:
    meta = json.load(f)
  split = {s: np.fromfile(os.path.join(path, meta["splits"][s]["file"]), dtype=meta["dtype"])
           for s in ("train", "val")}  # fmt: skip
  return meta, split


def _same_bytes(a, b, name):
  with open(os.path.join(a, name), "rb") as f, open(os.path.join(b, name), "rb") as g:
    return f.read() == g.read()


def test_quarter_is_a_prefix_cut_after_an_eos(base):
  base_dir, cache, _ = base
  path = lld.prepare_kind("quarter", cache)
  assert path == os.path.join(cache, "laws-quarter-abc")
  meta0, split0 = _read(base_dir)
  meta, split = _read(path)
  train0, train = split0["train"], split["train"]
  eos = meta0["eos_id"]
  assert train.size == meta["splits"]["train"]["tokens"] <= train0.size // 4
  np.testing.assert_array_equal(train, train0[: train.size])
  assert train[-1] == eos
  # the cut is at the last EOS within the first quarter
  assert not np.any(train0[train.size : train0.size // 4] == eos)
  np.testing.assert_array_equal(split["val"], split0["val"])
  assert _same_bytes(path, base_dir, meta["tokenizer"])
  assert meta["splits"]["val"] == meta0["splits"]["val"]
  mtime = os.path.getmtime(os.path.join(path, prepare.META_FILE))
  assert lld.prepare_kind("quarter", cache) == path  # reused, not rewritten
  assert os.path.getmtime(os.path.join(path, prepare.META_FILE)) == mtime
  assert lld.train_tokens(path) == train.size


def test_fresh_appends_the_extra_files_encoded_with_the_same_tokenizer(base):
  base_dir, cache, texts = base
  path = lld.prepare_kind("fresh", cache)
  meta0, split0 = _read(base_dir)
  meta, split = _read(path)
  train0, train = split0["train"], split["train"]
  np.testing.assert_array_equal(train[: train0.size], train0)
  np.testing.assert_array_equal(split["val"], split0["val"])
  tok = tokenizer_lib.Tokenizer.from_file(os.path.join(base_dir, meta0["tokenizer"]))
  tail = train[train0.size :]
  ends = np.flatnonzero(tail == meta0["eos_id"])
  assert ends.size == len(texts) and ends[-1] == tail.size - 1
  pieces = np.split(tail, ends[:-1] + 1)
  for piece, text in zip(pieces, texts, strict=True):
    assert tok.decode(piece[:-1].tolist()) == text
  assert meta["source"]["laws_lm_data"]["extra_files"] == 2


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
