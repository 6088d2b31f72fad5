"""The per-horizon report of a sweep: tuned cosine vs the anytime methods.

    python -m anytime.sweeps.report --sweep=fig2 --root=runs/fig2 --out=results/fig2 \\
        [--reference=FILE.csv --reference_model=150m]

The paper's published Figure 2 numbers ship with the package (``REFERENCE``) and are the
default ``--reference``; ``--reference=''`` leaves them out.

Reads every run's eval log (anytime.sweeps.common.read_eval_log) and writes to
``--out``: ``report.md`` (the table, the selected hyper-parameters, ours beside
the paper's, seed-to-seed noise, compute), ``table.csv``, ``noise.csv``,
``compute.csv``, three figures (``loss_vs_tokens.png``,
``delta_vs_horizon.png``, ``long_cosine.png``) and ``runs/<method>.png``, the
curves of every anytime run (a panel each); the figures are drawn by :mod:`anytime.sweeps.figures`.
A sweep with headline seeds (``fig2``) also gets the Figure-2 sections, ``fig2.csv``,
``summary.csv`` and ``fig2.png`` (:mod:`anytime.sweeps.fig2`).

Selection, as in the paper: at each horizon, the tuned cosine loss is the
minimum over the cosine runs of that horizon (peak LR x b2) of their final
validation loss; an anytime method's loss is the minimum over its runs (peak
LR x b2 x offset) and its averages (EMA gamma) of the loss evaluated at that
horizon's step of the single long run; WSD's is the minimum over its branches
of that horizon. Delta = method - tuned cosine (negative: the method is better).
Configurations repeated with several ``sweep.seeds`` are averaged over them;
``noise.seeds`` repeats serve only the noise table.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import statistics

from anytime import cli
from anytime.sweeps import common as sc
from anytime.sweeps import figures

# The paper's published Figure 2 numbers (Meterez et al. 2026, arXiv 2602.03702): the tuned
# cosine loss and each anytime method's difference from it, per model and horizon. Shipped with
# the package so the comparison rebuilds anywhere.
REFERENCE = os.path.join(
  os.path.dirname(os.path.abspath(__file__)), "reference", "paper_fig2_losses.csv"
)


@dataclasses.dataclass(frozen=True)
class Variant:
  """A column of the table: which runs, and which of their losses, compete."""

  label: str
  method: str
  keys: tuple[str, ...]  # eval-log loss keys: "raw", averages, "schedule_free"
  reference: str = ""  # column of the paper's table with the same quantity


@dataclasses.dataclass(frozen=True)
class Pick:
  """The best configuration of a variant at one horizon."""

  loss: float
  lr: float
  b2: float
  offset: float | None
  key: str
  seeds: int  # seeds averaged


def variants(sweep) -> list[Variant]:
  """The compared columns of ``sweep`` (enabled methods only)."""
  avg, main = tuple(sweep.averages), sweep.main_average
  gamma = main.removeprefix("pema")
  out = []
  if sweep.constant.enabled:
    out += [
      Variant("constant+EMA (tuned)", "constant", avg),
      Variant(f"constant+EMA{gamma}", "constant", (main,), "delta_constant_ema25"),
      Variant("constant (last iterate)", "constant", ("raw",)),
    ]
  if sweep.inverse_sqrt.enabled:
    out += [
      Variant("inverse-sqrt+EMA (tuned)", "inverse_sqrt", avg),
      Variant(f"inverse-sqrt+EMA{gamma}", "inverse_sqrt", (main,), "delta_inverse_sqrt_ema25"),
    ]
  for shape in tuple(sweep.wsd.shapes) if sweep.wsd.enabled else ():
    name = "WSD" if shape == "linear" else f"WSD {shape}"
    ref = "delta_wsd_last_iterate" if shape == "linear" else ""
    out.append(Variant(f"{name} (last iterate)", sc.wsd_method(shape), ("raw",), ref))
  if sweep.schedule_free.enabled:
    out.append(Variant("Schedule-Free", "schedule_free", (sc.SCHEDULE_FREE_KEY,)))
  for schedule in tuple(sweep.to_zero.schedules) if sweep.to_zero.enabled else ():
    method = sc.TO_ZERO[schedule]
    out.append(Variant(f"{method.replace('_zero', '')} to 0 (tuned)", method, ("raw",)))
  return out


COSINE = Variant("cosine (tuned)", "cosine", ("raw",), "cosine_loss")


# --------------------------------------------------------------------------------------------
# Selection.


def _step(run: sc.Run, horizon: float) -> int | None:
  """The step of ``run`` at which ``horizon`` is scored, or None if the run does not cover it."""
  if run.method in sc.HORIZON_BOUND_METHODS:  # only the run's own end
    return run.total_steps if run.horizon == horizon else None
  step = round(horizon * run.steps_per_chinchilla)
  return step if step <= run.total_steps else None


def candidates(results, variant: Variant, horizon: float, seeds) -> dict[tuple, list[float]]:
  """(lr, b2, offset, key) -> the losses of its seeds in ``seeds`` at ``horizon``."""
  out: dict[tuple, list[float]] = {}
  for run, log in results:
    if run.method != variant.method or run.seed not in seeds:
      continue
    step = _step(run, horizon)
    if step is None:
      continue
    for key in variant.keys:
      loss = log.loss(step, key)
      if loss is not None:
        out.setdefault((run.lr, run.b2, run.offset, key), []).append(loss)
  return out


def select(results, variant: Variant, horizon: float, seeds) -> Pick | None:
  """The configuration with the lowest (seed-averaged) loss; diverged ones never win."""
  best = None
  for (lr, b2, offset, key), losses in candidates(results, variant, horizon, seeds).items():
    loss = statistics.fmean(losses)
    if not math.isfinite(loss):
      continue
    if best is None or loss < best.loss:
      best = Pick(loss, lr, b2, offset, key, len(losses))
  return best


@dataclasses.dataclass
class Row:
  horizon: float
  tokens: int
  cosine: Pick | None
  picks: dict[str, Pick | None]  # variant label -> pick

  def delta(self, label: str) -> float | None:
    pick = self.picks.get(label)
    if pick is None or self.cosine is None:
      return None
    return pick.loss - self.cosine.loss


def table(results, sweep, runs) -> list[Row]:
  """One row per horizon of the sweep."""
  seeds = tuple(sweep.seeds)
  tokens_per_chinchilla = runs[0].steps_per_chinchilla * runs[0].tokens_per_step
  rows = []
  for h in sweep.horizons:
    picks = {v.label: select(results, v, h, seeds) for v in variants(sweep)}
    rows.append(Row(h, round(h * tokens_per_chinchilla), select(results, COSINE, h, seeds), picks))
  return rows


# --------------------------------------------------------------------------------------------
# Seed-to-seed noise and compute.


@dataclasses.dataclass(frozen=True)
class Noise:
  method: str
  config: str
  key: str
  horizon: float
  losses: tuple[float, ...]

  @property
  def std(self) -> float:
    return statistics.stdev(self.losses)


def _config(lr, b2, offset) -> str:
  off = f" offset {offset:g}" if offset is not None else ""
  return f"lr {lr:g} b2 {b2:g}{off}"


def noise(results, sweep) -> list[Noise]:
  """Every (configuration, key, horizon) evaluated with >= 2 seeds."""
  seeds = tuple(sweep.seeds) + tuple(sweep.noise.seeds)
  out = []
  for method in sc.RUN_METHODS:
    keys = ("raw",) if method in sc.HORIZON_BOUND_METHODS else ("raw", sweep.main_average)
    if method == "schedule_free":
      keys = (sc.SCHEDULE_FREE_KEY,)
    for h in sweep.horizons:
      found = candidates(results, Variant("", method, keys), h, seeds)
      for (lr, b2, offset, key), losses in sorted(found.items(), key=str):
        finite = [x for x in losses if math.isfinite(x)]
        if len(finite) >= 2:
          out.append(Noise(method, _config(lr, b2, offset), key, h, tuple(finite)))
  return out


def compute(runs, sweep) -> list[dict]:
  """Training FLOPs each method spends to cover every horizon (its whole grid, seeds excluded).

  WSD is charged its constant runs plus its branches. ``single`` is one
  configuration: one cosine run per horizon vs one anytime run (+ WSD branches).
  """
  primary = [r for r in runs if r.seed in tuple(sweep.seeds)]
  seed0 = sweep.seeds[0]

  def flops(rs):
    return sum(r.train_flops for r in rs)

  out = []
  for method in sc.RUN_METHODS:
    own = [r for r in primary if r.method == method]
    if not own:
      continue
    wsd = sc.section(method) == "wsd"
    charged = own + ([r for r in primary if r.method == "constant"] if wsd else [])
    one = [r for r in own if r.seed == seed0]
    key = (one[0].lr, one[0].b2, one[0].offset)
    one = [r for r in one if (r.lr, r.b2, r.offset) == key]
    if wsd:
      one += [r for r in primary if r.method == "constant" and (r.lr, r.b2) == key[:2]][:1]
    out.append(
      {
        "method": method,
        "runs": len(charged),
        "tokens": sum(r.trained_tokens for r in charged),
        "flops": flops(charged),
        "single_config_flops": flops(one),
      }
    )
  cosine = next((c for c in out if c["method"] == "cosine"), None)
  for c in out:
    c["vs_cosine"] = c["flops"] / cosine["flops"] if cosine else float("nan")
    c["single_vs_cosine"] = (
      c["single_config_flops"] / cosine["single_config_flops"] if cosine else float("nan")
    )
  return out


# --------------------------------------------------------------------------------------------
# Output.


def read_reference(path: str, model: str) -> dict[float, dict[str, float]]:
  """horizon -> {column: value} of the paper's table for ``model``."""
  with open(path) as f:
    rows = [r for r in csv.DictReader(f) if r["model"] == model]
  if not rows:
    raise ValueError(f"--reference_model={model!r}: no such model in {path}.")
  return {
    float(r["horizon_x_chinchilla"]): {
      k: float(v) for k, v in r.items() if k.startswith(("c", "d"))
    }
    for r in rows
  }


