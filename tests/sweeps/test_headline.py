"""Headline seeds: the selection recorded once in headline.json, its runs, and --headline."""

import functools
import json
import os
import sys

import pytest

from anytime.sweeps import common as sc
from anytime.sweeps import headline, launch
from tests.sweeps import fig2_synthetic as fs

FAKE = "tests.sweeps.fake_trainer"


@pytest.fixture(scope="module")
def grid_root(tmp_path_factory):
  """A finished grid (no headline.json yet); tests copy nothing, they symlink its runs."""
  s = fs.make_sweep()
  root = str(tmp_path_factory.mktemp("grid"))
  return s, root, fs.write_grid(s, root)


def _link(grid, src, dst, skip=()):
  for r in grid:
    if r.name not in skip:
      os.symlink(sc.workdir(src, r), sc.workdir(dst, r))


def test_selection_is_recorded_once_and_reused(grid_root, tmp_path):
  s, src, grid = grid_root
  root = str(tmp_path)
  _link(grid, src, root)
  runs = headline.runs(s, root)
  assert sorted(r.name for r in runs) == fs.HEADLINE_RUNS
  assert headline.drift(s, grid, root) == ""  # recorded = the grid's selection: no note
  saved = json.loads((tmp_path / headline.FILE).read_text())
  assert saved["sweep"] == "f2"
  assert [
    (c["method"], c["horizon"], c["lr"], c["offset"], c["key"]) for c in saved["configs"]
  ] == [
    ("cosine", 1.0, 0.003, None, "raw"),
    ("cosine", 2.0, 0.003, None, "raw"),
    ("cosine", 4.0, 0.003, None, "raw"),
    ("constant", 4.0, 0.001, None, "pema25"),
    ("inverse_sqrt", 4.0, 0.003, 40.0, "pema25"),
  ]
  # A headline run is its seed-0 grid run with only the seed changed.
  by = {r.name: r for r in grid}
  for run in runs:
    base = by[run.name.rsplit("_s", 1)[0] + "_s0"]
    assert run.overrides == base.overrides and run.seed in (1, 2)
    assert run.lm_arg == base.lm_arg.replace(",seed=0", f",seed={run.seed}")
    assert (run.total_steps, run.offset) == (base.total_steps, base.offset)
  # More grid runs finishing (here: a constant run rewritten to win) changes nothing recorded.
  before = (tmp_path / headline.FILE).read_bytes()
  better = next(r for r in grid if r.name == "constant_h4_lr0.003_b0.95_s0")
  os.unlink(sc.workdir(root, better))
  fs.synthetic.write_log(sc.workdir(root, better), better, lambda r, h, k: 1.0)
  assert headline.select(s, grid, root)[3].lr == 0.003  # the rule would now pick 0.003 ...
  assert sorted(r.name for r in headline.runs(s, root)) == fs.HEADLINE_RUNS  # ... not recorded
  assert sorted(r.name for r in headline.load(s, root)) == fs.HEADLINE_RUNS
  assert (tmp_path / headline.FILE).read_bytes() == before
  # ... and the report says the recorded selection is no longer the grid's.
  note = headline.drift(s, grid, root)
  assert "constant: recorded lr 0.001 pema25, the grid now selects lr 0.003" in note
  assert "cosine" not in note.split("):", 1)[1]  # the cosine picks did not move


@pytest.mark.parametrize(
  "content, message",
  [
    ("{not json", r"headline.json cannot be read as JSON"),
    ('{"sweep": "other", "configs": []}', r"headline.json is invalid: written for sweep 'other'"),
    ('{"sweep": "f2", "configs": [{"method": "wsd"}]}', r"headline.json is invalid: config"),
    ('{"sweep": "f2"}', r"headline.json is invalid: expected an object with a 'configs' list"),
  ],
)
def test_a_corrupt_headline_json_is_one_clear_error(content, message, tmp_path):
  (tmp_path / headline.FILE).write_text(content)
  with pytest.raises(ValueError, match=message) as e:
    headline.load(fs.make_sweep(), str(tmp_path))
  assert str(tmp_path / headline.FILE) in str(e.value) and "\n" not in str(e.value)


