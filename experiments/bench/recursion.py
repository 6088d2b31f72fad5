"""Benchmark: compressed vs full exact recursion on the paper's Figure 3 workload.

For each (a, b) of the paper (d = 500k, 50k steps, sigma^2 = 0.01) runs the
three anytime schedules (constant, 1/sqrt(t), t**-gamma*; multiplier 0.5 / tr H,
Polyak averaging) once with the full O(d) recursion and once compressed, and
records the relative error of last and averaged risk at ~60 log-spaced steps,
the wall times and the full recursion's throughput (coordinate-steps/s).
Resumable: one CSV per setting under results/theory/bench/; finished settings are
skipped. The summary prints ratios measured in this run set.

  python -m experiments.bench recursion                  # all six settings (268-620 s each, full)
  python -m experiments.bench recursion --settings 0,1   # a subset (indices into PAPER_SETTINGS)
  python -m experiments.bench recursion --summary        # only aggregate existing CSVs
  python -m experiments.bench recursion --settings 0 --bench_dir /tmp/tb   # a fresh measurement
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import anytime
from anytime import cli
from experiments.linreg import common as C
from theory import compressed, recursion

BENCH_DIR = os.path.join(C.RESULTS, "bench")
MULTIPLIER = 0.5


def run_setting(a: float, b: float, steps: int, dim: int) -> list[dict]:
  p = C.problem(a, b, dim=dim)
  peak = MULTIPLIER / p.trace()
  scheds = C.anytime_schedules(a, b, peak)
  names = list(scheds)
  lrs = recursion.lr_array(list(scheds.values()), steps)
  rec = C.log_records(steps)
  avg = anytime.polyak()
  spec_c = compressed.spectrum(p)
  recursion.run(p, lrs[:, :10], averaging=avg, record_steps=[10], spectrum=spec_c)  # warm-up
  t0 = time.perf_counter()
  comp = recursion.run(p, lrs, averaging=avg, record_steps=rec, spectrum=spec_c)
  t_comp = time.perf_counter() - t0
  spec_f = compressed.full_spectrum(p)
  t0 = time.perf_counter()
  full = recursion.run(p, lrs, averaging=avg, record_steps=rec, spectrum=spec_f)
  t_full = time.perf_counter() - t0  # includes one compile (~1 s)
  rows = []
  for i, name in enumerate(names):
    for j, k in enumerate(rec):
      rows.append(
        dict(
          capacity=a,
          source=b,
          schedule=name,
          step=int(k),
          full_last=float(full.last[i, j]),
          comp_last=float(comp.last[i, j]),
          full_avg=float(full.averaged[i, j]),
          comp_avg=float(comp.averaged[i, j]),
          rel_err_last=float(abs(comp.last[i, j] / full.last[i, j] - 1)),
          rel_err_avg=float(abs(comp.averaged[i, j] / full.averaged[i, j] - 1)),
          seconds_full=t_full,
          seconds_comp=t_comp,
          groups_full=spec_f.size,
          groups_comp=spec_c.size,
          runs=len(names),
          steps=steps,
        )
      )
  return rows


def summary(paths: list[str]) -> list[dict]:
  out = []
  for path in paths:
    rows = C.read_csv(path)
    f = lambda k, rows=rows: np.array([float(r[k]) for r in rows])
    t_full, t_comp = f("seconds_full")[0], f("seconds_comp")[0]
    coord_steps = f("groups_full")[0] * f("steps")[0] * f("runs")[0]
    out.append(
      dict(
        capacity=float(rows[0]["capacity"]),
        source=float(rows[0]["source"]),
        max_rel_err_last=float(f("rel_err_last").max()),
        max_rel_err_avg=float(f("rel_err_avg").max()),
        seconds_full=t_full,
        seconds_comp=t_comp,
        speedup=t_full / t_comp,
        full_coord_steps_per_s=coord_steps / t_full,
        groups_comp=int(f("groups_comp")[0]),
      )
    )
  return out


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--settings", default=",".join(str(i) for i in range(6)))
  ap.add_argument("--steps", type=int, default=C.PAPER_STEPS)
  ap.add_argument("--dim", type=int, default=C.PAPER_DIM)
  ap.add_argument("--summary", action="store_true")
  ap.add_argument("--bench_dir", default=BENCH_DIR, help="where the per-setting CSVs go")
  args = ap.parse_args(argv)
  allowed = [str(i) for i in range(len(C.PAPER_SETTINGS))]
  idx = [int(i) for i in cli.one_of("--settings", args.settings, allowed)]
  cli.at_least("--steps", args.steps, 1)
  cli.at_least("--dim", args.dim, 1)
  cli.output_dir("--bench_dir", args.bench_dir)
  paths = []
  for i in idx:
    a, b = C.PAPER_SETTINGS[i]
    path = os.path.join(
      args.bench_dir, f"full_vs_compressed_a{a}_b{b:.2f}_d{args.dim}_T{args.steps}.csv"
    )
    if not os.path.exists(path) and not args.summary:
      t0 = time.time()
      C.write_csv(path, run_setting(a, b, args.steps, args.dim))
      print(f"setting a={a} b={b}: done in {time.time() - t0:.0f} s -> {path}", flush=True)
    if os.path.exists(path):
      paths.append(path)
  if not paths:
    return
  rows = summary(paths)
  C.write_csv(os.path.join(args.bench_dir, f"summary_d{args.dim}_T{args.steps}.csv"), rows)
  print(
    f"{'a':>4} {'b':>4} {'maxrel_last':>11} {'maxrel_avg':>10} {'t_full':>7} {'t_comp':>6} "
    f"{'speedup':>7} {'full coord-steps/s':>18} {'groups':>6}"
  )
  for r in rows:
    print(
      f"{r['capacity']:4.1f} {r['source']:4.1f} {r['max_rel_err_last']:11.2e} "
      f"{r['max_rel_err_avg']:10.2e} {r['seconds_full']:7.1f} {r['seconds_comp']:6.2f} "
      f"{r['speedup']:7.0f} {r['full_coord_steps_per_s']:18.3g} {r['groups_comp']:6d}"
    )
  worst = max(max(r["max_rel_err_last"], r["max_rel_err_avg"]) for r in rows)
  print(f"max relative error over all settings/schedules/steps: {worst:.2e}")
  print(f"min speed-up: {min(r['speedup'] for r in rows):.0f}x")
