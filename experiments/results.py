"""``python -m experiments.results {list,pack,rebuild,check}``: every committed result, rebuilt.

    .venv/bin/python -m experiments.results list                  # studies, archives, commands
    .venv/bin/python -m experiments.results check [--only STUDY]  # rebuild into a temp copy, diff
    .venv/bin/python -m experiments.results rebuild [--only STUDY] [--recompute]
    .venv/bin/python -m experiments.results pack [--only STUDY]   # run folders -> runs.tar.xz

A study's run logs (one trainer workdir per run: config.json, eval.jsonl, run.json,
train.jsonl) are committed as ONE archive, ``<runs>.tar.xz``, in place of thousands of small
files: the repository stays small enough to clone and read, and every report, table and figure
made from the logs is rebuilt from the archive, byte for byte, by the commands in :data:`STUDIES`
(the single source of which command writes which committed file). ``check`` runs them into a
temporary copy of ``results/`` and lists every file whose bytes differ, so verifying the
committed results is one command (exit 1 on any difference).

The archive's bytes depend only on the logs' bytes (members sorted by name, mtime 0, uid/gid 0,
no user names, mode 644, GNU tar format, xz preset 9), so packing the same folders twice gives
the same file and a re-pack shows in git only when a log changed.

Outputs that need a fresh multi-minute computation instead of logs (the linear-regression theory's
curves, the muP data, benchmarks, the synthetic law demos) are listed in :data:`RECOMPUTED` with
their command and time; ``rebuild --recompute`` / ``check --recompute`` run the runnable ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import filecmp
import glob
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

from anytime import cli
from anytime.sweeps import collect

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHIVE = ".tar.xz"
PRESET = 9
LOG_FILES = collect.LOG_FILES  # what a run folder holds (the files --collect copies)
# A sweep root's own records, packed beside its run folders: the grid points --bracket added and
# the configurations --headline repeated with more seeds (anytime.sweeps.bracket, .headline).
SWEEP_FILES = collect.SWEEP_RECORDS


@dataclasses.dataclass(frozen=True)
class Command:
  """``python -m <args>`` with ``{root}`` (the extracted logs) and ``{results}`` (results/, or
  the check's copy of it) filled in; it writes ``outputs`` (globs under results/) and reads
  ``inputs`` (committed files under results/ it never rewrites, e.g. pre-registered forecasts)."""

  args: tuple[str, ...]
  outputs: tuple[str, ...]
  inputs: tuple[str, ...] = ()
  seconds: int = 0  # measured wall time on this 2-core machine under load

  def argv(self, root: str, results: str) -> list[str]:
    return [a.format(root=root, results=results) for a in self.args]

  def text(self) -> str:
    return "python -m " + " ".join(self.argv("<root>", "results"))


@dataclasses.dataclass(frozen=True)
class Study:
  """A study's run folders (``runs``, under results/), packed into ``runs + ARCHIVE``, and the
  commands that rebuild its committed outputs from them, in order. ``runs=""``: a study whose
  data are committed tables (e.g. the theory's computed curves), its figures drawn from them."""

  runs: str
  commands: tuple[Command, ...]

  @property
  def archive(self) -> str:
    return self.runs + ARCHIVE if self.runs else ""


def _files(names: str) -> tuple[str, ...]:
  return tuple(names.split())


def _lm(sub: str, *flags: str, outputs=(), inputs=(), seconds=0) -> Command:
  """A laws_lm subcommand on the extracted logs, writing to results/laws/lm."""
  args = ("experiments.laws_lm", sub, "--root", "{root}", "--out", "{results}/laws/lm", *flags)
  lm = "laws/lm/"
  return Command(args, tuple(lm + o for o in outputs), tuple(lm + i for i in inputs), seconds)


def _mup(command: str, outputs=(), inputs=(), seconds=0) -> Command:
  """``experiments.mup <command>`` redrawing from the committed data in results/mup."""
  args = ("experiments.mup", *command.split(), "--out", "{results}/mup")
  mup = "mup/"
  return Command(args, tuple(mup + o for o in outputs), tuple(mup + i for i in inputs), seconds)


STUDIES: dict[str, Study] = {
  "laws_lm": Study(
    "laws/lm/runs",
    (
      _lm(
        "grid",
        "--no_train",
        "--seeds",
        "0,1,2,3",
        "--profile",
        outputs=_files(
          "schedule_law.csv schedule_law_multipower.png schedule_law_multipower-paper.png "
          "schedule_law_annealing.png multipower_profile.csv lr_law.csv lr_law.png "
          "lr_law_window5.csv lr_law_window5.png equivalent_compute.csv seed_noise.csv"
        ),
        seconds=900,
      ),
      _lm(
        "w64",
        "--no_train",
        "--laws_root",
        "{root}",
        outputs=_files(
          "w64_lr_check.csv w64_schedule_law.csv w64_size_law.csv schedule_law_w64.png"
        ),
        inputs=("w64_prereg.csv", "w64_h8_prereg.csv"),
      ),
      _lm(
        "long",
        "--no_train",
        outputs=("long_check.csv", "long_refit.csv", "long_forecast.png"),
        inputs=("long_prereg.csv",),
      ),
      _lm(
        "replicate",
        "--no_train",
        outputs=("replicate_check.csv", "replicate_pairs.csv"),
        inputs=("long_prereg.csv",),
      ),
      _lm(
        "area",
        outputs=_files(
          "area_clock.csv area_fit.csv area_power.csv area_capacity.csv area_clock.png"
        ),
      ),
      _lm(
        "clock",
        "--no_train",
        outputs=("clock_check.csv", "clock_pairs.csv", "clock_forecast.png"),
        inputs=("clock_prereg.csv",),
      ),
      _lm(
        "repeat",
        "--no_train",
        outputs=_files(
          "repeat_ratio.csv fresh_check.csv fresh_refit.csv fresh_forecast.png fresh_pairs.csv"
        ),
        inputs=("fresh_prereg.csv",),
      ),
      _lm(
        "gain",
        "--no_train",
        outputs=_files(
          "gain_check.csv gain_pairs.csv gain_forecast.png gain_replicate.csv "
          "gain_replicate_pairs.csv"
        ),
        inputs=("gain_prereg.csv",),
      ),
      _lm("gain", "--dev", outputs=("gain_dev.csv",)),
      _lm(
        "cap",
        "--set",
        "8u",
        "--no_train",
        outputs=("cap_8u_check.csv", "cap_8u_pairs.csv", "cap_8u_forecast.png"),
        inputs=("cap_8u_prereg.csv",),
      ),
      _lm(
        "cap",
        "--set",
        "32u",
        "--no_train",
        outputs=("cap_32u_check.csv", "cap_32u_pairs.csv", "cap_32u_forecast.png"),
        inputs=("cap_32u_prereg.csv",),
      ),
    ),
  ),
  "fig2": Study(
    "fig2/runs",
    (
      Command(
        ("anytime.sweeps.report", "--sweep=fig2", "--root={root}", "--out={results}/fig2"),
        _files("fig2/*.md fig2/*.csv fig2/*.png fig2/runs/*.png"),
      ),
    ),
  ),
  "theory": Study(
    "",
    (
      Command(
        ("experiments.linreg", "horizons", "--replot", "--out", "{results}/theory"),
        ("theory/horizons.png", "theory/fig1.png"),
        ("theory/horizons_ratios.csv", "theory/horizons_curves.csv"),
        seconds=6,
      ),
      Command(
        ("experiments.linreg", "fig3", "--replot", "--out", "{results}/theory"),
        ("theory/fig3.png",),
        ("theory/fig3_curves.csv",),
        seconds=5,
      ),
      Command(
        ("experiments.linreg", "slopes", "--replot", "--out", "{results}/theory"),
        ("theory/slopes.png",),
        ("theory/slopes.csv",),
        seconds=4,
      ),
    ),
  ),
  "mup": Study(
    "",
    (
      _mup(
        "lr_transfer --report_only",
        outputs=("lr_transfer.csv", "lr_transfer.json", "lr_transfer.png"),
        inputs=("lr_transfer.jsonl",),
        seconds=6,
      ),
      _mup("coord_check --replot", ("coord_check.png",), ("coord_check.csv",), seconds=4),
      _mup("growth --replot", ("growth.png",), ("growth.csv",), seconds=3),
      _mup("module_lr --replot --width 64 --lr 0.008", ("module_lr.png",), ("module_lr.jsonl",), 3),
    ),
  ),
}


@dataclasses.dataclass(frozen=True)
class Recomputed:
  """Committed outputs computed afresh, not from logs: ``command`` writes them in ``time``;
  ``--recompute`` runs the ``runnable`` ones (deterministic on one machine), the others are
  listed for the reader only."""

  command: Command
  time: str
  runnable: bool = False


def _fresh(outputs: str, command: str, time: str, runnable=False) -> Recomputed:
  """``outputs`` (globs under results/, ", "-separated) written by ``python -m command``."""
  return Recomputed(Command(tuple(command.split()), tuple(outputs.split(", "))), time, runnable)


_LAWS = "--out {results}/laws"
_THEORY = "laws/theory_choice.csv, laws/theory_fit.png, laws/theory_prediction.csv"
_MUP = "--out=results/mup"
RECOMPUTED: tuple[Recomputed, ...] = (
  _fresh(
    "laws/fit_multipower.*, laws/demo_runs.jsonl",
    f"experiments.laws fit --demo --min_step 100 {_LAWS}",
    "10 s",
    True,
  ),
  _fresh("laws/lr_law.*, laws/lr_optima.csv", f"experiments.laws lr --demo {_LAWS}", "5 s", True),
  _fresh("laws/continued.csv", f"experiments.laws continued --demo {_LAWS}", "5 s", True),
  _fresh(f"{_THEORY}, laws/theory_table.md", f"experiments.laws theory {_LAWS}", "80 s", True),
  _fresh(
    "laws/theory_*_fit-constant+wsd20_linear.*",
    f"experiments.laws theory --fit constant,wsd20_linear {_LAWS}",
    "80 s",
    True,
  ),
  _fresh("theory/mc_check.csv", "experiments.linreg mc", "minutes"),
  _fresh("theory/slopes.csv, theory/gamma_star_check.csv", "experiments.linreg slopes", "minutes"),
  _fresh("theory/fig3_*.csv", "experiments.linreg fig3", "194 s"),
  _fresh("theory/horizons_*.csv", "experiments.linreg horizons", "minutes"),
  _fresh("theory/bench/*", "experiments.bench recursion", "268-620 s per setting"),
  # muP: the data and the run summaries (settings, wall time); the figures are redrawn from the
  # data by the mup study (--replot, --report_only).
  _fresh(
    "mup/coord_check.csv, mup/coord_check.json", f"experiments.mup coord_check {_MUP}", "354 s"
  ),
  _fresh("mup/lr_transfer.jsonl", f"experiments.mup lr_transfer {_MUP}", "~20 min"),
  _fresh(
    "mup/module_lr.jsonl, mup/module_lr.json",
    f"experiments.mup module_lr {_MUP} --width=64 --lr=0.008",
    "~10 min",
  ),
  _fresh("mup/growth.csv, mup/growth.json", f"experiments.mup growth {_MUP}", "579 s"),
  _fresh("perf/*", "experiments.bench {{trainer,accelerator}}", "4-8 min; never byte for byte"),
)
RECOMPUTE_COMMANDS: tuple[Command, ...] = tuple(r.command for r in RECOMPUTED if r.runnable)


# ------------------------------------------------------------------------------------------
# The archive.


def run_files(runs: str) -> list[str]:
  """Every file inside the run folders of ``runs`` (paths relative to it, sorted), and the sweep
  records of SWEEP_FILES; other files directly in ``runs`` (a report's per-run figures) are
  outputs, not logs, and stay out."""
  found = [f for f in SWEEP_FILES if os.path.isfile(os.path.join(runs, f))]
  for dirpath, dirnames, filenames in os.walk(runs):
    dirnames.sort()
    if dirpath != runs:
      found += [os.path.relpath(os.path.join(dirpath, f), runs) for f in filenames]
  return sorted(found)


def pack(runs: str, archive: str) -> int:
  """Writes the run folders of ``runs`` to ``archive`` (deterministic bytes); returns the
  number of files. Written to a temporary name and renamed, so a failed pack leaves no half
  archive."""
  names = run_files(runs)
  if not names:
    raise ValueError(f"{runs!r} holds no run folders to pack.")
  tmp = f"{archive}.tmp-{os.getpid()}"
  with tarfile.open(tmp, "w:xz", preset=PRESET, format=tarfile.GNU_FORMAT) as tar:
    for name in names:
      info = tarfile.TarInfo(name.replace(os.sep, "/"))
      info.size, info.mode, info.mtime = os.path.getsize(os.path.join(runs, name)), 0o644, 0
      info.uid = info.gid = 0
      info.uname = info.gname = ""
      with open(os.path.join(runs, name), "rb") as f:
        tar.addfile(info, f)
  os.replace(tmp, archive)
  return len(names)


def unpack(archive: str, dest: str) -> list[str]:
  """Extracts ``archive`` into ``dest`` (regular files only, no path outside ``dest``: the
  ``data`` filter); returns the member names."""
  with tarfile.open(archive, "r:xz") as tar:
    tar.extractall(dest, filter="data")
    return tar.getnames()


# ------------------------------------------------------------------------------------------
# Rebuilding.


def _studies(only: str) -> dict[str, Study]:
  if only and only not in STUDIES:
    raise ValueError(f"--only={only!r} is not a study; allowed: {', '.join(STUDIES)}.")
  return {k: v for k, v in STUDIES.items() if not only or k == only}


def _run(command: Command, root: str, results: str, verbose: bool) -> None:
  argv = [sys.executable, "-m", *command.argv(root, results)]
  start = time.time()
  done = subprocess.run(argv, cwd=REPO, capture_output=not verbose, text=True)
  print(f"  {time.time() - start:6.0f} s  {command.text()}", flush=True)
  if done.returncode != 0:
    tail = "\n".join((done.stderr or "").strip().splitlines()[-5:])
    raise ValueError(f"{command.text()} exited {done.returncode}: {tail}")


def rebuild(studies: dict[str, Study], results: str, recompute: bool, verbose: bool) -> None:
  """Runs every study's commands on its extracted archive, writing under ``results``."""
  for name, study in studies.items():
    if not study.runs:  # figures from committed tables: nothing to extract
      print(f"{name}: committed tables", flush=True)
      for command in study.commands:
        _run(command, "", results, verbose)
      continue
    archive = os.path.join(REPO, "results", study.archive)
    if not os.path.isfile(archive):
      raise ValueError(
        f"study {name!r}: no archive {archive!r} (python -m experiments.results pack)"
      )
    with tempfile.TemporaryDirectory(prefix=f"results-{name}-") as root:
      unpack(archive, root)
      print(f"{name}: {study.archive}", flush=True)
      for command in study.commands:
        _run(command, root, results, verbose)
  if recompute:
    print("recomputed:", flush=True)
    for command in RECOMPUTE_COMMANDS:
      _run(command, "", results, verbose)


def _outputs(commands, results: str) -> set[str]:
  """The files under ``results`` that ``commands`` write (relative paths)."""
  found = set()
  for c in commands:
    for pattern in c.outputs:
      found |= {os.path.relpath(p, results) for p in glob.glob(os.path.join(results, pattern))}
  return found


def check(studies: dict[str, Study], recompute: bool, verbose: bool) -> list[str]:
  """Rebuilds into a temporary copy of results/ (the outputs removed first, inputs kept) and
  returns one line per output that is missing, new or different from the committed file."""
  committed = os.path.join(REPO, "results")
  commands = [c for s in studies.values() for c in s.commands]
  commands += list(RECOMPUTE_COMMANDS) if recompute else []
  with tempfile.TemporaryDirectory(prefix="results-check-") as tmp:
    copy = os.path.join(tmp, "results")
    shutil.copytree(committed, copy, ignore=shutil.ignore_patterns(*LOG_FILES, "*" + ARCHIVE))
    before = _outputs(commands, committed)
    for rel in _outputs(commands, copy):
      os.remove(os.path.join(copy, rel))
    rebuild(studies, copy, recompute, verbose)
    after = _outputs(commands, copy)
    problems = [f"missing (not rebuilt): results/{r}" for r in sorted(before - after)]
    problems += [f"new (not committed): results/{r}" for r in sorted(after - before)]
    for rel in sorted(before & after):
      if not filecmp.cmp(os.path.join(committed, rel), os.path.join(copy, rel), shallow=False):
        problems.append(f"differs: results/{rel}")
  return problems


# ------------------------------------------------------------------------------------------
# The command.


def print_list() -> None:
  for name, study in STUDIES.items():
    if not study.runs:
      print(f"{name}: from committed tables")
    else:
      archive = os.path.join(REPO, "results", study.archive)
      size = f"{os.path.getsize(archive) / 1e6:.1f} MB" if os.path.isfile(archive) else "not packed"
      print(f"{name}: results/{study.archive} ({size})")
    for c in study.commands:
      print(f"  {c.text()}")
      print(f"    writes: {', '.join('results/' + o for o in c.outputs)}")
      if c.inputs:
        print(
          f"    reads (committed, never rewritten): {', '.join('results/' + i for i in c.inputs)}"
        )
  print("recomputed, not rebuilt (no logs; rebuild --recompute runs those marked *):")
  for r in RECOMPUTED:
    outputs = ", ".join("results/" + o for o in r.command.outputs)
    print(f"  {'*' if r.runnable else ' '} {outputs}: {r.command.text()} ({r.time})")


class _Parser(argparse.ArgumentParser):
  def error(self, message: str):
    raise ValueError(f"{message} (python -m experiments.results --help)")


def main(argv=None) -> int:
  p = _Parser(
    prog="python -m experiments.results",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("action", choices=("list", "pack", "rebuild", "check"))
  p.add_argument("--only", default="", help=f"one study: {', '.join(STUDIES)}")
  p.add_argument("--recompute", action="store_true", help="also the runnable RECOMPUTED commands")
  p.add_argument("--verbose", action="store_true", help="show the commands' own output")
  args = p.parse_args(argv)
  studies = _studies(args.only)
  if args.action == "list":
    print_list()
  elif args.action == "pack":
    for name, study in studies.items():
      if not study.runs:
        continue
      runs = os.path.join(REPO, "results", study.runs)
      n = pack(runs, os.path.join(REPO, "results", study.archive))
      print(f"{name}: {n} files -> results/{study.archive}; git rm -r the run folders it replaces")
  elif args.action == "rebuild":
    start = time.time()
    rebuild(studies, os.path.join(REPO, "results"), args.recompute, args.verbose)
    print(f"rebuilt in {time.time() - start:.0f} s; git status shows what changed")
  else:
    start = time.time()
    problems = check(studies, args.recompute, args.verbose)
    for line in problems:
      print(line)
    print(f"{len(problems)} differences ({time.time() - start:.0f} s)")
    return 1 if problems else 0
  return 0


if __name__ == "__main__":
  cli.run(main)
