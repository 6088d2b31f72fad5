"""The sweep report's figures, each meant to be read without the report beside it.

Split from :mod:`anytime.sweeps.report` (which selects and tabulates): this module only draws
what the report selected. Every figure says in its title what is compared, labels its axes
with units, names its lines in words ("EMA, gamma 25", not ``pema25``), and fits its axes to
the compared range: x from half the shortest horizon to the longest (the early evaluations at
loss ~7 would otherwise squash the comparison into the bottom of the plot), y to every curve
inside that window, so no curve is clipped.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
from typing import Any

from anytime.sweeps import common as sc

LOSS = "validation loss (nats/token)"
TOKENS = "training tokens (log scale; ticks at the compared horizons)"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _pyplot():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def key_label(key: str) -> str:
  """An eval-log loss key in words: ``pema25`` -> ``EMA, gamma 25``."""
  if key == "raw":
    return "last iterate"
  if key == "polyak":
    return "Polyak average"
  if key == sc.SCHEDULE_FREE_KEY:
    return "Schedule-Free evaluation weights"
  if key.startswith("pema"):
    return f"EMA, gamma {key[4:]}"
  if key.startswith("ema"):
    return f"EMA, decay {key[3:]}"
  return key


def _gamma(key: str) -> float:
  try:
    return float(key[4:]) if key.startswith("pema") else math.inf
  except ValueError:
    return math.inf


def wsd_label(sweep, method: str = "wsd") -> str:
  cooldown = round(100 * (1 - float(sweep.wsd.branch_fraction)))
  shape = "linear" if method == "wsd" else method.removeprefix("wsd_")
  shape = "1-sqrt" if shape == "sqrt" else shape
  return f"WSD, {shape} cooldown {cooldown}%"


def method_label(method: str, sweep) -> str:
  return {
    "constant": "constant LR",
    "inverse_sqrt": "inverse-sqrt LR",
    "wsd": wsd_label(sweep),
    "wsd_sqrt": wsd_label(sweep, "wsd_sqrt"),
    "wsd_cosine": wsd_label(sweep, "wsd_cosine"),
    "cosine_zero": "cosine to 0",
    "linear_zero": "linear to 0",
    "schedule_free": "Schedule-Free AdamW",
    "cosine": "cosine",
  }.get(method, method)


def variant_label(variant, sweep) -> str:
  """A report column in words: ``constant+EMA25`` -> ``constant LR + EMA, gamma 25``."""
  name = method_label(variant.method, sweep)
  if variant.method == "schedule_free":
    return name
  if len(variant.keys) > 1:
    return f"{name} + EMA, best gamma per horizon"
  key = variant.keys[0]
  return f"{name}, last iterate" if key == "raw" else f"{name} + {key_label(key)}"


def _config(run) -> str:
  off = f", offset {run.offset:g} steps" if run.offset is not None else ""
  return f"peak LR {run.lr:g}, b2 {run.b2:g}{off}"


def _human(n: float) -> str:
  for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
    if n >= scale:
      return f"{n / scale:.3g}{unit}"
  return f"{n:.3g}"


def _window(rows) -> tuple[float, float]:
  """Tokens from half the shortest compared horizon to a little past the longest."""
  tokens = [r.tokens for r in rows]
  return 0.5 * min(tokens), 1.1 * max(tokens)


def _horizon_axis(ax, rows) -> None:
  from matplotlib.ticker import NullFormatter

  ax.set_xscale("log")
  ax.set_xlim(*_window(rows))
  ax.set_xticks([r.tokens for r in rows], [f"{_human(r.tokens)}\n{r.horizon:g}x" for r in rows])
  ax.xaxis.set_minor_formatter(NullFormatter())
  ax.set_xlabel(TOKENS + "\n(and in multiples of the Chinchilla-optimal count)", fontsize=8)


def _visible(xs, ys, lo: float, hi: float) -> list[float]:
  """The y values of a line inside [lo, hi], plus its values where it crosses lo and hi."""
  pts = [(x, y) for x, y in zip(xs, ys, strict=True) if x > 0 and math.isfinite(y)]
  out = [y for x, y in pts if lo <= x <= hi]
  for (x0, y0), (x1, y1) in itertools.pairwise(pts):
    for edge in (lo, hi):
      if min(x0, x1) < edge < max(x0, x1):
        f = math.log(edge / x0) / math.log(x1 / x0)  # straight on the log-x axis
        out.append(y0 + f * (y1 - y0))
  return out


def _fit_y(ax, rows) -> None:
  """y limits over every plotted line inside the x window (no curve clipped)."""
  lo, hi = _window(rows)
  ys = [y for line in ax.get_lines() for y in _visible(line.get_xdata(), line.get_ydata(), lo, hi)]
  if ys:
    pad = 0.04 * (max(ys) - min(ys) or 1.0)
    ax.set_ylim(min(ys) - pad, max(ys) + pad)


def _envelope(ax, rows) -> None:
  pts = [(r.tokens, r.cosine.loss) for r in rows if r.cosine is not None]
  if pts:
    ax.plot(*zip(*pts, strict=True), "k-o", ms=4, lw=1.8, label="cosine tuned per horizon")


def _key_colors(log) -> list[tuple[str, Any]]:
  """(loss key, colour) for every curve of one run's eval log: the last iterate grey first, then
  the EMAs light to dark by gamma."""
  keys = sorted({k for e in log.evals.values() for k in e["loss"]})
  averages = sorted((k for k in keys if k != "raw"), key=_gamma)
  colors = _pyplot().cm.viridis(
    [0.15 + 0.7 * i / max(len(averages) - 1, 1) for i in range(len(averages))]
  )
  return [("raw", "0.6")] * ("raw" in keys) + list(zip(averages, colors, strict=True))


def _curves(ax, log) -> None:
  """Every curve of one run's eval log (:func:`_key_colors`)."""
  for key, color in _key_colors(log):
    ax.plot(*log.curve(key), color=color, lw=1.2 if key == "raw" else 1.3, label=key_label(key))


