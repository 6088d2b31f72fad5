"""The laws_lm grid's runs: what they are, where their logs are, how they are read.

Split from :mod:`experiments.laws_lm.grid` (which re-exports every name here, the name the other
laws_lm commands call them by) so that the grid's checks and :mod:`experiments.laws_lm.lr` both
import this module and not each other:

- the grid itself (:func:`grid`, the schedule comparison's run names, their configs);
- the logs: a run's final loss, its loss curve with its exact LR history, the schedule
  comparison's curves (sparse, dense, dense seed means);
- the command-line protocol every laws_lm command shares (:func:`add_run_args`,
  :func:`check_run_args`, :func:`train`), and :func:`open_root`: a ``--root`` that names a packed
  archive of the logs (``runs.tar.xz``, experiments/results.py) is extracted once to a temporary
  directory, so the committed commands run on the committed archive as on the folder it replaced;
- CSV output (:func:`_write_csv`, atomic) and matplotlib without a display (:func:`_pyplot`).
"""

from __future__ import annotations

import argparse
import atexit
import csv
import dataclasses
import functools
import itertools
import os
import re
import shutil
import tempfile

import numpy as np

from anytime.laws.curves import curve_from_records
from anytime.sweeps import common as sc
from anytime.sweeps import launch as launcher

UNIT_STEPS = 240  # the demo sweep's steps_per_chinchilla: one horizon unit for every width
WARMUP = 50
WIDTHS = {32: dict(heads=2, mlp=128), 48: dict(heads=2, mlp=192)}
# Half an octave apart, 2.5e-3 ... 4e-2. The first 6 (up to 1.41e-2) left most optima above the grid
# (session 2), so the grid goes 4 half-octaves further up.
LRS = tuple(float(f"{2.5e-3 * 2 ** (k / 2):.4g}") for k in range(9))
FIT_HORIZONS = {32: (0.5, 1.0, 2.0, 4.0), 48: (1.0, 2.0, 4.0)}
HELD_OUT = (32, 8.0)  # (width, horizon) whose optimum the LR law predicts
SCHEDULE_WIDTH, SCHEDULE_LR, SCHEDULE_HORIZON = 32, 1e-2, 8.0
COOLDOWNS = (("wsd10_linear", 0.1, "linear"), ("wsd10_1-sqrt", 0.1, "sqrt"))
COOLDOWNS += (("wsd20_linear", 0.2, "linear"), ("wsd20_1-sqrt", 0.2, "sqrt"))
FIT_SETS = (("constant", "cosine_h8"), ("constant", "wsd20_linear"))  # the laws' fit runs
# A diagnostic beside the two-schedule fits: can the law follow slow and fast anneals at once?
FIT_SETS += (("constant", "cosine_h8", "wsd20_linear"),)
# The schedule comparison again with an eval every DENSE_EVERY steps (80 points on top of the
# 16 log-spaced) at DENSE_SEEDS: the constant run's loss moves by +-0.6% between neighbouring
# evals (SGD noise at peak LR), the size of the 0.5% target, and 16 points leave the multi-power
# law's annealing shape unidentified (docs/laws.md). Seed 0 retraces the sparse runs (same seed
# and data order; only fp32 summation order differs, checked in dense_check).
DENSE_EVERY = 24
DENSE_SEEDS = (0, 1, 2)
SCHEDULE_LABELS = ("constant", "cosine_h8", "cosine_h4", *(label for label, *_ in COOLDOWNS))
B2 = 0.95
LR_WINDOW = 5  # the LR law's sensitivity check: quadratics on 5 LRs (2 octaves) around each best
LOSS_KEY = "raw"


def _sweep(width: int, shape: dict | None = None):
  """The demo sweep's settings with the model resized to ``width`` (``shape``: heads and MLP
  width, default WIDTHS[width])."""
  s = sc.load_sweep("demo")
  shape = shape or WIDTHS[width]
  keep = [o for o in s.lm_overrides if not o.startswith(("model.", "steps_per_chinchilla"))]
  s.lm_overrides = (
    *keep,
    f"model.d_model={width}",
    f"model.num_heads={shape['heads']}",
    f"model.mlp_dim={shape['mlp']}",
    f"steps_per_chinchilla={UNIT_STEPS}",
    "eval_points=16",
    f"opt.warmup_steps={WARMUP}",
  )
  return s


def _cosine_name(width: int, horizon: float, lr: float, seed: int = 0) -> str:
  return f"w{width}_{sc.run_name('cosine', horizon, lr, B2, seed)}"


