"""Auto-bracketing: grow a sweep's peak-LR grid until every selected LR is interior.

    python -m anytime.sweeps --sweep=150m --root=R --bracket           # status + extra commands
    python -m anytime.sweeps --sweep=mini --root=R --bracket --jobs=2  # run rounds until bracketed

A tuned baseline is only tuned if its best LR is not at the end of what was run: an optimum at
the grid's edge may lie beyond it, and the report's deltas would then compare against a
mis-tuned method. This module reads the finished runs' eval logs and, for every column of the
report (:func:`anytime.sweeps.report.variants`, plus the tuned cosine) and every horizon, takes
the configuration the report selects (:func:`report.select`, the same rule, not a copy of it).
If its peak LR is the smallest or the largest LR run at that horizon (for its b2 and offset), the
next point of the sqrt(2) grid beyond it is proposed; with a single LR, both sides are. The
inverse-sqrt offset is bracketed the same way on the offsets' own geometric grid. Inverse-sqrt
is a 2-D grid (LR x offset), so its points are single (lr, offset) runs: an LR point at the
selected offset, an offset point at the selected LR (``inverse_sqrt.pairs``), not a new row or
column of the grid (which would cost one run per LR or per offset already run). In a sweep
with headline seeds, the Figure-2 trajectories (ONE constant and ONE inverse-sqrt run for all
horizons, :func:`anytime.sweeps.fig2.trajectory`) are bracketed too.

The anytime methods (constant, inverse_sqrt, schedule_free) cover every horizon with one run,
so a point proposed at any horizon is one more run of theirs. A cosine run serves one horizon,
so cosine points are added at their horizon only (``cosine.horizon_lrs``): a 1x edge must not
buy a 32x cosine run. A WSD point also adds its constant parent run.

Points are kept in ``<root>/bracket.json`` and applied to the sweep's own fields by :func:`load`
whenever the launcher reads that root, so ``--status``, ``--print``, ``--array_file`` and the
runs themselves see one grid, and the added runs get the ordinary run names.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import json
import math
import os

from anytime.sweeps import common as sc
from anytime.sweeps import fig2, report, runlogs

FILE = "bracket.json"
STEP = math.sqrt(2)  # the peak-LR grid: neighbours differ by a factor sqrt(2)
DIGITS = 3  # significant digits of an added LR: the same point always gets the same run name
STATUSES = ("interior", "edge-low", "edge-high", "edge-both", "diverged", "waiting")


@dataclasses.dataclass(frozen=True)
class Point:
  """One added grid point: a peak LR of ``method`` (cosine: at ``horizon`` only); for
  inverse-sqrt, one (lr, offset) run (an ``offset`` alone: that offset at every LR of the grid,
  as bracket.json files written before the pairs mean)."""

  method: str
  lr: float | None = None
  offset: float | None = None
  horizon: float | None = None  # cosine only

  def as_json(self) -> dict:
    return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass(frozen=True)
class Row:
  """Where one report column stands at one horizon, on one axis (lr or offset)."""

  label: str  # the report's column, e.g. "constant+EMA (tuned)"
  method: str
  horizon: float
  axis: str  # "lr" | "offset"
  selected: float | None
  low: float | None  # the grid run around the selection
  high: float | None
  status: str  # one of STATUSES
  adds: tuple[Point, ...]


def grid_lr(x: float) -> float:
  return float(f"{x:.{DIGITS}g}")


def offset_ratio(offsets) -> float:
  """The ratio of the offsets' geometric grid (2 with a single offset)."""
  xs = sorted(offsets)
  if len(xs) < 2:
    return 2.0
  return float(f"{(xs[-1] / xs[0]) ** (1 / (len(xs) - 1)):.{DIGITS}g}")


# --------------------------------------------------------------------------------------------
# bracket.json and the sweep it extends.


def _positive(path: str, what: str, v) -> float:
  if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
    raise ValueError(f"{path}: {what}={v!r} is invalid: expected a number > 0.")
  return float(v)


