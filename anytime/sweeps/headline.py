"""Headline seeds: repeat the headline configurations of a finished grid with more seeds.

    python -m anytime.sweeps --sweep=fig2 --root=R --headline           # selection + commands
    python -m anytime.sweeps --sweep=fig2 --root=R --headline --jobs=2  # run the seed runs

The headline configurations are the tuned cosine selected at each horizon and the Figure-2
trajectories of the constant and inverse-sqrt runs (:func:`anytime.sweeps.fig2.trajectory`; their
averages come from the same runs), all selected on ``sweep.seeds[0]``. Each is repeated with every
seed of ``sweep.headline.seeds``: the same run (overrides and all) with only the seed changed, so a
run name is ``cosine_h4_lr0.0226_b0.95_s1``. Paired across methods: a seed fixes the init and the
data order, so the report states Δ as a mean of per-seed differences.

The selection needs every grid run of cosine, constant and inverse-sqrt finished; it is then
recorded once in ``<root>/headline.json`` (``{"sweep", "configs": [{"method", "horizon", "lr",
"b2", "offset", "key"}]}``), so later reads give the same runs even if more grid runs finish.
Once it exists, the launcher's other modes (``--status``, ``--print``, ``--dry``, local runs) and
the report include the headline runs (:func:`load`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

from anytime.sweeps import common as sc
from anytime.sweeps import fig2, report, runlogs

FILE = "headline.json"
DEPENDS = ("cosine", "constant", "inverse_sqrt")  # the methods the selection reads
# Launcher flags --headline replaces or ignores: refused rather than silently dropped.
NOT_WITH = ("dry", "print", "array_file", "status", "collect", "only", "summary_only",
            "tokens_per_s", "bracket", "max_bracket_rounds")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Config:
  method: str  # one of DEPENDS
  horizon: float  # the run's horizon (Chinchilla multiples)
  lr: float
  b2: float
  offset: float | None  # inverse_sqrt only
  key: str  # the selected loss key ("raw" for cosine, an average for the trajectories)

  @property
  def config_key(self) -> tuple:
    return (self.method, self.horizon, self.lr, self.b2, self.offset)


def seeds(sweep) -> tuple[int, ...]:
  """``sweep.headline.seeds``, checked (ValueError naming the field)."""
  head = sweep.get("headline")
  values = tuple(head.seeds) if head else ()
  bad = [s for s in values if isinstance(s, bool) or not isinstance(s, int) or s < 0]
  if bad or len(set(values)) != len(values) or set(values) & set(sweep.seeds):
    raise ValueError(
      f"sweep.headline.seeds={values!r} is invalid: distinct integers >= 0, none of "
      f"sweep.seeds={tuple(sweep.seeds)}."
    )
  return values


def _methods(sweep) -> tuple[str, ...]:
  return tuple(m for m in DEPENDS if sweep[m].enabled)


def select(sweep, runs, root: str) -> list[Config]:
  """The headline configurations of the finished grid (ValueError while it is unfinished)."""
  grid = [r for r in runs if r.method in _methods(sweep)]
  left = [r.name for r in grid if sc.run_state(root, r) != "done"]
  if left:
    raise ValueError(
      f"--headline: {len(left)} grid run(s) of {', '.join(_methods(sweep))} are not finished "
      f"(e.g. {left[0]}); the headline configurations are selected on the finished grid."
    )
  results = report.results_of(grid, root)
  seed0 = sweep.seeds[0]
  out = []
  for h in sweep.horizons:
    pick = report.select(results, report.COSINE, h, (seed0,))
    if pick is None:
      raise ValueError(f"--headline: no finite tuned-cosine loss at {h:g}x (seed {seed0}).")
    out.append(Config("cosine", float(h), pick.lr, pick.b2, None, "raw"))
  for m in _methods(sweep)[1:]:
    t = fig2.trajectory(results, sweep, m)
    if t is None:
      raise ValueError(f"--headline: no {m} configuration is finite at every horizon.")
    run = next(r for r in grid if r.method == m and r.seed == seed0 and (r.lr, r.b2, r.offset)
               == (t.lr, t.b2, t.offset))  # fmt: skip
    out.append(Config(m, run.horizon, t.lr, t.b2, t.offset, t.key))
  return out


def _bad(path: str, why: str):
  raise ValueError(f"{path} is invalid: {why}; fix or delete it.")


def read(root: str, sweep) -> list[Config] | None:
  """The recorded selection (None if there is none); one ValueError naming a corrupt file."""
  path = os.path.join(root, FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"{path} cannot be read as JSON ({e}); fix or delete it.") from None
  if not isinstance(data, dict) or not isinstance(data.get("configs"), list):
    _bad(path, "expected an object with a 'configs' list")
  if data.get("sweep") != sweep.name:
    _bad(path, f"written for sweep {data.get('sweep')!r}, not {sweep.name!r}")
  out = []
  fields = {f.name for f in dataclasses.fields(Config)}
  for item in data["configs"]:
    if not isinstance(item, dict) or set(item) != fields:
      _bad(path, f"config {item!r} must have exactly the fields {sorted(fields)}")
    nums = [item["horizon"], item["lr"], item["b2"]] + (
      [] if item["offset"] is None else [item["offset"]]
    )
    if item["method"] not in DEPENDS or not isinstance(item["key"], str) or not all(
      isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x >= 0
      for x in nums
    ):  # fmt: skip
      _bad(path, f"config {item!r}: method one of {DEPENDS}, numbers >= 0, a key string")
    off = None if item["offset"] is None else float(item["offset"])
    cfg = (float(item["horizon"]), float(item["lr"]), float(item["b2"]), off, item["key"])
    out.append(Config(item["method"], *cfg))
  return out


def write(root: str, sweep, configs) -> str:
  path = os.path.join(root, FILE)
  os.makedirs(root, exist_ok=True)
  data = {"sweep": sweep.name, "configs": [dataclasses.asdict(c) for c in configs]}
  runlogs.write_atomic(path, json.dumps(data, indent=1) + "\n")
  return path


def runs_of(sweep, configs, grid, root: str = FILE) -> list[sc.Run]:
  """The runs of ``configs`` with every headline seed (grid runs of those names left out)."""
  by_key = {r.config_key: r for r in grid if r.seed == sweep.seeds[0]}
  names = {r.name for r in grid}
  n = len(tuple(sweep.lm_overrides))
  out = []
  for c in configs:
    base = by_key.get(c.config_key)
    if base is None:
      raise ValueError(f"{os.path.join(root, FILE)}: {c} is not a run of sweep {sweep.name!r}.")
    for s in seeds(sweep):
      run = sc._run(sweep, c.method, c.horizon, c.lr, c.b2, s, offset=c.offset,
                    extra=base.overrides[n:])  # fmt: skip
      if run.name not in names:
        names.add(run.name)
        out.append(run)
  return out


def record(sweep, grid, root: str) -> list[Config]:
  """The recorded selection, or the grid's, recorded now (once)."""
  configs = read(root, sweep)
  if configs is None:
    configs = select(sweep, grid, root)
    write(root, sweep, configs)
  return configs


