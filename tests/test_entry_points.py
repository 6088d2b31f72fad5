"""Every command answers --help at once, and refuses a bad flag in one line before any work.

The subcommands are read from the SUBCOMMANDS dicts of experiments/*/__main__.py, so a new one
is covered without touching this file. Everything runs in-process in an empty working
directory, which must still be empty afterwards (nothing computed, nothing written).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path

import jax
import numpy as np
import pytest

import experiments
from anytime import cli

GROUPS = sorted(
  m.name
  for m in pkgutil.iter_modules(experiments.__path__)
  if m.ispkg and importlib.util.find_spec(f"experiments.{m.name}.__main__") is not None
)
OWNED = [g for g in GROUPS if g != "laws_lm"]  # laws_lm's bad flags are tested with laws_lm
SUBCOMMANDS = {g: importlib.import_module(f"experiments.{g}.__main__").SUBCOMMANDS for g in GROUPS}
SINGLE = {  # entry points that are one module's main(argv): every experiments/*.py with a main
  **{
    f"experiments.{m.name}": f"experiments.{m.name}"
    for m in pkgutil.iter_modules(experiments.__path__)
    if not m.ispkg
    and 'if __name__ == "__main__":' in Path(experiments.__path__[0], f"{m.name}.py").read_text()
  },
  "anytime.sweeps": "anytime.sweeps.launch",
  "anytime.sweeps.report": "anytime.sweeps.report",
}
ALL = [(g, s) for g in GROUPS for s in SUBCOMMANDS[g]]


# Every XLA compilation of this process (jax.monitoring has no way to unregister a listener).
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_COMPILES: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
  lambda event, *_, **__: _COMPILES.append(event) if event == BACKEND_COMPILE_EVENT else None
)


def _call(command: str, argv: list[str]) -> int:
  """Runs ``python -m command argv`` in-process; its exit code."""
  with pytest.raises(SystemExit) as exit_:
    if command in SINGLE:
      main = importlib.import_module(SINGLE[command]).main
      cli.run(lambda: main(argv))
    else:
      group = command.removeprefix("experiments.")
      cli.dispatch(command, "doc", SUBCOMMANDS[group], argv=argv)
  return exit_.value.code


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  return tmp_path


def test_every_group_is_found():
  assert {"bench", "linreg", "laws", "laws_lm", "mup"} <= set(GROUPS)
  assert len(ALL) >= 25


def test_the_compile_counter_sees_a_compilation():
  before = len(_COMPILES)
  jax.jit(lambda x: x * 3 + 1)(np.arange(5, dtype=np.float32)).block_until_ready()
  assert len(_COMPILES) > before


@pytest.mark.parametrize(
  "command, argv",
  [(f"experiments.{g}", [s, "--help"]) for g, s in ALL]
  + [(f"experiments.{g}", ["--help"]) for g in GROUPS]
  + [(c, ["--help"]) for c in SINGLE],
  ids=lambda x: x if isinstance(x, str) else " ".join(x),
)
def test_help_exits_0_prints_usage_and_writes_nothing(command, argv, empty_cwd, capsys):
  compiles_before = len(_COMPILES)
  assert _call(command, argv) == 0
  assert len(_COMPILES) == compiles_before  # an import, not a job: XLA compiled nothing
  out = capsys.readouterr().out
  assert out.lstrip().startswith("usage:"), out[:200]
  assert os.listdir(empty_cwd) == []


@pytest.mark.parametrize("group", GROUPS)
def test_unknown_subcommand_is_one_line(group, empty_cwd, capsys):
  assert _call(f"experiments.{group}", ["no_such_subcommand"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "no_such_subcommand" in err[0] and "allowed:" in err[0]


def _a_file(tmp_path) -> str:
  path = tmp_path.parent / f"{tmp_path.name}-a-file"
  path.write_text("not a directory")
  return str(path)


# (command, argv, the flag the error names). FILE: an existing file (as an output directory).
BAD = [
  ("experiments.bench", ["recursion", "--settings", "99"], "--settings"),
  ("experiments.bench", ["recursion", "--bench_dir", "FILE"], "--bench_dir"),
  ("experiments.bench", ["trainer", "--batch", "15m=x"], "--batch"),
  ("experiments.bench", ["trainer", "--presets", "huge"], "--presets"),
  ("experiments.bench", ["trainer", "--variants", "("], "--variants"),
  ("experiments.bench", ["trainer", "--cpu_devices", "0"], "--cpu_devices"),
  ("experiments.bench", ["accelerator", "--meshes", "1,1"], "--meshes"),
  ("experiments.bench", ["accelerator", "--mfu", "1.5"], "--mfu"),
  ("experiments.bench", ["averaging", "--reps", "0"], "--reps"),
  ("experiments.bench", ["data", "--extra_text_dirs", "missing_dir"], "--extra_text_dirs"),
  ("experiments.bench", ["diagnose", "--reps", "0"], "--reps"),
  ("experiments.bench", ["sweep_jobs", "--steps", "10"], "--steps"),
  ("experiments.bench", ["sweep_jobs", "--data_path", "missing_dir"], "--data_path"),
  ("experiments.bench", ["prepare", "--mb", "0"], "--mb"),
  ("experiments.bench", ["prepare", "--workers", "10,x"], "--workers"),
  ("experiments.bench", ["prepare", "--read", "missing_dir"], "--read"),
  ("experiments.linreg", ["demo", "--out", "FILE"], "--out"),
  ("experiments.linreg", ["fig3", "--out", "FILE"], "--out"),
  ("experiments.linreg", ["fig3", "--steps", "0"], "--steps"),
  ("experiments.linreg", ["horizons", "--t0", "0"], "--t0"),
  ("experiments.linreg", ["horizons", "--out", "FILE"], "--out"),
  ("experiments.linreg", ["mc", "--out", "FILE"], "--out"),
  ("experiments.linreg", ["slopes", "--steps", "5"], "--steps"),
  ("experiments.laws", ["fit", "--runs", "missing.jsonl"], "--runs"),
  ("experiments.laws", ["fit"], "--runs"),
  ("experiments.laws", ["fit", "--demo", "--out", "FILE"], "--out"),
  ("experiments.laws", ["fit", "--demo", "--min_step", "-1"], "--min_step"),
  ("experiments.laws", ["lr", "--demo", "--predict", "1e9"], "--predict"),
  ("experiments.laws", ["lr", "--sweeps", "missing.csv"], "--sweeps"),
  ("experiments.laws", ["theory", "--fit", "constant,nope"], "--fit"),
  ("experiments.laws", ["theory", "--out", "FILE"], "--out"),
  ("experiments.laws", ["continued", "--proxies", "missing.csv"], "--proxies"),
  ("experiments.laws", ["continued", "--demo", "--extra_compute", "-1"], "--extra_compute"),
  ("experiments.mup", ["coord_check", "--widths", "64", "66"], "--widths"),
  ("experiments.mup", ["coord_check", "--out", "FILE"], "--out"),
  ("experiments.mup", ["growth", "--parameterizations", "ntk"], "--parameterizations"),
  ("experiments.mup", ["growth", "--lr", "0"], "--lr"),
  ("experiments.mup", ["lr_transfer", "--max_points", "3"], "--max_points"),
  ("experiments.mup", ["module_lr", "--lr", "1e-3", "--groups", "nope"], "--groups"),
  ("experiments.mup", ["module_lr", "--lr", "-1"], "--lr"),
  ("experiments.demo", ["--out", "FILE"], "--out"),
  ("experiments.demo", ["--jobs", "0"], "--jobs"),
  ("experiments.soak", ["--steps", "2"], "--steps"),
  ("experiments.soak", ["--workdir", "FILE"], "--workdir"),
  ("experiments.faults", ["--only", "no such case"], "--only"),
  ("experiments.faults", ["--workdir", "FILE"], "--workdir"),
  ("anytime.sweeps", ["--sweep", "mini", "--dry", "--jobs", "0"], "--jobs"),
  ("anytime.sweeps", ["--sweep", "mini", "--dry", "--only", "("], "--only"),
  ("anytime.sweeps.report", ["--sweep", "mini", "--root", "missing_dir"], "--root"),
  ("anytime.sweeps.report", ["--sweep", "mini", "--root", ".", "--out", "FILE"], "--out"),
]


@pytest.mark.parametrize(
  "command, argv, flag", BAD, ids=lambda x: x if isinstance(x, str) else None
)
def test_bad_argument_is_refused_in_one_line_before_any_work(
  command, argv, flag, empty_cwd, tmp_path, capsys
):
  a_file = _a_file(tmp_path)
  argv = [a_file if a == "FILE" else a for a in argv]
  before = os.path.getmtime(a_file)
  assert _call(command, argv) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: "), err
  assert flag in err[0], err[0]
  assert os.listdir(empty_cwd) == []
  assert os.path.getmtime(a_file) == before


def test_every_owned_subcommand_has_a_bad_argument_case():
  covered = {(c, a[0]) for c, a, _ in BAD if c.startswith("experiments.") and c in _GROUPED}
  missing = [
    (g, s) for g in OWNED for s in SUBCOMMANDS[g] if (f"experiments.{g}", s) not in covered
  ]
  assert missing == []


_GROUPED = {f"experiments.{g}" for g in GROUPS}
