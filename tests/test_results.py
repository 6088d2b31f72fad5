"""experiments/results.py: the run-log archives (deterministic, lossless) and the rebuild check;
experiments/laws_lm reading an archive as it reads the folder. Synthetic folders, seconds."""

import json
import math
import os
import subprocess
import sys

import pytest

from experiments import results
from experiments.laws_lm import grid as laws_lm
from experiments.laws_lm import lr as laws_lm_lr
from experiments.laws_lm import runs as ll


def _runs(root, n=3):
  """``n`` run folders with the trainer's four log files, plus a figure beside them."""
  for k in range(n):
    d = root / f"run{k}"
    d.mkdir(parents=True)
    for name in results.LOG_FILES:
      (d / name).write_text(json.dumps({"run": k, "file": name}) + "\n" * (k + 1))
  (root / "run0.png").write_bytes(b"\x89PNG not a log")
  return root


def _tree(root) -> dict[str, bytes]:
  out = {}
  for dirpath, _, files in os.walk(root):
    for f in files:
      path = os.path.join(dirpath, f)
      with open(path, "rb") as fh:
        out[os.path.relpath(path, root)] = fh.read()
  return out


def test_pack_is_deterministic_and_round_trips(tmp_path):
  runs = _runs(tmp_path / "runs")
  results.pack(str(runs), str(tmp_path / "a.tar.xz"))
  for i, path in enumerate(sorted(runs.rglob("*"))):  # other mtimes, other creation order
    os.utime(path, (1e9 + i, 1e9 + i))
  (runs / "run1" / "eval.jsonl").chmod(0o600)
  results.pack(str(runs), str(tmp_path / "b.tar.xz"))
  assert (tmp_path / "a.tar.xz").read_bytes() == (tmp_path / "b.tar.xz").read_bytes()
  names = results.unpack(str(tmp_path / "a.tar.xz"), str(tmp_path / "out"))
  assert names == sorted(names) and len(names) == 3 * len(results.LOG_FILES)
  original = _tree(runs)
  del original["run0.png"]  # a report's figure beside the folders is an output, not a log
  assert _tree(tmp_path / "out") == original
  (runs / "run2" / "train.jsonl").write_text("changed\n")
  results.pack(str(runs), str(tmp_path / "c.tar.xz"))
  assert (tmp_path / "c.tar.xz").read_bytes() != (tmp_path / "a.tar.xz").read_bytes()


def test_pack_refuses_a_folder_without_runs(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="no run folders"):
    results.pack(str(tmp_path / "empty"), str(tmp_path / "x.tar.xz"))
  assert not (tmp_path / "x.tar.xz").exists()


@pytest.fixture
def fake_repo(tmp_path, monkeypatch):
  """A repository whose one study's command (python -m json.tool) rewrites a log as output."""
  _runs(tmp_path / "results" / "fake" / "runs")
  out = "{results}/fake/out.json"
  command = results.Command(("json.tool", "{root}/run1/config.json", out), ("fake/out.json",))
  monkeypatch.setattr(results, "REPO", str(tmp_path))
  monkeypatch.setattr(results, "STUDIES", {"fake": results.Study("fake/runs", (command,))})
  assert results.main(["pack"]) == 0
  return tmp_path / "results"


def test_rebuild_then_check_passes_and_a_changed_output_is_reported(fake_repo):
  assert results.main(["rebuild"]) == 0
  out = fake_repo / "fake" / "out.json"
  assert json.loads(out.read_text()) == {"run": 1, "file": "config.json"}
  assert results.check(results.STUDIES, False, False) == []
  out.write_text(out.read_text() + " ")
  assert results.check(results.STUDIES, False, False) == ["differs: results/fake/out.json"]
  assert results.main(["check"]) == 1
  out.unlink()
  assert results.check(results.STUDIES, False, False) == [
    "new (not committed): results/fake/out.json"
  ]
  assert not out.exists()  # check writes into a copy only


def test_bad_arguments_are_refused_before_anything_runs(fake_repo, capsys):
  with pytest.raises(ValueError, match="invalid choice"):
    results.main(["unpack"])
  with pytest.raises(ValueError, match="not a study; allowed: fake"):
    results.main(["rebuild", "--only", "laws_lm"])
  with pytest.raises(SystemExit) as e:
    results.main(["--help"])
  assert e.value.code == 0 and "rebuild" in capsys.readouterr().out
  assert not (fake_repo / "fake" / "out.json").exists()


def test_the_committed_studies_name_existing_commands():
  assert set(results.STUDIES) == {"laws_lm", "fig2", "theory", "mup"}
  for study in results.STUDIES.values():
    # A study reads its packed logs, or (runs="") committed tables it names as inputs.
    assert study.archive.endswith(".tar.xz") if study.runs else study.archive == ""
    for command in study.commands:
      assert command.outputs
      assert "{root}" in " ".join(command.args) if study.runs else command.inputs
      assert not set(command.inputs) & set(command.outputs)