def parse(data, sweep, path: str = FILE) -> list[Point]:
  """The points of a bracket.json document, each checked against ``sweep``."""
  if not isinstance(data, dict) or not isinstance(data.get("points"), list):
    raise ValueError(f"{path}: expected an object with a 'points' list.")
  if data.get("sweep") != sweep.name:
    raise ValueError(f"{path}: written for sweep {data.get('sweep')!r}, not {sweep.name!r}.")
  points = []
  for item in data["points"]:
    if not isinstance(item, dict) or set(item) - {"method", "lr", "offset", "horizon"}:
      raise ValueError(f"{path}: point {item!r} is invalid: expected method, lr|offset, horizon.")
    m = item.get("method")
    if m not in sc.RUN_METHODS or not sweep[sc.section(m)].enabled:
      raise ValueError(f"{path}: point {item!r}: method must be an enabled method of the sweep.")
    if ("offset" in item and m != "inverse_sqrt") or not ({"lr", "offset"} & set(item)):
      raise ValueError(f"{path}: point {item!r}: expected an lr, or an offset of inverse_sqrt.")
    if ("horizon" in item) != (m == "cosine"):
      raise ValueError(f"{path}: point {item!r}: a horizon is given for cosine points only.")
    if m == "cosine" and item["horizon"] not in tuple(sweep.horizons):
      raise ValueError(f"{path}: point {item!r}: horizon not one of {tuple(sweep.horizons)}.")
    lr = _positive(path, "lr", item["lr"]) if "lr" in item else None
    off = _positive(path, "offset", item["offset"]) if "offset" in item else None
    h = float(item["horizon"]) if "horizon" in item else None
    points.append(Point(m, lr, off, h))
  return points


def read(root: str, sweep) -> list[Point]:
  """The points of ``<root>/bracket.json`` ([] if there is none); ValueError if corrupt."""
  path = os.path.join(root, FILE)
  if not os.path.exists(path):
    return []
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"{path} cannot be read as JSON ({e}); fix or delete it.") from None
  return parse(data, sweep, path)


def write(root: str, sweep, points) -> str:
  path = os.path.join(root, FILE)
  os.makedirs(root, exist_ok=True)
  data = {"sweep": sweep.name, "points": [p.as_json() for p in points]}
  runlogs.write_atomic(path, json.dumps(data, indent=1) + "\n")
  return path


def _lrs(s, method) -> tuple:
  sec = s[sc.section(method)]
  return tuple(sec.lrs) + tuple(sec.get("extra_lrs", ()))


def present(s, p: Point) -> bool:
  """``p`` is already on the grid of sweep ``s``."""
  if p.offset is not None and p.lr is not None:
    grid = p.lr in _lrs(s, "inverse_sqrt") and p.offset in tuple(s.inverse_sqrt.offsets)
    return grid or (p.lr, p.offset) in tuple(s.inverse_sqrt.get("pairs", ()))
  if p.offset is not None:
    return p.offset in tuple(s.inverse_sqrt.offsets)
  if p.method == "cosine":
    at = [lr for h, lr in s.cosine.get("horizon_lrs", ()) if h == p.horizon]
    extra = s.cosine.extra_lrs if p.horizon <= s.cosine.extra_lrs_max_horizon else ()
    return p.lr in tuple(s.cosine.lrs) + tuple(extra) + tuple(at)
  return p.lr in _lrs(s, p.method)


def apply(sweep, points):
  """A copy of ``sweep`` with ``points`` added to its own fields (then :func:`sc.expand` makes
  their runs with the ordinary names); points already on the grid change nothing."""
  s = copy.deepcopy(sweep)
  for p in points:
    if present(s, p):
      continue
    if p.offset is not None and p.lr is not None:
      s.inverse_sqrt.pairs = (*tuple(s.inverse_sqrt.get("pairs", ())), (p.lr, p.offset))
    elif p.offset is not None:
      s.inverse_sqrt.offsets = (*s.inverse_sqrt.offsets, p.offset)
    elif p.method == "cosine":
      s.cosine.horizon_lrs = (*tuple(s.cosine.get("horizon_lrs", ())), (p.horizon, p.lr))
    else:
      sec = s[sc.section(p.method)]
      sec.lrs = (*sec.lrs, p.lr)
    if sc.section(p.method) == "wsd" and p.lr not in _lrs(s, "constant"):
      s.constant.lrs = (*s.constant.lrs, p.lr)  # the branches' parent run
  return s


def load(sweep, root: str):
  """``sweep`` as grown by ``<root>/bracket.json`` (itself if there is none)."""
  points = read(root, sweep)
  return apply(sweep, points) if points else sweep


# --------------------------------------------------------------------------------------------
# Status and proposals.


def _columns(sweep) -> list[report.Variant]:
  return [report.COSINE, *report.variants(sweep)]


def _edge(selected, grid) -> str:
  below, above = any(x < selected for x in grid), any(x > selected for x in grid)
  return {(True, True): "interior", (True, False): "edge-high", (False, True): "edge-low"}.get(
    (below, above), "edge-both"
  )


def _around(selected, grid) -> tuple[float, float]:
  below = [x for x in grid if x < selected]
  above = [x for x in grid if x > selected]
  return (max(below) if below else selected), (min(above) if above else selected)