def _branches(run, results, sweep):
  """(branch, its log, colour, legend label or None) for each WSD branch of ``run`` (a constant
  run; none otherwise), each WSD shape labelled once."""
  if run is None or run.method != "constant":
    return
  labelled = set()
  for branch, log in results:
    if sc.section(branch.method) != "wsd" or branch.parent != run.name:
      continue
    method = branch.method
    label = None if method in labelled else f"{wsd_label(sweep, method)} (branches of this run)"
    labelled.add(method)
    yield branch, log, "C3" if method == "wsd" else ("C1" if method == "wsd_sqrt" else "C5"), label


def _wsd_branches(ax, run, results, sweep) -> None:
  """The WSD branches of ``run`` (a constant run): from its loss at the branch to theirs."""
  parent = next((log for r, log in results if run is not None and r.name == run.name), None)
  if parent is None:
    return
  for branch, log, color, label in _branches(run, results, sweep):
    t, y = log.curve("raw")
    start = parent.loss(branch.parent_step, "raw")
    if start is not None:
      t, y = [branch.parent_step * branch.tokens_per_step, *t], [start, *y]
    ax.plot(t, y, "-", color=color, lw=1.6, marker=".", ms=5, label=label)


def _legend(ax, **kw) -> None:
  if ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize=7.5, **kw)


def _run_of(results, method, pick, seed):
  if pick is None:
    return None, None
  return next(
    (rl for rl in results if rl[0].method == method and rl[0].seed == seed
     and (rl[0].lr, rl[0].b2, rl[0].offset) == (pick.lr, pick.b2, pick.offset)), (None, None),
  )  # fmt: skip