def runs(sweep, root: str) -> list[sc.Run]:
  """The headline seed runs of ``sweep`` under ``root`` (selected and recorded if need be)."""
  grid = sc.expand(sweep)
  return runs_of(sweep, record(sweep, grid, root), grid, root)


def drift(sweep, runs, root: str) -> str:
  """A report note when the recorded selection (headline.json) is no longer the grid's, e.g.
  the grid grew after --headline: the seed runs then repeat other configurations than the
  tables select, and their paired differences are not the headline's."""
  recorded = read(root, sweep) if seeds(sweep) else None
  if not recorded:
    return ""
  try:
    current = select(sweep, [r for r in runs if r.seed in tuple(sweep.seeds)], root)
  except ValueError as e:
    return f"\n**Headline selection not re-checked**: {e}\n"
  changed = [f"{a.method}{f' {a.horizon:g}x' if a.method == 'cosine' else ''}: recorded "
             f"lr {a.lr:g} {a.key}, the grid now selects lr {b.lr:g} {b.key}"
             for a, b in zip(recorded, current, strict=False) if a != b]  # fmt: skip
  if not changed:
    return ""
  return ("\n**The recorded headline selection differs from the grid's** (rerun --headline on a "
          "fresh headline.json to pair the new picks): " + "; ".join(changed) + ".\n")  # fmt: skip


def load(sweep, root: str, grid=None) -> list[sc.Run]:
  """The headline runs once ``<root>/headline.json`` exists, else []; never writes."""
  configs = read(root, sweep) if seeds(sweep) else None
  if not configs:
    return []
  return runs_of(sweep, configs, sc.expand(sweep) if grid is None else grid, root)


def refuse(args, flag: str, others, does: str) -> None:
  """ValueError if ``--flag`` is given with any of the flags ``others`` (names, no dashes)."""
  given = [f"--{k}" for k in others if getattr(args, k)]
  if getattr(args, flag) and given:
    raise ValueError(f"--{flag} does not combine with {', '.join(given)}: {does}")


def check_args(args) -> None:
  does = "it prints the selection and the commands of its seed runs, or runs them with --jobs=N."
  refuse(args, "headline", NOT_WITH, does)


def table(configs) -> str:
  lines = [f"{'method':<13} {'horizon':>7} {'lr':>8} {'b2':>5} {'offset':>7} key"]
  for c in configs:
    off = "—" if c.offset is None else f"{c.offset:g}"
    lines.append(f"{c.method:<13} {c.horizon:>6g}x {c.lr:>8g} {c.b2:>5g} {off:>7} {c.key}")
  return "\n".join(lines)


def main(sweep, grid, root: str, *, run_fn=None, print_fn=print, commands=None) -> int:
  """``--headline``: record (once) and print the selection, then print the seed runs'
  ``commands(runs)`` or, with ``run_fn(runs, root)`` (the launcher's), run them."""
  if not seeds(sweep):
    raise ValueError(f"--headline: sweep {sweep.name!r} has no headline seeds (headline.seeds).")
  configs = record(sweep, grid, root)
  extra = runs_of(sweep, configs, grid, root)
  print_fn(f"# headline configurations ({os.path.join(root, FILE)}), seeds {seeds(sweep)}:")
  print_fn(table(configs))
  if run_fn is None:
    print_fn(f"# {len(extra)} headline run(s) (--headline --jobs=N runs them):")
    if extra and commands is not None:
      print_fn(commands(extra))
    return 0
  outcome = run_fn(extra, root)
  print_fn(", ".join(f"{k}: {len(v)}" for k, v in outcome.items()))
  return 1 if outcome["failed"] else 0
