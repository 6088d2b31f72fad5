"""Figure 2 of Meterez et al. 2026 in miniature: ONE anytime trajectory vs cosine tuned per horizon.

The Figure-2 rule (stated in the ``fig2`` sweep's docstring before its runs): the one constant
trajectory is the constant run and average (lr, b2, EMA gamma) with the lowest MEAN over the
sweep's horizons of (its loss at the horizon - the tuned cosine loss at that horizon), both on
seed ``sweep.seeds[0]``; the inverse-sqrt trajectory likewise over (lr, b2, offset, gamma). A
configuration missing or non-finite at any horizon is not eligible. :func:`trajectory` applies it.

:func:`report` adds to the sweep report (when the sweep has headline seeds, see
:mod:`anytime.sweeps.headline`): the Figure-2 table (``fig2.csv``; loss mean ± SE over the
seeds each configuration has, Δ = paired mean over the seeds both have of method - cosine, ±
std / sqrt(n)), the seed noise of those headline configurations (std of each loss and of
each paired Δ), the best-per-budget table (every report column tuned per horizon), the
equivalent compute of each Δ (:mod:`anytime.sweeps.equivalent_compute`: a fit
L(D) = E + A D^-alpha of the tuned cosine loss vs tokens), ``summary.csv`` and ``fig2.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import statistics

from anytime.sweeps import equivalent_compute as ec
from anytime.sweeps import figures, report

TRAJECTORY_METHODS = ("constant", "inverse_sqrt")
SUMMARY_HEADER = ("method", "horizon", "lr", "grid_min", "grid_max", "seeds", "loss_mean",
                  "delta_mean", "delta_se", "epochs")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Trajectory:
  """The one run and average the Figure-2 rule selects for ``method``."""

  method: str
  lr: float
  b2: float
  offset: float | None
  key: str  # eval-log loss key of the average, e.g. "pema25"
  losses: dict[float, float]  # horizon -> its loss (seed sweep.seeds[0])
  mean_delta: float  # mean over the horizons of (loss - tuned cosine loss)

  @property
  def config(self) -> tuple:
    return (self.lr, self.b2, self.offset, self.key)


def trajectory(results, sweep, method: str) -> Trajectory | None:
  """The Figure-2 trajectory of ``method`` ("constant" | "inverse_sqrt"), or None if no
  configuration has a finite loss at every horizon (or tuned cosine lacks a horizon)."""
  if method not in TRAJECTORY_METHODS:
    raise ValueError(f"method={method!r} is invalid: one of {TRAJECTORY_METHODS}.")
  seed = (sweep.seeds[0],)
  variant = report.Variant("", method, tuple(sweep.averages))
  per_config: dict[tuple, dict[float, float]] = {}
  for h in sweep.horizons:
    cosine = report.select(results, report.COSINE, h, seed)
    if cosine is None:
      return None
    for config, losses in report.candidates(results, variant, h, seed).items():
      per_config.setdefault(config, {})[h] = statistics.fmean(losses) - cosine.loss
  best = None
  for config, deltas in sorted(per_config.items(), key=lambda kv: str(kv[0])):
    if len(deltas) != len(sweep.horizons) or not all(map(math.isfinite, deltas.values())):
      continue  # missing or diverged at some horizon: not one trajectory over all of them
    mean = statistics.fmean(deltas.values())
    if best is None or mean < best[0]:
      best = (mean, config, deltas)
  if best is None:
    return None
  mean, (lr, b2, offset, key), deltas = best
  losses = {h: seed_losses(results, method, (lr, b2, offset, key), h, seed)[seed[0]]
            for h in sweep.horizons}  # fmt: skip
  return Trajectory(method, lr, b2, offset, key, losses, mean)


# --------------------------------------------------------------------------------------------
# Seeds: losses, paired deltas.


def all_seeds(sweep) -> tuple[int, ...]:
  """The sweep's seeds, then its headline and noise seeds (each once)."""
  head = sweep.get("headline")
  seeds = (*sweep.seeds, *(tuple(head.seeds) if head else ()), *sweep.noise.seeds)
  return tuple(dict.fromkeys(seeds))