def test_no_headline_json_means_no_headline_runs_and_bad_seeds_are_named(tmp_path):
  s = fs.make_sweep()
  assert headline.load(s, str(tmp_path)) == [] and not os.listdir(tmp_path)
  s.headline.seeds = (0, 1)
  with pytest.raises(ValueError, match=r"sweep.headline.seeds=\(0, 1\) is invalid"):
    headline.seeds(s)


def _main(argv, monkeypatch, sweep):
  monkeypatch.setattr(sc, "load_sweep", lambda spec: sweep)
  return launch.main(["--sweep=x", *argv])


def test_headline_refuses_while_grid_runs_are_unfinished(grid_root, tmp_path, monkeypatch):
  _, src, grid = grid_root
  root = tmp_path / "root"
  root.mkdir()
  _link(grid, src, str(root), skip={"inverse_sqrt_o10_h4_lr0.003_b0.95_s0"})
  with pytest.raises(ValueError, match=r"--headline: 1 grid run\(s\) of cosine, constant, "
                     r"inverse_sqrt are not finished \(e.g. inverse_sqrt_o10_h4"):  # fmt: skip
    _main([f"--root={root}", "--headline", "--jobs=2"], monkeypatch, fs.make_sweep())
  assert not (root / headline.FILE).exists()
  with pytest.raises(ValueError, match="--headline does not combine with --status"):
    _main([f"--root={root}", "--headline", "--status"], monkeypatch, fs.make_sweep())


def test_headline_prints_then_runs_the_seed_runs_with_the_fake_trainer(
  grid_root, tmp_path, monkeypatch, capsys
):
  s, src, grid = grid_root
  root = str(tmp_path)
  _link(grid, src, root)
  capsys.readouterr()
  assert "cosine_h1_lr0.003_b0.95_s1" not in _dry(root, monkeypatch, capsys)  # not recorded yet
  assert _main([f"--root={root}", "--headline"], monkeypatch, fs.make_sweep()) == 0
  out = capsys.readouterr().out
  assert "inverse_sqrt       4x    0.003  0.95      40 pema25" in out
  assert "# 10 headline run(s) (--headline --jobs=N runs them):" in out
  assert f"--workdir={os.path.join(root, 'constant_h4_lr0.001_b0.95_s2')}" in out
  assert os.path.exists(os.path.join(root, headline.FILE))  # recorded when first selected
  # Every other mode now includes the headline runs.
  assert "cosine_h1_lr0.003_b0.95_s1" in _dry(root, monkeypatch, capsys)
  env = {**os.environ, "FAKE_CRASH": ""}
  fake = functools.partial(launch.run_local, module=FAKE, env=env, poll=0.02)
  monkeypatch.setattr(launch, "run_local", fake)
  code = _main([f"--root={root}", "--headline", "--jobs=2", "--pin=off"], monkeypatch, s)
  assert code == 0
  assert "done: 10, skipped: 0, failed: 0, unsupported: 0" in capsys.readouterr().out
  extra = headline.load(fs.make_sweep(), root)
  assert all(sc.run_state(root, r) == "done" for r in extra) and len(extra) == 10
  assert _main([f"--root={root}", "--status"], monkeypatch, s) == 0
  total = len(grid) + 10
  assert f"progress: {total} done, 0 running, 0 left" in capsys.readouterr().out
  with open(os.path.join(root, "constant_h4_lr0.001_b0.95_s1", "run.json")) as f:
    assert json.load(f)["seed"] == 1


def _dry(root, monkeypatch, capsys) -> str:
  _main([f"--root={root}", "--dry"], monkeypatch, fs.make_sweep())
  return capsys.readouterr().out


def test_entry_point_help_mentions_headline():
  import subprocess

  p = subprocess.run([sys.executable, "-m", "anytime.sweeps", "--help"], capture_output=True,
                     text=True)  # fmt: skip
  assert p.returncode == 0 and "--headline" in p.stdout