def _lr_points(method, h, lr, status, offset=None) -> tuple[Point, ...]:
  """The LR points beyond ``lr`` (inverse-sqrt: at the selected ``offset``)."""
  at = float(h) if method == "cosine" else None
  out = []
  if status in ("edge-low", "edge-both", "diverged"):
    out.append(Point(method, lr=grid_lr(lr / STEP), offset=offset, horizon=at))
  if status in ("edge-high", "edge-both"):
    out.append(Point(method, lr=grid_lr(lr * STEP), offset=offset, horizon=at))
  return tuple(out)


def _offset_points(offset, status, ratio, lr) -> tuple[Point, ...]:
  """The inverse-sqrt offsets beyond ``offset``, each at the selected ``lr``."""
  out = []
  if status in ("edge-low", "edge-both"):
    out.append(Point("inverse_sqrt", lr=lr, offset=float(max(1, round(offset / ratio)))))
  if status in ("edge-high", "edge-both"):
    out.append(Point("inverse_sqrt", lr=lr, offset=float(round(offset * ratio))))
  return tuple(out)


def status(sweep, runs, root: str) -> list[Row]:
  """A row per (report column, horizon, axis): the selected LR (offset), its grid neighbours,
  the status and the points that would bracket it. A method with an unfinished run waits."""
  states = {r.name: sc.run_state(root, r) for r in runs}
  done = [r for r in runs if states[r.name] == "done"]
  results = report.results_of(done, root)
  seeds = tuple(sweep.seeds)
  ratio = offset_ratio(sweep.inverse_sqrt.offsets) if sweep.inverse_sqrt.enabled else 2.0
  rows = []
  for v in _columns(sweep):
    own = [r for r in runs if r.method == v.method]
    waiting = any(states[r.name] != "done" for r in own)
    axes = ("lr", "offset") if v.method == "inverse_sqrt" else ("lr",)
    for h in sweep.horizons:
      if not any(report._step(r, h) is not None for r in own):
        continue  # the method does not run to this horizon (e.g. to_zero's few horizons)
      if waiting:
        rows += [Row(v.label, v.method, h, a, None, None, None, "waiting", ()) for a in axes]
        continue
      at = [r for r in done if r.method == v.method and r.seed in seeds]
      at = [r for r in at if report._step(r, h) is not None]
      pick = report.select(results, v, h, seeds)
      if pick is None:  # every configuration diverged (or none is logged): go lower
        low = min((r.lr for r in at), default=None)
        adds = _lr_points(v.method, h, low, "diverged") if low else ()
        rows.append(Row(v.label, v.method, h, "lr", None, low, None, "diverged", adds))
        continue
      rows += _pick_rows(v.label, v.method, h, pick, at, axes, ratio)
  if fig2.applies(sweep):
    rows += _trajectory_rows(sweep, runs, states, results, ratio)
  return rows


def _trajectory_rows(sweep, runs, states, results, ratio) -> list[Row]:
  """The Figure-2 trajectories (one run for all horizons, :func:`fig2.trajectory`): their LR
  and offset must be interior too. Shown at the last horizon; they wait for cosine as well."""
  rows, h = [], max(sweep.horizons)
  for method in fig2.TRAJECTORY_METHODS:
    if not sweep[method].enabled:
      continue
    label = f"{fig2.NAMES[method]} (Figure 2)"
    axes = ("lr", "offset") if method == "inverse_sqrt" else ("lr",)
    own = [r for r in runs if r.method in (method, "cosine")]
    t = None if any(states[r.name] != "done" for r in own) else fig2.trajectory(
      results, sweep, method)  # fmt: skip
    if t is None:  # unfinished runs, or no configuration finite at every horizon yet
      rows += [Row(label, method, h, a, None, None, None, "waiting", ()) for a in axes]
      continue
    same = [r for r in runs if r.method == method and r.seed == sweep.seeds[0]]
    rows += _pick_rows(label, method, h, t, same, axes, ratio)
  return rows


def _pick_rows(label, method, h, pick, runs, axes, ratio) -> list[Row]:
  """The rows of one selection ``pick`` (anything with lr, b2, offset): its LR against the LRs
  of ``runs`` at its b2 and offset, and (inverse-sqrt) its offset against their offsets at its
  LR and b2, with the points that would bracket each."""
  grid = {r.lr for r in runs if (r.b2, r.offset) == (pick.b2, pick.offset)}
  st = _edge(pick.lr, grid)
  rows = [Row(label, method, h, "lr", pick.lr, *_around(pick.lr, grid), st,
              _lr_points(method, h, pick.lr, st, pick.offset))]  # fmt: skip
  if "offset" in axes:
    grid = {r.offset for r in runs if (r.lr, r.b2) == (pick.lr, pick.b2)}
    st = _edge(pick.offset, grid)
    rows.append(Row(label, method, h, "offset", pick.offset, *_around(pick.offset, grid), st,
                    _offset_points(pick.offset, st, ratio, pick.lr)))  # fmt: skip
  return rows