def grid(seeds: tuple[int, ...] = (0,)) -> list[sc.Run]:
  """Every run of the grid, parents before branches, with stable names.

  ``seeds``: the LR sweeps' seeds (the seed suffix ``_s<seed>`` is part of the name, as in
  sc.run_name); the schedule runs are seed 0 only.
  """
  if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
    raise ValueError(f"seeds={seeds!r} must be distinct integers >= 0, at least one.")
  runs = []
  no_averages = ("opt.averages", "()")
  for width in WIDTHS:
    s = _sweep(width)
    horizons = FIT_HORIZONS[width] + ((HELD_OUT[1],) if width == HELD_OUT[0] else ())
    for seed, h, lr in itertools.product(seeds, horizons, LRS):
      extra = [("horizons", sc._tuple([h])), no_averages]
      run = sc._run(s, "cosine", h, lr, B2, seed, extra=extra)
      runs.append(dataclasses.replace(run, name=_cosine_name(width, h, lr, seed)))
  runs += _schedule_runs()
  for seed in DENSE_SEEDS:
    runs += _schedule_runs(seed, dense=True)
  return runs


def sparse_name(label: str) -> str:
  """The run name of schedule ``label`` (SCHEDULE_LABELS) in the sparse set (seed 0; its
  cosines are the LR sweeps' runs at the schedule LR)."""
  h = SCHEDULE_HORIZON
  if label == "constant":
    return f"w{SCHEDULE_WIDTH}_constant_h{h:g}_lr{SCHEDULE_LR:g}"
  if label in ("cosine_h8", "cosine_h4"):
    return _cosine_name(SCHEDULE_WIDTH, h if label == "cosine_h8" else h / 2, SCHEDULE_LR)
  return f"w{SCHEDULE_WIDTH}_{label}_h{h:g}"


def dense_name(
  label: str,
  seed: int,
  width: int = SCHEDULE_WIDTH,
  horizon: float = SCHEDULE_HORIZON,
  every: int = DENSE_EVERY,
) -> str:
  """The run name of schedule ``label`` in the dense-eval set at ``seed`` (another
  ``horizon`` than SCHEDULE_HORIZON: laws_lm_long's set, named with it)."""
  prefix = f"w{width}" if horizon == SCHEDULE_HORIZON else f"w{width}_h{horizon:g}"
  return f"{prefix}_e{every}_s{seed}_{label}"


def _schedule_runs(
  seed: int = 0,
  dense: bool = False,
  width: int = SCHEDULE_WIDTH,
  peak_lr: float = SCHEDULE_LR,
  shape: dict | None = None,
  horizon: float = SCHEDULE_HORIZON,
  every: int = DENSE_EVERY,
) -> list[sc.Run]:
  """The schedule comparison: the constant run, its WSD branches, and (dense set only; the
  sparse set takes them from the LR sweeps) the cosines at the horizon and half of it
  (``cosine_h8``, ``cosine_h4``) at the schedule LR. ``width``, ``peak_lr``, ``shape``,
  ``horizon``, ``every`` (eval interval): another model or length (dense set only;
  laws_lm_w64, laws_lm_long)."""
  default = (width, peak_lr, horizon) == (SCHEDULE_WIDTH, SCHEDULE_LR, SCHEDULE_HORIZON)
  if not dense and not (default and every == DENSE_EVERY):
    raise ValueError(
      f"width={width}, peak_lr={peak_lr}, horizon={horizon}, every={every}: only the dense "
      "set takes another model, length or eval interval."
    )
  s = _sweep(width, shape)
  h = horizon
  common = [("opt.averages", "()")] + ([("eval_every", str(every))] if dense else [])
  name = functools.partial(dense_name, seed=seed, width=width, horizon=h, every=every)
  parent = name("constant") if dense else sparse_name("constant")
  starts = sorted({round(h * (1 - frac), 6) for _, frac, _ in COOLDOWNS} | {h})
  run = sc._run(
    s, "constant", h, peak_lr, B2, seed, extra=[("horizons", sc._tuple(starts)), *common]
  )
  runs = [dataclasses.replace(run, name=parent)]
  for label, frac, shape in COOLDOWNS:
    extra = [
      ("horizons", sc._tuple([h])),
      *common,
      ("opt.wsd_decay_fraction", f"{frac:g}"),
      ("opt.wsd_shape", shape),
      ("init_from", parent),
    ]
    run = sc._run(s, "wsd", h, peak_lr, B2, seed, extra=extra, parent=parent, branch=h * (1 - frac))
    runs.append(dataclasses.replace(run, name=name(label) if dense else sparse_name(label)))
  if dense:
    for cos_h in (h, h / 2):
      extra = [("horizons", sc._tuple([cos_h])), *common]
      run = sc._run(s, "cosine", cos_h, peak_lr, B2, seed, extra=extra)
      runs.append(dataclasses.replace(run, name=name(f"cosine_h{cos_h:g}")))
  return runs