def seed_losses(results, method, config, horizon, seeds) -> dict[int, float]:
  """seed -> the finite loss of ``method``'s configuration (lr, b2, offset, key) at ``horizon``."""
  lr, b2, offset, key = config
  out = {}
  for run, log in results:
    if run.method != method or run.seed not in seeds or (run.lr, run.b2, run.offset) != (
      lr, b2, offset,
    ):  # fmt: skip
      continue
    step = report._step(run, horizon)
    loss = None if step is None else log.loss(step, key)
    if loss is not None and math.isfinite(loss):
      out[run.seed] = loss
  return dict(sorted(out.items()))


def _std(xs) -> float | None:
  xs = list(xs)
  return statistics.stdev(xs) if len(xs) >= 2 else None


@dataclasses.dataclass(frozen=True)
class Stat:
  """A configuration at one horizon over its seeds, and paired against the tuned cosine."""

  lr: float
  config: tuple  # (lr, b2, offset, key)
  seeds: tuple[int, ...]  # seeds with a finite loss
  loss: float  # mean over them
  loss_std: float | None  # seed-to-seed std of the loss, n >= 2
  delta: float | None  # mean over the seeds both have of (loss - cosine loss)
  delta_std: float | None  # std of those differences, n >= 2
  n: int  # seeds paired

  @property
  def loss_se(self) -> float | None:
    """std / sqrt(n) of the loss, n >= 2."""
    return None if self.loss_std is None else self.loss_std / math.sqrt(len(self.seeds))

  @property
  def delta_se(self) -> float | None:
    """std / sqrt(n) of the paired differences, n >= 2."""
    return None if self.delta_std is None else self.delta_std / math.sqrt(self.n)


def stat(results, method, config, cosine_config, horizon, seeds) -> Stat | None:
  mine = seed_losses(results, method, config, horizon, seeds)
  if not mine:
    return None
  base = seed_losses(results, "cosine", cosine_config, horizon, seeds) if cosine_config else {}
  diffs = [mine[s] - base[s] for s in mine if s in base]
  return Stat(
    config[0], tuple(config), tuple(mine), statistics.fmean(mine.values()), _std(mine.values()),
    statistics.fmean(diffs) if diffs else None, _std(diffs), len(diffs),
  )  # fmt: skip


def _cfg(pick: report.Pick | None) -> tuple | None:
  return None if pick is None else (pick.lr, pick.b2, pick.offset, pick.key)


# --------------------------------------------------------------------------------------------
# The tables.


@dataclasses.dataclass
class Fig2Row:
  horizon: float
  tokens: int
  epochs: float | None
  cosine: Stat | None  # the seed-0 tuned cosine over the seeds it has
  methods: dict[str, Stat | None]  # "constant" | "inverse_sqrt" -> its trajectory's stat
  paper: dict[str, float | None]


PAPER = {"constant": "delta_constant_ema25", "inverse_sqrt": "delta_inverse_sqrt_ema25"}
NAMES = {"constant": "constant LR + EMA", "inverse_sqrt": "inverse-sqrt LR + EMA"}


def epochs(sweep, tokens: int) -> float | None:
  total = int(sweep.get("report_train_tokens", 0) or 0)
  return tokens / total if total > 0 else None


def fig2_rows(results, sweep, rows, trajectories, ref) -> list[Fig2Row]:
  seeds = all_seeds(sweep)
  out = []
  for r in rows:
    cos = _cfg(r.cosine)
    cstat = stat(results, "cosine", cos, cos, r.horizon, seeds) if cos else None
    methods = {
      m: stat(results, m, t.config, cos, r.horizon, seeds) if t else None
      for m, t in trajectories.items()
    }
    paper = {m: (ref or {}).get(float(r.horizon), {}).get(PAPER[m]) for m in trajectories}
    out.append(Fig2Row(r.horizon, r.tokens, epochs(sweep, r.tokens), cstat, methods, paper))
  return out


def law_of(frows) -> ec.Law | None:
  pts = [(f.tokens, f.cosine.loss) for f in frows if f.cosine is not None]
  return ec.fit_law(*zip(*pts, strict=True)) if len(pts) >= 3 else None