def plot_loss_vs_tokens(path, sweep, results, rows, vs) -> None:
  """Per anytime method, its run selected at the longest horizon against tuned cosine."""
  plt = _pyplot()
  tuned = [v for v in vs if v.method in sc.ANYTIME_METHODS]
  logged = {run.method for run, _ in results}
  methods = [m for m in sc.ANYTIME_METHODS if m in logged and any(v.method == m for v in tuned)]
  n = max(len(methods), 1)
  fig, axes = plt.subplots(1, n, figsize=(5.6 * n, 5.0), sharey=True, squeeze=False)
  for ax, method in zip(axes[0], methods, strict=False):
    variant = next(v for v in tuned if v.method == method)
    pick = next((r.picks[variant.label] for r in reversed(rows) if r.picks[variant.label]), None)
    run, log = _run_of(results, method, pick, sweep.seeds[0])
    if log is not None:
      _curves(ax, log)
    _wsd_branches(ax, run, results, sweep)
    _envelope(ax, rows)
    _horizon_axis(ax, rows)
    ax.set_title(f"{method_label(method, sweep)}: {_config(run)}" if run else method, fontsize=9)
    _legend(ax, loc="upper right")
  axes[0][0].set_ylabel(LOSS)
  for ax in axes[0]:
    _fit_y(ax, rows)
  lo = min(ax.get_ylim()[0] for ax in axes[0])
  hi = max(ax.get_ylim()[1] for ax in axes[0])
  axes[0][0].set_ylim(lo, hi)
  fig.suptitle(
    f"Sweep {sweep.name} ({sweep.model}): one anytime run per method (the best at "
    f"{rows[-1].horizon:g}x) vs cosine tuned separately at every horizon"
    if rows
    else f"Sweep {sweep.name}",
    fontsize=10,
  )
  fig.tight_layout()
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def anytime_runs_by_method(results, sweep) -> dict[str, list]:
  """{method: [(run, log), ...]} of the anytime runs of the grid's first seed, each method's runs
  ordered by offset, LR and b2: the panels of ``runs/<method>.png``. The other seeds repeat a
  configuration already drawn (the headline seeds' spread is in the report's tables)."""
  by_method = {}
  for run, log in results:
    if run.method in sc.ANYTIME_METHODS and run.seed == sweep.seeds[0]:
      by_method.setdefault(run.method, []).append((run, log))
  order = lambda rl: (rl[0].offset or 0.0, rl[0].lr, rl[0].b2)
  return {m: sorted(by_method[m], key=order) for m in sc.ANYTIME_METHODS if m in by_method}


def _deltas(xs, ys, cosine: dict) -> tuple[list, list]:
  """The points of a curve at a compared horizon's token count, minus tuned cosine there."""
  pts = [(x, y - cosine[x]) for x, y in zip(xs, ys, strict=True) if x in cosine]
  return [x for x, _ in pts], [d for _, d in pts]


def _run_panel(ax, run, log, results, rows, sweep) -> None:
  """One run against cosine tuned per horizon: loss minus the envelope at each horizon, for its
  last iterate and each average (and a constant run's WSD branches, at their horizons)."""
  cosine = {r.tokens: r.cosine.loss for r in rows if r.cosine is not None}
  for key, color in _key_colors(log):
    ax.plot(*_deltas(*log.curve(key), cosine), "-o", color=color, ms=3, lw=1.2,
            label=key_label(key))  # fmt: skip
  for _, blog, color, label in _branches(run, results, sweep):
    x, d = _deltas(*blog.curve("raw"), cosine)
    ax.plot(x[-1:], d[-1:], "D", color=color, ms=5, label=label)
  ax.axhline(0.0, color="k", lw=1.5, label="cosine tuned per horizon")
  _horizon_axis(ax, rows)


def plot_anytime_runs(directory, results, rows, sweep) -> list[str]:
  """``<directory>/<method>.png`` per anytime method: a panel per run, its loss minus cosine
  tuned per horizon at every compared horizon (last iterate, each average, a constant run's WSD
  branches), so a method's grid of LRs (and offsets) reads side by side at the scale of the
  differences (each panel its own y scale: a low LR's early gap would flatten the others).
  Returns the methods drawn."""
  plt = _pyplot()
  os.makedirs(directory, exist_ok=True)
  groups = anytime_runs_by_method(results, sweep)
  for method, group in groups.items():
    cols = min(4, len(group))
    nrows = math.ceil(len(group) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.3 * cols, 3.3 * nrows), squeeze=False)
    legend = {}
    for ax, (run, log) in zip(axes.flat, group, strict=False):
      _run_panel(ax, run, log, results, rows, sweep)
      ax.set_title(_config(run), fontsize=8.5)
      ax.tick_params(labelsize=7)
      ax.xaxis.label.set_fontsize(6.5)
      legend.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    for ax in axes.flat[len(group) :]:
      ax.set_visible(False)
    for ax in axes[:, 0]:
      ax.set_ylabel("loss - tuned cosine (nats)", fontsize=8)
    fig.suptitle(
      f"{method_label(method, sweep)}: every run of seed {sweep.seeds[0]} against cosine tuned "
      "per horizon (below 0: better; each panel its own y scale)",
      fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.6 / (3.3 * nrows), 1, 1))  # 0.6 in at the bottom: the legend
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=4, fontsize=8)
    fig.savefig(os.path.join(directory, f"{method}.png"), dpi=90, bbox_inches="tight")
    plt.close(fig)
  return list(groups)