# ------------------------------------------------------------------------------------------
# Reading the logs.


def _jsonl(path: str) -> list[dict]:
  from anytime.lm.metrics import read_jsonl

  return read_jsonl(path) if os.path.exists(path) else []


def final_loss(root: str, run: sc.Run) -> float | None:
  """The run's loss at its end, or None if it did not finish (or diverged)."""
  log = sc.read_eval_log(os.path.join(root, run.name))
  if log is None or not log.done:
    return None
  loss = sc.loss_at_horizon(log, run.horizon, LOSS_KEY)
  return loss if sc.finite(loss) else None


def curve(root: str, run: sc.Run, runs_by_name: dict):
  """The run's loss curve with its whole LR history (a branch prepends its parent's)."""
  path = os.path.join(root, run.name)
  train, evals = _jsonl(os.path.join(path, "train.jsonl")), _jsonl(os.path.join(path, "eval.jsonl"))
  if run.parent is not None:
    ppath = os.path.join(root, run.parent)

    def before(records):
      return [r for r in records if "step" in r and int(r["step"]) <= run.start_step]

    train = before(_jsonl(os.path.join(ppath, "train.jsonl"))) + train
    evals = before(_jsonl(os.path.join(ppath, "eval.jsonl"))) + evals
  evals = [r for r in evals if r.get("kind") == "eval"]
  by_step = {int(r["step"]): r for r in evals}  # a resumed run may log a step twice
  c = curve_from_records(
    run.name,
    [by_step[k] for k in sorted(by_step)],
    loss_key=f"loss/{LOSS_KEY}",
    lr_records=train,
    warmup_steps=WARMUP,
  )
  return dataclasses.replace(c, lrs=exact_lrs(run, train)[: c.lrs.size])


def exact_lrs(run: sc.Run, train: list[dict]) -> np.ndarray:
  """The LR of every update 1..total_steps from the run's schedule config (a branch's config
  is its whole history), checked against the LRs in its train log.

  The log has the LR every 50 steps; interpolating it linearly bends a 1-sqrt cooldown (7% of
  the peak off at its start) and turns the last warmup step into a 1.8% ramp over the next 50
  steps (spurious LR increases for the multi-power law).
  """
  from anytime import optim

  cfg = sc.lm_config(run.lm_arg, run.overrides)
  schedule = optim.make_schedule(cfg.opt, run.total_steps)
  lrs = np.asarray(schedule(np.arange(run.total_steps)), dtype=np.float64)
  logged = [(int(r["step"]), float(r["lr"])) for r in train if "step" in r and "lr" in r]
  for step, lr in logged:
    if not 1 <= step <= lrs.size or abs(lrs[step - 1] - lr) > 1e-5 * cfg.opt.lr:
      raise ValueError(
        f"run {run.name!r}: logged lr={lr} at step {step} differs from its schedule's "
        f"{lrs[step - 1] if 1 <= step <= lrs.size else 'nothing'} (config and log disagree)."
      )
  return lrs


# ------------------------------------------------------------------------------------------
# The schedule comparison's curves.


# The schedule laws are fitted on three versions of the schedule curves: "sparse" (seed 0, the
# 16 log-spaced evals), "dense" (seed 0, every 24 steps) and "dense-mean" (every 24 steps, the
# mean over DENSE_SEEDS at each step; the held-out finals are seed means too).
EVALS = ("sparse", "dense", "dense-mean")


