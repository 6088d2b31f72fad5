"""The main demo (``make demo``): anytime schedules with weight averaging, at work.

1. Every schedule of ``anytime.schedules`` on one plot.
2. Online SGD on a noisy linear-regression problem (power-law spectrum), run
   with the real Optax transforms: ONE constant-step run with Polyak and
   proportional-EMA averages (``anytime.with_averaging``), against a separate
   cosine run for every horizon. At each horizon the table compares the
   constant run's raw iterate and its averages with the cosine run that was
   told the horizon in advance.
3. The same question answered exactly by :mod:`theory` (expected risk of SGD
   on infinite-dimensional linear regression, no sampling noise), with a
   Monte-Carlo cross-check (``experiments/linreg/demo.py``).
4. The paper's comparison in small, on a language model: the ``demo`` sweep of
   ``anytime/configs/sweeps.py`` (a 25k-parameter Transformer on the embedded Python
   standard library, horizons 1, 2, 4x Chinchilla, fixed peak LRs): a cosine run
   per horizon against ONE constant run with EMA averages and its WSD branches,
   through the real launcher (``anytime/sweeps/launch.py``) and report
   (``anytime/sweeps/report.py``). The full, tuned version is ``--sweep=fig2``.

Everything is written to ``--out`` (default ``out/demo``): PNG figures and
Markdown tables. ``--skip_lm`` leaves out part 4 (a few minutes).
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import optax

import anytime
from anytime import cli
from anytime.sweeps import common as sweep_common
from anytime.sweeps import launch as sweep_launcher
from anytime.sweeps import report as sweep_report
from experiments.linreg import demo as theory_demo

DIM = 256
CAPACITY = 1.5  # eigenvalues lambda_i = i**-capacity
SOURCE = 1.5  # target: lambda_i w*_i**2 = i**-source
NOISE_VARIANCE = 0.5
BATCH = 4
SEEDS = 8
BASE_HORIZON = 250
HORIZONS = [BASE_HORIZON * 2**i for i in range(6)]  # 250 .. 8000 steps
WARMUP = 20
MULTIPLIERS = (0.25, 0.5, 1.0, 2.0)  # peak step = multiplier / tr(H), tuned per horizon


def plot_schedules(path: pathlib.Path) -> None:
  total, warmup, peak = 1000, 50, 1.0
  curves = {
    "constant": anytime.constant(peak, warmup_steps=warmup),
    "inverse_sqrt (offset 100)": anytime.inverse_sqrt(peak, offset=100, warmup_steps=warmup),
    "t^-0.3 (offset 100)": anytime.polynomial_decay(peak, 0.3, offset=100, warmup_steps=warmup),
    "cosine to 0.1x": anytime.cosine(peak, total, final_value=0.1, warmup_steps=warmup),
    "linear to 0": anytime.linear_decay(peak, total, warmup_steps=warmup),
  }
  for shape in anytime.schedules.WSD_SHAPES:
    curves[f"wsd {shape} (20% cooldown)"] = anytime.wsd(
      peak, total, decay_steps=200, shape=shape, final_value=0.1, warmup_steps=warmup
    )
  counts = jnp.arange(1200)
  fig, ax = plt.subplots(figsize=(8, 4.5))
  for name, schedule in curves.items():
    ax.plot(counts, schedule(counts), label=name, lw=1.5)
  ax.axvline(total, color="gray", ls=":", lw=1)
  ax.set(xlabel="step (optax count)", ylabel="learning rate / peak", title="anytime.schedules")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def make_problem():
  i = np.arange(1, DIM + 1, dtype=np.float64)
  eigenvalues = i**-CAPACITY
  target = np.sqrt(i**-SOURCE / eigenvalues)
  return jnp.asarray(eigenvalues, jnp.float32), jnp.asarray(target, jnp.float32)


def run_sgd(schedule, steps, rules, eigenvalues, target, seed):
  """Online minibatch SGD from w = 0; returns excess risk per step for each iterate kind."""
  tx = anytime.with_averaging(optax.sgd(schedule), rules)

  def excess_risk(w):
    return 0.5 * jnp.sum(eigenvalues * (w - target) ** 2)

  def step(carry, key):
    w, state = carry
    kx, kn = jax.random.split(key)
    x = jax.random.normal(kx, (BATCH, DIM)) * jnp.sqrt(eigenvalues)
    y = x @ target + jnp.sqrt(NOISE_VARIANCE) * jax.random.normal(kn, (BATCH,))
    grad = x.T @ (x @ w - y) / BATCH
    updates, state = tx.update(grad, state, w)
    w = optax.apply_updates(w, updates)
    risks = {"last": excess_risk(w)}
    risks.update({name: excess_risk(avg) for name, avg in anytime.averaged_params(state).items()})
    return (w, state), risks

  w0 = jnp.zeros(DIM)
  keys = jax.random.split(jax.random.key(seed), steps)
  _, risks = jax.lax.scan(step, (w0, tx.init(w0)), keys)
  return risks


def regression_comparison(out: pathlib.Path) -> str:
  eigenvalues, target = make_problem()
  peaks = jnp.asarray(MULTIPLIERS) / jnp.sum(eigenvalues)
  longest = HORIZONS[-1]
  seeds = jnp.arange(SEEDS)
  rules = {"polyak": anytime.polyak(), "ema25": anytime.proportional_ema(25.0)}

  def over_peaks_and_seeds(make_schedule, steps, rules):
    """Mean over seeds of the risk curves, for every peak step: {kind: [peak, step]}."""
    one = lambda peak, seed: run_sgd(make_schedule(peak), steps, rules, eigenvalues, target, seed)
    runs = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None)))(peaks, seeds)
    # A diverged run has inf/nan risk: it never wins the tuning.
    return {k: np.nan_to_num(np.asarray(v).mean(1), nan=np.inf) for k, v in runs.items()}

  # ONE constant run per peak covers every horizon.
  constant = over_peaks_and_seeds(
    lambda peak: anytime.constant(peak, warmup_steps=WARMUP), longest, rules
  )
  cosine = {
    horizon: over_peaks_and_seeds(
      lambda peak, horizon=horizon: anytime.cosine(
        peak, horizon, final_value=0.1 * peak, warmup_steps=WARMUP
      ),
      horizon,
      {"polyak": anytime.polyak()},
    )["last"]
    for horizon in HORIZONS
  }

  lines = [
    f"Noisy linear regression, d={DIM}, capacity {CAPACITY}, source {SOURCE}, "
    f"sigma^2={NOISE_VARIANCE}, batch {BATCH}, {SEEDS} seeds; every method's peak step tuned per "
    f"horizon over {{{', '.join(f'{m:g}' for m in MULTIPLIERS)}}} / tr(H). Excess risk at the "
    "horizon (lower is better); ratio = method / cosine tuned for that horizon.",
    "",
    "| horizon | tuned cosine | constant (last) | constant+Polyak | constant+EMA25 "
    "| EMA25 / cosine |",
    "|---:|---:|---:|---:|---:|---:|",
  ]
  best = {"cosine": [], "last": [], "polyak": [], "ema25": []}
  for horizon in HORIZONS:
    t = horizon - 1
    best["cosine"].append(cosine[horizon][:, t].min())
    for kind in ("last", "polyak", "ema25"):
      best[kind].append(constant[kind][:, t].min())
    lines.append(
      f"| {horizon} | {best['cosine'][-1]:.3e} | {best['last'][-1]:.3e} "
      f"| {best['polyak'][-1]:.3e} | {best['ema25'][-1]:.3e} "
      f"| {best['ema25'][-1] / best['cosine'][-1]:.2f} |"
    )
  table = "\n".join(lines)

  fig, ax = plt.subplots(figsize=(8, 4.5))
  steps = np.arange(1, longest + 1)
  j = int(np.argmin(constant["ema25"][:, -1]))
  label = f"{MULTIPLIERS[j]:g}/tr(H)"
  ax.loglog(
    steps, constant["last"][j], label=f"constant {label}: last iterate", color="C0", alpha=0.5
  )
  ax.loglog(steps, constant["polyak"][j], label="  + Polyak average", color="C1")
  ax.loglog(steps, constant["ema25"][j], label="  + EMA-25 average", color="C2", lw=2)
  ax.loglog(
    HORIZONS, best["cosine"], "o--", color="C3", label="cosine tuned per horizon (endpoint)"
  )
  ax.set(
    xlabel="step", ylabel="excess risk", title="one anytime run vs a tuned cosine run per horizon"
  )
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out / "regression_anytime_vs_cosine.png", dpi=120)
  plt.close(fig)
  return table


def lm_comparison(out: pathlib.Path, jobs: int) -> str:
  """Runs (or resumes) the ``demo`` sweep under ``out/lm`` and reports it in ``out/lm_report``."""
  root, report_dir = out / "lm", out / "lm_report"
  if sweep_launcher.main(["--sweep=demo", f"--root={root}", f"--jobs={jobs}"]) != 0:
    raise RuntimeError(f"a run of the demo sweep failed: see {root}/*/launcher.log")
  sweep = sweep_common.load_sweep("demo")
  _, text = sweep_report.report(sweep, sweep_common.expand(sweep), str(root), str(report_dir))
  # The per-horizon table is the report's first Markdown table.
  lines = text.splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith("| horizon"))
  end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
  return "\n".join(lines[start:end])


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="out/demo", help="output directory")
  parser.add_argument("--skip_lm", action="store_true", help="leave out the LM comparison (4)")
  parser.add_argument("--jobs", type=int, default=2, help="LM runs at once (4)")
  args = parser.parse_args(argv)
  if args.jobs < 1:
    raise ValueError(f"--jobs={args.jobs} is invalid: expected an integer >= 1.")
  out = pathlib.Path(cli.output_dir("--out", args.out))

  start = time.perf_counter()
  plot_schedules(out / "schedules.png")
  print(f"[1] every schedule: {out / 'schedules.png'}")

  table = regression_comparison(out)
  (out / "regression_table.md").write_text(table + "\n")
  print(f"\n[2] {table}\n\nfigure: {out / 'regression_anytime_vs_cosine.png'}")

  print("\n[3] theory: exact expected risk, anytime vs cosine tuned per horizon\n")
  theory_demo.main(out_dir=str(out / "theory"))

  if not args.skip_lm:
    print("\n[4] language model: one constant+EMA run vs a cosine run per horizon\n")
    table = lm_comparison(out, args.jobs)
    print(f"{table}\n\nreport and figures: {out / 'lm_report'}/report.md, loss_vs_tokens.png")
  print(f"\ndemo done in {time.perf_counter() - start:.0f} s; outputs in {out}/")


if __name__ == "__main__":
  main()