def _pm(x, se, fmt="+.4f") -> str:
  return report._num(x, fmt) + ("" if se is None else f" ± {se:.4f}")


def _traj_text(t: Trajectory | None, method: str) -> str:
  if t is None:
    return f"- {NAMES[method]}: no configuration has a finite loss at every horizon (yet)."
  off = f", offset {t.offset:g} steps" if t.offset is not None else ""
  return (f"- {NAMES[method]}: peak LR {t.lr:g}, b2 {t.b2:g}{off}, {figures.key_label(t.key)} "
          f"(`{t.key}`): mean Δ over the horizons {t.mean_delta:+.4f}")  # fmt: skip


def _per_row(frows, trajectories, law):
  """Per row: (row, cosine stat, [(method, trajectory, its stat or None, D_eq/D or None)])."""
  for f in frows:
    c, items = f.cosine, []
    for m, t in trajectories.items():
      s = f.methods[m] if t is not None else None
      items.append(
        (m, t, s, None if s is None else ec.deq_ratio(law, c and c.loss, s.delta, f.tokens))
      )
    yield f, c, items


def markdown_fig2(frows, trajectories, law, sweep) -> str:
  head = ["horizon", "tokens", "epochs", "cosine lr", "cosine loss (n)"]
  for m in trajectories:
    head += [f"{NAMES[m]}: lr, γ", "loss", "Δ ± SE (n)", "D_eq/D", "paper Δ (150M)"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for f, c, items in _per_row(frows, trajectories, law):
    cells = [f"{f.horizon:g}x", report.sc_tokens(f.tokens), report._num(f.epochs, ".3f"),
             "—" if c is None else f"{c.lr:g}",
             "—" if c is None else f"{_pm(c.loss, c.loss_se, '.4f')} ({len(c.seeds)})"]  # fmt: skip
    for m, t, s, r in items:
      cells += ["—"] * 4 if s is None else [
        f"{t.lr:g}, {t.key.removeprefix('pema')}", f"{s.loss:.4f}",
        f"{_pm(s.delta, s.delta_se)} ({s.n})", ec.format_ratio(law, r, f.tokens)]  # fmt: skip
      cells.append(report._num(f.paper.get(m)))
    lines.append("| " + " | ".join(cells) + " |")
  seed = sweep.seeds[0]
  intro = [
    f"## Figure 2: one anytime trajectory vs cosine tuned per horizon (`{sweep.name}`)",
    "",
    f"The Figure-2 rule, on seed {seed}: the one configuration (run and EMA) per method with the "
    "lowest mean over the horizons of its loss minus the tuned cosine loss; a configuration "
    "missing or diverged at any horizon is not eligible. Selected:",
    "",
    *[_traj_text(t, m) for m, t in trajectories.items()],
    "",
    "Cosine: the seed-0 selection at each horizon, loss mean ± SE over the seeds it has (n). "
    "Δ = mean over the seeds both have of (method - cosine) of the same seed, ± std / sqrt(n) "
    "(paired: a seed fixes the init and the data order). D_eq/D: see Equivalent compute; "
    "the paper's Δ are its 150M model's (Figure 2, EMA gamma 25).",
    "",
  ]
  return "\n".join(intro + lines)


def best_per_budget(results, sweep, rows, vs) -> list[tuple[str, list[Stat | None]]]:
  """(column label, per-horizon stat of the report's pick for it) for every report column."""
  seeds = all_seeds(sweep)
  out = []
  for v in vs:
    stats = []
    for r in rows:
      pick, cos = r.picks.get(v.label), _cfg(r.cosine)
      ok = pick is not None
      stats.append(stat(results, v.method, _cfg(pick), cos, r.horizon, seeds) if ok else None)
    out.append((v.label, stats))
  return out


def markdown_noise(frows, trajectories) -> str:
  """Seed noise of the headline configurations: the std over seeds of each loss and of each
  paired Δ (its SE above is that std / sqrt(n))."""
  head = ["horizon", "cosine: loss std (n)"]
  for m in trajectories:
    head += [f"{NAMES[m]}: loss std (n)", "Δ std (n)"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  cosine_stds, delta_stds = [], []

  def cell(x, n):
    return "—" if x is None else f"{x:.4f} ({n})"

  for f in frows:
    c = f.cosine
    cells = [f"{f.horizon:g}x", "—" if c is None else cell(c.loss_std, len(c.seeds))]
    if c is not None and c.loss_std is not None:
      cosine_stds.append(c.loss_std)
    for m, t in trajectories.items():
      s = f.methods[m] if t is not None else None
      cells += ["—", "—"] if s is None else [cell(s.loss_std, len(s.seeds)), cell(s.delta_std, s.n)]
      if s is not None and s.delta_std is not None:
        delta_stds.append(s.delta_std)
    lines.append("| " + " | ".join(cells) + " |")
  intro = ["Seed noise of the headline configurations (std over seeds; a seed fixes the init and "
           "the data order, shared by the methods):", ""]  # fmt: skip
  outro = []
  if cosine_stds and delta_stds and statistics.median(cosine_stds) > 0:
    cos_med, delta_med = statistics.median(cosine_stds), statistics.median(delta_stds)
    outro = ["", f"Median over the horizons: cosine loss std {cos_med:.4f}, paired Δ std "
             f"{delta_med:.4f} nats ({delta_med / cos_med:.2f} x the loss std; unpaired runs "
             f"would give sqrt(2) x = {math.sqrt(2) * cos_med:.4f})."]  # fmt: skip
  return "\n".join([*intro, *lines, *outro, ""])


def markdown_best(best, frows, law) -> str:
  head = ["column (tuned per horizon)"] + [f"{f.horizon:g}x: Δ (D_eq/D)" for f in frows]
  lines = [
    "## Best per budget: every column tuned per horizon vs tuned cosine",
    "",
    "Each column's configuration selected at each horizon (the table above's picks); Δ paired "
    "over the seeds both have (seed 0 only, unless repeated), ± SE when n >= 2.",
    "",
    "| " + " | ".join(head) + " |",
    "|" + "---|" * len(head),
  ]
  for label, stats in best:
    cells = [label]
    for f, s in zip(frows, stats, strict=True):
      if s is None or s.delta is None:
        cells.append("—")
        continue
      r = ec.deq_ratio(law, f.cosine and f.cosine.loss, s.delta, f.tokens)
      cells.append(f"{_pm(s.delta, s.delta_se)} ({ec.format_ratio(law, r, f.tokens)})")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join([*lines, ""])


def _f(x, fmt=".6f") -> str:
  return "" if x is None else (("inf" if math.isinf(x) else format(x, fmt)) if x == x else "nan")


def write_fig2_csv(path, frows, trajectories, law) -> None:
  head = ["horizon", "tokens", "epochs", "cosine_lr", "cosine_loss", "cosine_loss_se",
          "cosine_seeds"]  # fmt: skip
  for m in trajectories:
    head += [f"{m}_{x}" for x in ("lr", "b2", "offset", "key", "loss", "loss_se", "delta",
                                  "delta_se", "n", "deq_ratio", "deq_extrapolated")]  # fmt: skip
    head.append(f"paper_{PAPER[m]}")
  with open(path, "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(head)
    for f, c, items in _per_row(frows, trajectories, law):
      row = [f"{f.horizon:g}", f.tokens, _f(f.epochs, ".4f")]
      row += ["", "", "", ""] if c is None else [
        f"{c.lr:g}", _f(c.loss), _f(c.loss_se), " ".join(map(str, c.seeds))]  # fmt: skip
      for m, t, s, r in items:
        ext = "" if r is None or math.isinf(r) else int(law.extrapolated(r * f.tokens))
        row += [""] * 11 if s is None else [
          f"{t.lr:g}", f"{t.b2:g}", "" if t.offset is None else f"{t.offset:g}", t.key,
          _f(s.loss), _f(s.loss_se), _f(s.delta), _f(s.delta_se), s.n, _f(r, ".4f"),
          ext]  # fmt: skip
        row.append(_f(f.paper.get(m), ".4f"))
      w.writerow(row)


# --------------------------------------------------------------------------------------------
# summary.csv


def _summary_sources(sweep, vs, trajectories):
  """(summary method, run method, variant or None, trajectory or None), in SUMMARY order."""
  by_method = {}
  for v in vs:
    tuned = v.method not in TRAJECTORY_METHODS or tuple(v.keys) == tuple(sweep.averages)
    if tuned and v.method not in by_method:
      by_method[v.method] = v
  out = [("cosine", "cosine", report.COSINE, None)]
  for m, name in (("constant", "constant_ema"), ("inverse_sqrt", "inverse_sqrt_ema")):
    if m in by_method:
      out.append((name, m, by_method[m], None))
    if trajectories.get(m) is not None:
      out.append((f"{name}_fig2", m, None, trajectories[m]))
  for m in ("wsd", "wsd_sqrt", "schedule_free", "cosine_zero", "linear_zero"):
    if m in by_method:
      out.append((m, m, by_method[m], None))
  return out


def summary_rows(results, sweep, rows, vs, trajectories) -> list[list[str]]:
  seeds, seed0 = all_seeds(sweep), (sweep.seeds[0],)
  out = []
  for name, method, variant, traj in _summary_sources(sweep, vs, trajectories):
    for r in rows:
      cos = _cfg(r.cosine)
      if traj is not None:
        config = traj.config
      else:
        config = _cfg(r.cosine if variant is report.COSINE else r.picks.get(variant.label))
      if config is None or cos is None:
        continue
      s = stat(results, method, config, None if name == "cosine" else cos, r.horizon, seeds)
      if s is None:
        continue
      keys = (config[3],) if variant is None else variant.keys
      found = report.candidates(results, report.Variant("", method, keys), r.horizon, seed0)
      # The LRs run at the selected b2 and offset: the grid the selected LR is bracketed in.
      grid = [lr for lr, b2, offset, _ in found if (b2, offset) == config[1:3]] or [config[0]]
      out.append([
        name, f"{r.horizon:g}", f"{config[0]:g}", f"{min(grid):g}", f"{max(grid):g}",
        str(len(s.seeds)), _f(s.loss), _f(s.delta), _f(s.delta_se),
        _f(epochs(sweep, r.tokens), ".4f"),
      ])  # fmt: skip
  return out


def write_summary(path, summary) -> None:
  with open(path, "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(SUMMARY_HEADER)
    w.writerows(summary)


# --------------------------------------------------------------------------------------------
# The whole section (the figure: anytime.sweeps.figures.plot_fig2).


def applies(sweep) -> bool:
  """The Figure-2 part is written for sweeps with headline seeds (e.g. ``fig2``)."""
  head = sweep.get("headline")
  return bool(head and tuple(head.seeds))


def write(out: str, sweep, runs, results, rows, vs, ref) -> str:
  """Writes fig2.csv, summary.csv and fig2.png to ``out``; returns the report.md section."""
  trajectories = {m: trajectory(results, sweep, m) for m in TRAJECTORY_METHODS if sweep[m].enabled}
  frows = fig2_rows(results, sweep, rows, trajectories, ref)
  law = law_of(frows)
  best = best_per_budget(results, sweep, rows, vs)
  write_fig2_csv(os.path.join(out, "fig2.csv"), frows, trajectories, law)
  write_summary(os.path.join(out, "summary.csv"), summary_rows(results, sweep, rows, vs,
                                                                trajectories))  # fmt: skip
  figures.plot_fig2(os.path.join(out, "fig2.png"), sweep, results, rows, frows, trajectories, law)
  parts = [
    "",
    markdown_fig2(frows, trajectories, law, sweep),
    "",
    "![Figure 2](fig2.png)",
    "",
    markdown_noise(frows, trajectories),
    markdown_best(best, frows, law),
    ec.markdown_law(law, frows),
    "Per method and horizon (with the LR grid run there and the seeds averaged): `summary.csv`;"
    " the table above: `fig2.csv`.",
    "",
  ]
  return "\n".join(parts)