def schedule_curves(
  root: str,
  runs: list[sc.Run],
  min_step: int,
  evals: str = "sparse",
  width: int = SCHEDULE_WIDTH,
  seeds: tuple[int, ...] = DENSE_SEEDS,
) -> dict:
  """{label: LossCurve} of the schedule comparison (``evals``: one of EVALS), steps >=
  ``min_step``; the dense versions at ``width``, their mean over ``seeds``."""
  by_name = {r.name: r for r in runs}
  if evals == "sparse":
    named = {label: sparse_name(label) for label in SCHEDULE_LABELS}
    curves = {k: curve(root, by_name[v], by_name) for k, v in named.items()}
  elif evals in ("dense", "dense-mean"):
    seeds = seeds if evals == "dense-mean" else seeds[:1]
    curves = {}
    for label in SCHEDULE_LABELS:
      per_seed = [curve(root, by_name[dense_name(label, s, width)], by_name) for s in seeds]
      curves[label] = _mean_curve(label, per_seed)
  else:
    raise ValueError(f"evals={evals!r} is invalid: allowed {EVALS}.")
  return {k: _cut(c, min_step) for k, c in curves.items()}


def _mean_curve(label, per_seed):
  """The seeds' mean loss at each step (the seeds share their schedule and eval steps)."""
  first = per_seed[0]
  for c in per_seed[1:]:
    if not (np.array_equal(c.steps, first.steps) and np.array_equal(c.lrs, first.lrs)):
      raise ValueError(f"schedule {label!r}: the seeds' eval steps or LRs differ ({c.name}).")
  loss = np.mean([c.loss for c in per_seed], axis=0)
  return dataclasses.replace(first, name=label, loss=loss)


def dense_names() -> set[str]:
  """The run names of the dense-eval schedule set, every seed."""
  return {dense_name(label, seed) for label in SCHEDULE_LABELS for seed in DENSE_SEEDS}


def dense_available(root: str, runs: list[sc.Run]) -> bool:
  """Whether every run of the dense-eval schedule set finished."""
  by_name = {r.name: r for r in runs}
  return all(final_loss(root, by_name[n]) is not None for n in dense_names())


def available_evals(root: str, runs: list[sc.Run]) -> tuple[str, ...]:
  """The versions of the schedule curves (EVALS) whose runs exist: the dense ones once finished."""
  return EVALS if dense_available(root, runs) else EVALS[:1]


def dense_check(root: str, runs: list[sc.Run]) -> dict:
  """{label: largest |dense / sparse - 1|} over the steps both evaluated: dense seed 0
  retraces the sparse runs (same seed and data; only fp32 summation order may differ)."""
  sparse = schedule_curves(root, runs, 1)
  dense = schedule_curves(root, runs, 1, evals="dense")
  worst = {}
  for k in SCHEDULE_LABELS:
    a, b = sparse[k], dense[k]
    common, ia, ib = np.intersect1d(a.steps, b.steps, return_indices=True)
    if common.size < a.steps.size:
      missing = sorted(set(a.steps.tolist()) - set(common.tolist()))
      raise ValueError(f"the dense copy of {k!r} lacks steps {missing}")
    worst[k] = float(np.max(np.abs(b.loss[ib] / a.loss[ia] - 1)))
  return worst


def _cut(c, low, high=None):
  m = (c.steps >= low) & (c.steps <= (high if high is not None else c.steps[-1]))
  return dataclasses.replace(c, steps=c.steps[m], loss=c.loss[m])


# ------------------------------------------------------------------------------------------
# Output.


def _write_csv(path: str, rows: list[dict]) -> None:
  """Writes ``rows`` to ``path`` (creating its directory) by an atomic rename, so an
  interrupted write leaves the previous file whole."""
  keys = list(dict.fromkeys(k for r in rows for k in r))
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
  os.replace(tmp, path)
  print(f"wrote {path}")


def read_csv(path: str) -> list[dict]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def _pyplot():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


# ------------------------------------------------------------------------------------------
# A root of run logs: a directory, or a packed archive of one.

ARCHIVE = ".tar.xz"  # experiments/results.py packs a study's run folders into <root>.tar.xz
_OPENED: dict[str, str] = {}  # archive (absolute) -> its extraction, one per process


