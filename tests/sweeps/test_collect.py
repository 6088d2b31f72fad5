"""--collect: the finished runs' logs, machine-independent, and nothing of an unfinished run."""

import json
import os
import sys

import pytest

from anytime.sweeps import collect, launch
from anytime.sweeps import common as sc

FAKE = "tests.sweeps.fake_trainer"
CRASHED = "constant_h2_lr0.003_b0.95_s0"


def _read(*parts) -> str:
  with open(os.path.join(*parts)) as f:
    return f.read()


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
  """(runs, root, corpus): the smoke sweep run by the fake trainer with a machine path in
  its overrides; the constant run (and so its WSD branch at 2x) killed after 1x."""
  base = tmp_path_factory.mktemp("collect")
  root, corpus = str(base / "root"), str(base / "corpus" / "rows")
  sweep = sc.load_sweep("smoke")
  sweep.lm_overrides = (*tuple(sweep.lm_overrides), f"data.path={corpus}")
  runs = sc.expand(sweep)
  env = {**os.environ, "FAKE_CRASH": f"{CRASHED}:20"}
  launch.run_local(
    runs, root, jobs=2, python=sys.executable, module=FAKE, env=env, poll=0.02, log=lambda s: s
  )
  return runs, root, corpus


def test_copies_only_finished_runs_without_machine_paths(swept, tmp_path):
  runs, root, corpus = swept
  dest = str(tmp_path / "logs")
  done = [r for r in runs if sc.run_state(root, r) == "done"]
  assert CRASHED not in {r.name for r in done} and len(done) < len(runs)
  counts = collect.collect(runs, root, dest, sets=[f"data.path={corpus}"])
  assert counts == {"runs": len(done), "unfinished": len(runs) - len(done), "records": 0}
  assert sorted(os.listdir(dest)) == sorted(r.name for r in done)
  for r in done:
    names = sorted(os.listdir(os.path.join(dest, r.name)))
    assert names == ["eval.jsonl", "run.json"]  # the fake trainer writes no config / train log
    for name in names:
      text = _read(dest, r.name, name)
      assert root not in text and corpus not in text
    card = json.loads(_read(dest, r.name, "run.json"))
    assert ["data.path", "<data.path>"] in card["overrides"]
    # The eval log is copied as it was: the launcher sees the run finished from the copy.
    assert _read(dest, r.name, "eval.jsonl") == _read(root, r.name, "eval.jsonl")
    assert sc.run_state(dest, r) == "done"


def test_sweep_records_are_copied(swept, tmp_path):
  runs, root, _ = swept
  record = os.path.join(root, "bracket.json")
  with open(record, "w") as f:
    json.dump({"sweep": "smoke", "points": []}, f)
  try:
    dest = str(tmp_path / "logs")
    assert collect.collect(runs, root, dest)["records"] == 1
    assert _read(dest, "bracket.json") == _read(record)
  finally:
    os.remove(record)


def test_replacements_longest_path_first_and_only_absolute_values():
  rules = collect.replacements("/r/root", ["data.path=/d", "data.val_path=/d/val", "lr=0.1"])
  assert rules == [("/d/val", "<data.val_path>"), ("/d", "<data.path>"), ("/r/root/", "")]


def test_collect_into_the_root_itself_is_refused(swept):
  runs, root, _ = swept
  with pytest.raises(ValueError, match="is the sweep root itself"):
    collect.collect(runs, root, root + "/")


def test_command_line(swept, tmp_path, capsys):
  runs, root, corpus = swept
  dest = str(tmp_path / "logs")
  argv = ["--sweep=smoke", f"--root={root}", f"--collect={dest}", f"--set=data.path={corpus}"]
  assert launch.main(argv) == 0
  n = sum(sc.run_state(root, r) == "done" for r in runs)
  assert capsys.readouterr().out.startswith(f"{n} finished runs and 0 sweep records -> {dest};")
  with pytest.raises(ValueError, match="--bracket does not combine with --collect"):
    launch.main([*argv, "--bracket"])