def plot_delta_vs_horizon(path, rows, vs, ref, noise_std, sweep) -> None:
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(9.5, 4.8))
  hs = [r.horizon for r in rows]
  for i, v in enumerate(vs):
    d = [r.delta(v.label) for r in rows]
    pts = [(h, x) for h, x in zip(hs, d, strict=True) if x is not None]
    style = dict(color=f"C{i}", marker=MARKERS[i % len(MARKERS)], ms=5)
    if pts:
      ax.plot(*zip(*pts, strict=True), "-", label=variant_label(v, sweep), **style)
    if ref and v.reference:
      rp = [(h, ref[h][v.reference]) for h in hs if h in ref]
      if rp:
        ax.plot(*zip(*rp, strict=True), "--", color=f"C{i}", lw=0.9, alpha=0.7)
  if ref:
    ax.plot([], [], "--", color="0.4", lw=0.9, label="the paper's Figure 2 (dashed, same colour)")
  ax.axhline(0, color="k", lw=0.8)
  if noise_std:
    band = 2 * math.sqrt(2) * noise_std
    ax.axhspan(-band, band, color="0.88", zorder=0, label="±2 std of a seed-to-seed difference")
  ax.set_xscale("log", base=2)
  ax.set_xticks(hs, [f"{h:g}x\n{_human(r.tokens)}" for h, r in zip(hs, rows, strict=True)])
  ax.set_xlabel("horizon (multiples of the Chinchilla-optimal token count; tokens)", fontsize=8)
  ax.set_ylabel("loss minus tuned cosine's (nats/token)")
  ax.set_title(
    f"Sweep {sweep.name} ({sweep.model}): each method's best loss at a horizon minus that of "
    "cosine tuned for it\n(below 0: the method beats tuned cosine)",
    fontsize=9,
  )
  ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
  fig.tight_layout()
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def plot_long_cosine(path, sweep, results, rows) -> None:
  """The paper's Fig. 1: the best longest-horizon cosine run, read at every earlier horizon."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.8))
  longest = rows[-1].cosine if rows else None
  found = None
  if longest is not None:
    found = next(
      (rl for rl in results if rl[0].method == "cosine" and rl[0].horizon == rows[-1].horizon
       and rl[0].seed == sweep.seeds[0] and (rl[0].lr, rl[0].b2) == (longest.lr, longest.b2)),
      None,
    )  # fmt: skip
  if found is not None:
    run, log = found
    label = f"cosine to {run.horizon:g}x ({_config(run)})"
    ax.plot(*log.curve("raw"), color="C3", lw=1.3, label=label)
    pts = [(r.tokens, sc.loss_at_horizon(log, r.horizon, "raw")) for r in rows]
    pts = [p for p in pts if p[1] is not None]
    if pts:
      ax.plot(*zip(*pts, strict=True), "s", color="C3", ms=5, label="... read at each horizon")
  _envelope(ax, rows)
  _horizon_axis(ax, rows)
  _fit_y(ax, rows)
  ax.set_ylabel(LOSS)
  longest_h = f"{rows[-1].horizon:g}x" if rows else "the longest horizon"
  ax.set_title(
    f"Sweep {sweep.name} ({sweep.model}): the cosine tuned for {longest_h}, stopped early,\n"
    "vs a cosine tuned for each shorter horizon (the gap is what anytime schedules recover)",
    fontsize=9,
  )
  _legend(ax, loc="upper right")
  fig.tight_layout()
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def plot_all(out, sweep, results, rows, vs, ref, noise_rows=()) -> None:
  std = statistics.median(n.std for n in noise_rows) if noise_rows else None
  plot_loss_vs_tokens(os.path.join(out, "loss_vs_tokens.png"), sweep, results, rows, vs)
  plot_delta_vs_horizon(os.path.join(out, "delta_vs_horizon.png"), rows, vs, ref, std, sweep)
  plot_long_cosine(os.path.join(out, "long_cosine.png"), sweep, results, rows)
  plot_anytime_runs(os.path.join(out, "runs"), results, rows, sweep)


def _errorbar(ax, pts, **kw) -> None:
  """Points (x, y, se | None) with ±se bars where a standard error exists."""
  if pts:
    xs, ys, es = zip(*pts, strict=True)
    ax.errorbar(xs, ys, yerr=[e or 0.0 for e in es], capsize=3, **kw)


def _fig2_lines(sweep, results, frows, trajectories) -> list[dict]:
  """Per Figure-2 trajectory: its label, colour, seed-0 EMA curve, points and deltas."""
  lines = []
  for i, (m, t) in enumerate(trajectories.items()):
    if t is None:
      continue
    log = next((lg for r, lg in results if (r.method, r.seed, r.lr, r.b2, r.offset)
                == (m, sweep.seeds[0], t.lr, t.b2, t.offset)), None)  # fmt: skip
    stats = [(f, f.methods[m]) for f in frows if f.methods[m] is not None]
    off = f", offset {t.offset:g}" if t.offset is not None else ""
    lines.append({
      "label": f"{method_label(m, sweep)} + {key_label(t.key)} (one run: peak LR {t.lr:g}{off})",
      "color": f"C{2 * i}",
      "curve": log.curve(t.key) if log is not None else ([], []),
      "points": [(f.tokens, s.loss, s.loss_se) for f, s in stats],
      "deltas": [(f.horizon, s.delta, s.delta_se) for f, s in stats if s.delta is not None],
      "paper": [(f.horizon, f.paper[m]) for f in frows if f.paper.get(m) is not None],
    })  # fmt: skip
  return lines


def plot_fig2(path, sweep, results, rows, frows, trajectories, law=None) -> None:
  """Figure 2 (anytime.sweeps.fig2): left, loss vs tokens of cosine tuned per horizon (black
  points, ± SE over seeds) and of each one-run trajectory (its EMA curve, points ± SE at the
  horizons); right, Δ vs horizon (± SE, paired seeds) with the paper's 150M deltas dashed."""
  plt = _pyplot()
  cosine = [(f.tokens, f.cosine.loss, f.cosine.loss_se) for f in frows if f.cosine]
  lines = _fig2_lines(sweep, results, frows, trajectories)
  fig, (left, right) = plt.subplots(1, 2, figsize=(13.5, 5.2))
  for line in lines:
    xs, ys = line["curve"]
    if len(xs):
      left.plot(xs, ys, "-", color=line["color"], lw=1.4, label=line["label"])
    _errorbar(left, line["points"], fmt="o", color=line["color"], ms=4)
  if law is not None:
    lo, hi = min(law.tokens), max(law.tokens)  # the fitted range only
    xs = [lo * (hi / lo) ** (i / 100) for i in range(101)]
    label = f"fit to tuned cosine: E + A D^-alpha (E {law.E:.3f}, alpha {law.alpha:.2f})"
    left.plot(xs, [law.loss(x) for x in xs], ":", color="0.45", lw=1.1, label=label)
  _errorbar(left, cosine, fmt="o", color="k", ms=5, zorder=5,
            label="cosine tuned per horizon (one run per horizon; ± SE over seeds)")  # fmt: skip
  _horizon_axis(left, rows)
  _fit_y(left, rows)
  left.set_ylabel(LOSS)
  left.set_title("validation loss vs training tokens", fontsize=9)
  _legend(left, loc="lower left")  # the losses fall to the right: that corner is free
  hs = [r.horizon for r in rows]
  for line in lines:
    _errorbar(right, line["deltas"], fmt="-o", color=line["color"], ms=4, label=line["label"])
    if line["paper"]:
      ph, pd = zip(*line["paper"], strict=True)
      right.plot(ph, pd, "--", color=line["color"], lw=1.0, alpha=0.75)
  if any(line["paper"] for line in lines):
    right.plot(
      [], [], "--", color="0.4", lw=1.0, label="the paper's 150M model (dashed, same colour)"
    )
  right.axhline(0, color="k", lw=0.8)
  right.set_xscale("log", base=2)
  right.set_xticks(hs, [f"{h:g}x\n{_human(r.tokens)}" for h, r in zip(hs, rows, strict=True)])
  right.set_xlabel("horizon (multiples of the Chinchilla-optimal token count; tokens)", fontsize=8)
  right.set_ylabel("loss minus tuned cosine's, same seed (nats/token)")
  right.set_title(
    "Δ vs tuned cosine (± SE over paired seeds; below 0: the one run wins)", fontsize=9
  )
  _legend(right, loc="best")
  fig.suptitle(
    f"Sweep {sweep.name} ({sweep.model}): ONE constant-LR run and ONE inverse-sqrt run with EMA, "
    "read at every horizon, vs cosine tuned separately for each horizon",
    fontsize=10,
  )
  fig.tight_layout()
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)