def open_root(flag: str, path: str, *, trains: bool = False, missing_ok: bool = False) -> str:
  """The directory of run logs named by ``flag``'s ``path``.

  ``path`` is a directory, an archive ``*.tar.xz``, or a directory that was packed (gone, with
  ``<path>.tar.xz`` beside it: the commands in the docs name the folder). An archive is read
  only, so a command that ``trains`` refuses it; otherwise it is extracted once per process to a
  temporary directory removed at exit. A directory that does not exist is refused unless the
  command ``trains`` (it then holds the new runs) or ``missing_ok``.
  """
  archive = path if path.endswith(ARCHIVE) else None
  if archive is None and not os.path.isdir(path) and os.path.isfile(path.rstrip("/") + ARCHIVE):
    archive = path.rstrip("/") + ARCHIVE
  if archive is None:
    if os.path.exists(path) and not os.path.isdir(path):
      raise ValueError(f"{flag}={path!r} is a file, neither a directory of runs nor a {ARCHIVE}.")
    if not (trains or missing_ok) and not os.path.isdir(path):
      raise ValueError(f"{flag}={path!r} does not exist (nor does {path.rstrip('/')}{ARCHIVE}).")
    return path
  if not os.path.isfile(archive):
    raise ValueError(f"{flag}={path!r}: no archive {archive!r}.")
  if trains:
    raise ValueError(
      f"{flag}={path!r} is the packed archive {archive!r}, read only: add --no_train to fit its "
      f"logs, or train under another --root."
    )
  key = os.path.abspath(archive)
  if key not in _OPENED:
    from experiments import results

    dest = tempfile.mkdtemp(prefix="laws_lm-runs-")
    atexit.register(shutil.rmtree, dest, ignore_errors=True)
    results.unpack(archive, dest)
    _OPENED[key] = dest
  return _OPENED[key]


def copy_logs(root: str, runs: list[sc.Run], dest: str) -> None:
  for r in runs:
    src = os.path.join(root, r.name)
    if not os.path.isdir(src):
      continue
    os.makedirs(os.path.join(dest, r.name), exist_ok=True)
    for f in ("eval.jsonl", "train.jsonl", "run.json", "config.json"):
      if os.path.exists(os.path.join(src, f)):
        shutil.copy2(os.path.join(src, f), os.path.join(dest, r.name, f))


class Parser(argparse.ArgumentParser):
  """An argparse parser whose refusals are a ValueError: ``anytime.cli.run`` prints them as one
  line (``error: ...``), not argparse's usage block; ``--help`` still prints and exits 0."""

  def error(self, message: str):
    raise ValueError(f"{message} (--help lists the flags)")


def parser(doc: str) -> Parser:
  """The parser of a laws_lm command: its module docstring as ``--help``, verbatim."""
  return Parser(description=doc, formatter_class=argparse.RawTextHelpFormatter)


def add_run_args(p: argparse.ArgumentParser, jobs: int) -> None:
  """The options laws_lm and laws_lm_w64 share: where runs live, what to train, what to write."""
  p.add_argument("--root", default="runs/laws_lm", help="the runs' workdirs")
  p.add_argument("--out", default="results/laws/lm", help="CSV + PNG output directory")
  p.add_argument("--jobs", type=int, default=jobs, help="runs at once")
  p.add_argument("--no_train", action="store_true", help="only fit the logs under --root")
  p.add_argument("--only", default="", help="train only runs whose name matches this regex")
  p.add_argument("--copy_logs", action="store_true", help="copy the small logs to <out>/runs")
  p.add_argument("--min_step", type=int, default=100, help="schedule-law fits: steps >= this")
  p.add_argument("--dry", action="store_true", help="list the runs and their cost")


def check_run_args(args: argparse.Namespace, reads_only: bool = False) -> None:
  """Refuses bad add_run_args values before any run or write, and turns ``--root`` into a
  directory of logs (:func:`open_root`; not for ``--dry``, which reads no logs). A command that
  trains nothing (``--no_train``, ``--prereg``, or ``reads_only``) may name an archive."""
  if args.jobs < 1:
    raise ValueError(f"--jobs={args.jobs} is invalid: expected an integer >= 1.")
  if not args.dry:
    prereg = getattr(args, "prereg", False)  # a forecast: reads the logs it needs, if any
    trains = not (args.no_train or prereg or reads_only)
    args.root = open_root("--root", args.root, trains=trains, missing_ok=prereg)


def print_dry(runs: list[sc.Run], name_width: int = 40) -> None:
  """--dry: each run's trained steps and FLOPs, then the total."""
  for r in runs:
    print(f"{r.name:{name_width}s} {r.trained_steps:6d} steps  {r.train_flops:.3g} FLOPs")
  print(f"{len(runs)} runs, {sum(r.train_flops for r in runs):.3g} FLOPs")


def train(args: argparse.Namespace, runs: list[sc.Run]) -> None:
  """Trains the ``runs`` matching --only under --root with --jobs at once (finished ones skip)."""
  todo = [r for r in runs if re.search(args.only, r.name)]
  outcome = launcher.run_local(todo, os.path.abspath(args.root), jobs=args.jobs)
  print(", ".join(f"{k}: {len(v)}" for k, v in outcome.items()))