# ------------------------------------------------------------------------------------------
# laws_lm on an archive root.


def _cosine_logs(root):
  """A final eval record per cosine run of the grid: loss quadratic in ln LR around 5e-3."""
  runs = laws_lm.grid()
  for r in runs:
    if r.method == "cosine":
      loss = 3.0 + 1e3 / r.train_flops**0.3 + 0.08 * math.log(r.lr / 5e-3) ** 2
      header = {"kind": "header", "total_steps": r.total_steps, "steps_per_chinchilla": 240}
      record = {"kind": "eval", "step": r.total_steps, "tokens": 1, "loss": {"raw": loss}}
      os.makedirs(root / r.name)
      (root / r.name / "eval.jsonl").write_text(f"{json.dumps(header)}\n{json.dumps(record)}\n")
  return runs


def test_laws_lm_reads_an_archive_as_the_folder(tmp_path, monkeypatch):
  monkeypatch.setattr(ll, "_OPENED", {})
  folder = tmp_path / "runs"
  runs = _cosine_logs(folder)
  results.pack(str(folder), str(tmp_path / "runs.tar.xz"))
  optima = {}
  for key, root in (("folder", str(folder)), ("archive", str(tmp_path / "runs.tar.xz"))):
    optima[key] = laws_lm_lr.lr_optima(ll.open_root("--root", root), runs)
  assert len(optima["folder"]) == 8 and optima["archive"] == optima["folder"]
  # Once packed and removed, the folder's name (the docs' commands) opens the archive, read only.
  extracted = ll.open_root("--root", str(tmp_path / "runs.tar.xz"))
  os.rename(folder, tmp_path / "gone")
  assert ll.open_root("--root", str(folder)) == extracted  # extracted once per process
  with pytest.raises(ValueError, match="read only: add --no_train"):
    ll.open_root("--root", str(folder), trains=True)
  with pytest.raises(ValueError, match="does not exist"):
    ll.open_root("--root", str(tmp_path / "nowhere"))


def test_grid_flags_open_an_archive_only_without_training(tmp_path, monkeypatch):
  monkeypatch.setattr(ll, "_OPENED", {})
  _cosine_logs(tmp_path / "runs")
  results.pack(str(tmp_path / "runs"), str(tmp_path / "runs.tar.xz"))
  p = ll.parser("doc")
  ll.add_run_args(p, jobs=1)
  args = p.parse_args(["--root", str(tmp_path / "runs.tar.xz"), "--no_train"])
  ll.check_run_args(args)
  assert os.path.isdir(args.root) and sorted(os.listdir(args.root)) == sorted(
    os.listdir(tmp_path / "runs")
  )
  with pytest.raises(ValueError, match="read only"):
    ll.check_run_args(p.parse_args(["--root", str(tmp_path / "runs.tar.xz")]))


SUBCOMMANDS = ("grid", "long", "replicate", "area", "clock", "repeat", "gain", "cap", "w64")


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_laws_lm_subcommands_help_and_refusals(name, tmp_path, capsys):
  module = __import__(f"experiments.laws_lm.{name}", fromlist=["main"])
  with pytest.raises(SystemExit) as e:
    module.main(["--help"])
  assert e.value.code == 0 and "--root" in capsys.readouterr().out
  with pytest.raises(ValueError, match="unrecognized arguments: --bogus"):
    module.main(["--bogus", "--out", str(tmp_path / "out")])
  bad_root = ["--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]
  with pytest.raises(ValueError, match="does not exist"):
    module.main(bad_root + ([] if name == "area" else ["--no_train"]))
  assert not (tmp_path / "out").exists()  # refused before any write


def test_a_refusal_is_one_line():
  done = subprocess.run(
    [sys.executable, "-m", "experiments.laws_lm", "grid", "--no_train", "--bogus"],
    capture_output=True,
    text=True,
    cwd=results.REPO,
  )
  assert done.returncode == 2 and done.stdout == ""
  assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: unrecognized")


def test_sweep_records_are_packed_with_the_runs_and_figures_are_not(tmp_path):
  runs = tmp_path / "runs"
  (runs / "cosine_h1_s0").mkdir(parents=True)
  (runs / "cosine_h1_s0" / "eval.jsonl").write_text("{}\n")
  (runs / "bracket.json").write_text('{"points": []}')
  (runs / "headline.json").write_text("{}")
  (runs / "cosine_h1_s0.png").write_bytes(b"png")  # a report's per-run figure: an output
  assert results.run_files(str(runs)) == [
    "bracket.json",
    "cosine_h1_s0/eval.jsonl",
    "headline.json",
  ]