def proposals(rows, sweep) -> list[Point]:
  """The distinct points of ``rows`` not yet on ``sweep``'s grid, in row order."""
  out = []
  for row in rows:
    for p in row.adds:
      if p not in out and not present(sweep, p):
        out.append(p)
  return out


def _num(x) -> str:
  return "—" if x is None else f"{x:g}"


def _point(p: Point) -> str:
  if p.offset is not None:
    return (f"lr {p.lr:g} " if p.lr is not None else "") + f"offset {p.offset:g}"
  return f"lr {p.lr:g}" + (f" at {p.horizon:g}x" if p.horizon is not None else "")


def table(rows) -> str:
  """The status as text: one line per (column, horizon, axis)."""
  head = f"{'column':<33} {'horizon':>7} {'axis':<6} {'selected':>9} {'below':>9} {'above':>9}"
  lines = [head + f"  {'status':<10} adds"]
  for r in rows:
    adds = ", ".join(_point(p) for p in r.adds) or "—"
    lines.append(
      f"{r.label:<33} {r.horizon:>6g}x {r.axis:<6} {_num(r.selected):>9} {_num(r.low):>9} "
      f"{_num(r.high):>9}  {r.status:<10} {adds}"
    )
  counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
  lines.append("; ".join(f"{n} {s}" for s, n in counts.items() if n))
  return "\n".join(lines)


def extra_runs(sweep, points) -> list[sc.Run]:
  """The runs ``points`` add to ``sweep`` (those of the grown sweep it does not have yet)."""
  have = {r.name for r in sc.expand(sweep)}
  return [r for r in sc.expand(apply(sweep, points)) if r.name not in have]


def run_rounds(base, root: str, *, run_fn, max_rounds: int, log=print) -> int:
  """Runs the sweep (``run_fn(runs, root, refill=...)`` -> the launcher's outcome dict), adding
  the proposed points to bracket.json and running them, until nothing is proposed or a method
  has had ``max_rounds`` rounds of points. 1 if a run failed, else 0.

  Rounds overlap: whenever a job slot would sit idle, ``refill`` (:func:`run_local`'s) proposes
  from the methods whose runs have all finished (a method with a run still going waits, as in
  :func:`status`), so one method's next points start while another's last runs are still going.
  Only a method's own finished runs decide its points, so the grid grown is the same as with
  strict rounds (``run_fn`` may ignore ``refill``); only the order of the runs differs."""
  rounds = collections.Counter()  # rounds of points added per method, in this call

  def grow(s, new) -> list[Point]:
    ok = [p for p in new if rounds[p.method] < max_rounds]
    if ok:
      rounds.update({p.method for p in ok})
      path = write(root, s, read(root, base) + ok)
      log(f"bracket: round {max(rounds[p.method] for p in ok)} adds "
          f"{', '.join(f'{p.method} {_point(p)}' for p in ok)} -> {path}")  # fmt: skip
    return ok

  def refill() -> list[sc.Run]:
    try:
      s = load(base, root)
      new = proposals(status(s, sc.expand(s), root), s)
    except Exception as e:  # jobs are running: raised again below, once none is left
      log(f"bracket: no new points while jobs run ({type(e).__name__}: {e})")
      return []
    return extra_runs(s, grow(s, new))

  while True:
    s = load(base, root)
    outcome = run_fn(sc.expand(s), root, refill=refill)
    if outcome["failed"]:
      log(f"bracket: stopped, {len(outcome['failed'])} run(s) failed: {outcome['failed'][:3]}")
      return 1
    s = load(base, root)  # with the points refill added (their runs ran in run_fn's call)
    rows = status(s, sc.expand(s), root)
    log(table(rows))
    new = proposals(rows, s)
    if not new:
      waiting = sum(r.status == "waiting" for r in rows)
      log(f"bracket: no point to add after {max(rounds.values(), default=0)} round(s)" + (
        f"; {waiting} row(s) wait for unfinished runs" if waiting else
        "; every selected LR and offset is interior"))  # fmt: skip
      return 0
    if not grow(s, new):
      log(f"bracket: --max_bracket_rounds={max_rounds} reached; not added: "
          + ", ".join(f"{p.method} {_point(p)}" for p in new))  # fmt: skip
      return 0