def _num(x: float | None, fmt: str = "+.4f") -> str:
  return "—" if x is None or not math.isfinite(x) else format(x, fmt)


def _pick_text(p: Pick | None) -> str:
  if p is None:
    return "—"
  key = "" if p.key in ("raw",) else f" {p.key}"
  return _config(p.lr, p.b2, p.offset) + key


def markdown_table(rows: list[Row], labels: list[str]) -> str:
  head = ["horizon", "tokens", "cosine (tuned)"] + [f"Δ {label}" for label in labels]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    cells = [f"{r.horizon:g}x", sc_tokens(r.tokens), _num(r.cosine and r.cosine.loss, ".4f")]
    cells += [_num(r.delta(label)) for label in labels]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def sc_tokens(n: int) -> str:
  for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
    if n >= scale:
      return f"{n / scale:.3g}{unit}"
  return str(n)


def markdown_picks(rows: list[Row], labels: list[str]) -> str:
  head = ["horizon", "cosine", *labels]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    cells = [f"{r.horizon:g}x", _pick_text(r.cosine)] + [_pick_text(r.picks[x]) for x in labels]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def markdown_reference(rows: list[Row], vs: list[Variant], ref) -> str:
  cols = [v for v in [COSINE, *vs] if v.reference]
  head = ["horizon"]
  for v in cols:
    name = "cosine loss" if v is COSINE else f"Δ {v.label}"
    head += [f"{name} (paper)", f"{name} (ours)"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    cells = [f"{r.horizon:g}x"]
    paper = ref.get(float(r.horizon), {})
    for v in cols:
      ours = r.cosine.loss if (v is COSINE and r.cosine) else r.delta(v.label)
      fmt = ".4f" if v is COSINE else "+.4f"
      cells += [_num(paper.get(v.reference), fmt), _num(ours, fmt)]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def write_csvs(out: str, rows: list[Row], labels, noise_rows, compute_rows) -> None:
  with open(os.path.join(out, "table.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["horizon", "tokens", "variant", "loss", "delta", "lr", "b2", "offset", "key", "n"])
    for r in rows:
      for label, p in [("cosine (tuned)", r.cosine)] + [(x, r.picks[x]) for x in labels]:
        if p is None:
          w.writerow([r.horizon, r.tokens, label, "", "", "", "", "", "", 0])
          continue
        delta = 0.0 if p is r.cosine else r.delta(label)  # None: no tuned cosine at r.horizon yet
        w.writerow(
          [r.horizon, r.tokens, label, f"{p.loss:.6f}", "" if delta is None else f"{delta:.6f}",
           p.lr, p.b2,
           "" if p.offset is None else p.offset, p.key, p.seeds]
        )  # fmt: skip
  with open(os.path.join(out, "noise.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["method", "config", "key", "horizon", "n", "std", "losses"])
    for n in noise_rows:
      losses = " ".join(f"{x:.5f}" for x in n.losses)
      w.writerow([n.method, n.config, n.key, n.horizon, len(n.losses), f"{n.std:.6f}", losses])
  with open(os.path.join(out, "compute.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(compute_rows[0]))
    w.writeheader()
    w.writerows(compute_rows)


def markdown(sweep, runs, results, rows, vs, noise_rows, compute_rows, ref, ref_model) -> str:
  from anytime.sweeps import fig2  # builds on this module's selection

  labels = [v.label for v in vs]
  found = {r.name for r, _ in results}
  done = sum(1 for _, log in results if log.done)
  missing = [r.name for r in runs if r.name not in found]
  parts = [
    f"# Sweep `{sweep.name}`: tuned cosine vs anytime schedules",
    "",
    f"Model preset `{sweep.model}`, {sc_tokens(runs[0].params)} non-embedding params, "
    f"1x Chinchilla = {runs[0].steps_per_chinchilla:,} steps x {runs[0].tokens_per_step:,} "
    f"tokens. Runs: {len(runs)} in the sweep, {len(found)} with an eval log, {done} finished"
    + (
      f"; missing: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}" if missing else ""
    )
    + ".",
    "",
    "Validation loss (nats/token) of the tuned cosine at each horizon, and Δ = method - "
    "tuned cosine (negative: better), each selected per horizon by minimum validation loss "
    "over its grid (peak LR, b2, offset, EMA gamma).",
    "",
    markdown_table(rows, labels),
    "",
    "Selected hyper-parameters:",
    "",
    markdown_picks(rows, labels),
  ]
  if ref is not None:
    parts += ["", f"Ours beside the paper's ({ref_model}, Fig. 2):", ""]
    parts.append(markdown_reference(rows, vs, ref))
  parts += ["", "## Seed-to-seed noise", ""]
  if noise_rows:
    parts += [
      "| method | config | loss key | horizon | seeds | std | losses |",
      "|---|---|---|---|---|---|---|",
    ]
    for n in noise_rows:
      losses = ", ".join(f"{x:.4f}" for x in n.losses)
      parts.append(
        f"| {n.method} | {n.config} | {n.key} | {n.horizon:g}x | {len(n.losses)} | "
        f"{n.std:.4f} | {losses} |"
      )
    med = statistics.median(n.std for n in noise_rows)
    parts += ["", f"Median seed std {med:.4f} nats: a Δ smaller than ~{2 * math.sqrt(2) * med:.4f}"
              " (2 x the std of a difference of two runs) is within noise."]  # fmt: skip
  elif fig2.applies(sweep):
    parts.append("No `noise.seeds` repeats in this sweep: the headline configurations' seed "
                 "noise is under Figure 2 below.")  # fmt: skip
  else:
    parts.append("No configuration was run with two or more seeds.")
  parts += ["", "## Compute (training FLOPs, evaluation excluded; noise seeds excluded)", ""]
  parts += [
    "| method | runs | tokens | FLOPs | x cosine grid | one config | x one cosine per horizon |",
    "|---|---|---|---|---|---|---|",
  ]
  for c in compute_rows:
    parts.append(
      f"| {c['method']} | {c['runs']} | {sc_tokens(c['tokens'])} | {c['flops']:.3g} | "
      f"{c['vs_cosine']:.2f} | {c['single_config_flops']:.3g} | {c['single_vs_cosine']:.2f} |"
    )
  parts += [
    "",
    "WSD is charged its constant runs plus its branches.",
    "",
    "![loss vs tokens](loss_vs_tokens.png)",
    "![delta vs horizon](delta_vs_horizon.png)",
    "![long cosine vs envelope](long_cosine.png)",
    "",
    f"Every anytime run of seed {sweep.seeds[0]} (last iterate and each average), a panel per "
    "run and a figure per method:",
    "",
    *(f"![{m} runs](runs/{m}.png)" for m in figures.anytime_runs_by_method(results, sweep)),
    "",
  ]
  return "\n".join(parts)


def results_of(runs, root: str) -> list[tuple[sc.Run, sc.EvalLog]]:
  """(run, eval log) of every run that has one."""
  out = []
  for run in runs:
    log = sc.read_eval_log(sc.workdir(root, run))
    if log is not None:
      out.append((run, log))
  return out


def report(sweep, runs, root: str, out: str, *, reference: str = "", reference_model: str = ""):
  """Writes the report of ``sweep`` under ``root`` to ``out``; returns the table rows."""
  results = results_of(runs, root)
  if not results:
    raise ValueError(f"--root={root!r}: none of the sweep's {len(runs)} runs has an eval log.")
  ref = read_reference(reference, reference_model) if reference else None
  vs = variants(sweep)
  rows = table(results, sweep, runs)
  noise_rows = noise(results, sweep)
  compute_rows = compute(runs, sweep)
  os.makedirs(out, exist_ok=True)
  write_csvs(out, rows, [v.label for v in vs], noise_rows, compute_rows)
  text = markdown(sweep, runs, results, rows, vs, noise_rows, compute_rows, ref, reference_model)
  from anytime.sweeps import fig2  # builds on this module's selection

  if fig2.applies(sweep):  # Figure 2: one trajectory per method, headline seeds, summary.csv
    from anytime.sweeps import headline

    text += fig2.write(out, sweep, runs, results, rows, vs, ref) + headline.drift(sweep, runs, root)
  with open(os.path.join(out, "report.md"), "w") as f:
    f.write(text)
  figures.plot_all(out, sweep, results, rows, vs, ref, noise_rows)
  return rows, text


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--sweep", required=True, help="NAME or FILE.py:NAME (anytime/configs/sweeps.py)")
  p.add_argument("--root", default="", help="directory of the runs (default runs/<sweep name>)")
  p.add_argument("--out", default="", help="output directory (default <root>/report)")
  p.add_argument("--reference", default=REFERENCE, help="the paper's table ('' for none)")
  p.add_argument("--reference_model", default="", help="its model (default: the sweep's, or 150m)")
  args = p.parse_args(argv)
  sweep = sc.load_sweep(args.sweep)
  root = os.path.abspath(args.root or os.path.join("runs", sweep.name))
  cli.input_dir("--root", root)
  from anytime.sweeps import bracket  # bracket builds on this module's selection

  sweep = bracket.load(sweep, root)  # the grid as grown by --bracket (bracket.json), if any
  out = cli.output_dir("--out", args.out or os.path.join(root, "report"))
  if args.reference and not os.path.isfile(args.reference):
    raise ValueError(f"--reference={args.reference!r} is not a file.")
  model = args.reference_model or (sweep.model if sweep.model in ("150m", "300m") else "150m")
  from anytime.sweeps import headline

  runs = sc.expand(sweep)
  runs += headline.load(sweep, root, runs)  # the headline seed runs, once recorded
  _, text = report(sweep, runs, root, out, reference=args.reference, reference_model=model)
  print(text)
  print(f"written to {out}")
  return 0


if __name__ == "__main__":
  cli.run(main)
