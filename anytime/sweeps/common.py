"""What the launcher and the report share: a sweep, checked, and expanded into its runs.

- :func:`load_sweep` reads anytime/configs/sweeps.py, :func:`validate_sweep` checks every field
  (ValueError naming the field, its value and what is allowed) before anything runs.
- :func:`expand` turns a sweep into :class:`Run` s with stable names; each knows its
  configs/lm.py argument, its ``--config.FIELD=VALUE`` overrides, its steps, tokens
  and training FLOPs (computed by the trainer's own planning code, no allocation).
- What the runs did on disk (eval logs, run states) is :mod:`anytime.sweeps.runlogs`; its names
  are re-exported here.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
import os
import sysconfig
from typing import Any

import ml_collections

# The eval log and the state of a run moved to anytime.sweeps.runlogs; kept importable here, the
# name every caller (launcher, report, experiments.laws_lm) reads them by.
from anytime.sweeps.runlogs import (  # noqa: F401
  LOCK,
  STALE_SECONDS,
  STATES,
  EvalLog,
  finite,
  loss_at_horizon,
  parent_ready,
  progress_step,
  read_eval_log,
  run_state,
  workdir,
)

# The shipped configs (anytime/configs), found from the installed package, not from a checkout.
CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
# The sweep's sections (each has enabled, lrs, b2s).
METHODS = ("cosine", "constant", "inverse_sqrt", "wsd", "schedule_free", "to_zero")
# The runs' methods: a WSD branch is "wsd" (linear cooldown) or "wsd_<shape>"; the to_zero section
# runs cosine and linear decay to 0 ("cosine_zero", "linear_zero") at a few horizons.
RUN_METHODS = (
  "cosine", "constant", "inverse_sqrt", "wsd", "wsd_sqrt", "wsd_cosine", "schedule_free",
  "cosine_zero", "linear_zero",
)  # fmt: skip
SECTION = {
  "wsd_sqrt": "wsd",
  "wsd_cosine": "wsd",
  "cosine_zero": "to_zero",
  "linear_zero": "to_zero",
}
SCHEDULE = {
  "wsd_sqrt": "wsd",
  "wsd_cosine": "wsd",
  "cosine_zero": "cosine",
  "linear_zero": "linear_decay",
}
TO_ZERO = {"cosine": "cosine_zero", "linear_decay": "linear_zero"}  # to_zero.schedules -> method
ANYTIME_METHODS = ("constant", "inverse_sqrt", "schedule_free")  # one run covers every horizon
# Scored only at the run's own end (every LR depends on the horizon).
HORIZON_BOUND_METHODS = tuple(m for m in RUN_METHODS if m not in ANYTIME_METHODS)


def section(method: str) -> str:
  """The sweep section a run method's grid lives in (``wsd_sqrt`` -> ``wsd``)."""
  return SECTION.get(method, method)


def wsd_method(shape: str) -> str:
  return "wsd" if shape == "linear" else f"wsd_{shape}"


# The eval-log loss key of Schedule-Free's eval params (the trainer must write it; see
# docs/sweeps.md). Every other method is scored on "raw" and on its averages.
SCHEDULE_FREE_KEY = "schedule_free"


def _load_module(path: str, name: str):
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@functools.lru_cache(maxsize=1)
def lm_configs():
  """The shipped LM config module (anytime/configs/lm.py)."""
  from anytime.configs import lm

  return lm


def load_sweep(spec: str) -> ml_collections.ConfigDict:
  """``"150m"`` (a shipped sweep) or ``"FILE.py:ARG"`` (a sweep file of your own) -> the sweep."""
  path, _, arg = spec.rpartition(":") if ":" in spec else ("", "", spec)
  path = path or os.path.join(CONFIGS_DIR, "sweeps.py")
  if not os.path.isfile(path):
    raise ValueError(f"sweep={spec!r}: {path!r} is not a file; expected NAME or FILE.py:NAME.")
  return _load_module(path, "anytime_configs_sweeps").get_config(arg)


# --------------------------------------------------------------------------------------------
# Validation.


def _fail(field: str, value: Any, allowed: str):
  raise ValueError(f"sweep.{field}={value!r} is invalid: {allowed}.")


def _numbers(field: str, values, ok, allowed: str, *, empty_ok: bool = False) -> None:
  if not isinstance(values, tuple | list) or (not values and not empty_ok):
    _fail(field, values, "expected a non-empty tuple" if not empty_ok else "expected a tuple")
  for v in values:
    if isinstance(v, bool) or not isinstance(v, int | float) or not ok(v):
      _fail(field, values, allowed)
  if len(set(values)) != len(values):
    _fail(field, values, "values must be distinct")


def parse_override(item: str) -> tuple[str, str]:
  if not isinstance(item, str) or "=" not in item:
    _fail("lm_overrides", item, "each entry must be a 'FIELD=VALUE' string")
  key, value = item.split("=", 1)
  return key.strip(), value.strip()


def validate_sweep(s) -> None:
  """Raises ValueError naming the first field that cannot work."""
  from anytime import optim, schedules

  if not isinstance(s.name, str) or not s.name or not s.name.replace("_", "").isalnum():
    _fail("name", s.name, "expected a non-empty name of letters, digits and _")
  presets = lm_configs().PRESETS
  if s.model not in presets:
    _fail("model", s.model, f"one of the configs/lm.py presets {sorted(presets)}")
  _numbers("horizons", s.horizons, lambda h: h > 0, "Chinchilla multiples > 0")
  if list(s.horizons) != sorted(s.horizons):
    _fail("horizons", s.horizons, "must be increasing")
  _numbers("seeds", s.seeds, lambda x: isinstance(x, int) and x >= 0, "integers >= 0")
  for item in s.lm_overrides:
    key, _ = parse_override(item)
    if key.split(".")[0] in ("horizon", "horizons", "init_from", "init_from_step", "seed"):
      _fail("lm_overrides", item, f"{key!r} is set per run by the launcher")
  if not s.averages:
    _fail("averages", s.averages, "the anytime runs need at least one average")
  try:
    optim.parse_averages(tuple(s.averages))
  except ValueError as e:
    _fail("averages", s.averages, str(e))
  if s.main_average not in s.averages:
    _fail("main_average", s.main_average, f"one of sweep.averages {tuple(s.averages)}")
  positive = lambda x: x > 0
  enabled = [m for m in METHODS if s[m].enabled]
  if "cosine" not in enabled:
    _fail("cosine.enabled", False, "the comparison needs the tuned cosine baseline")
  for m in enabled:
    _numbers(f"{m}.lrs", s[m].lrs, positive, "peak learning rates > 0")
    _numbers(f"{m}.b2s", s[m].b2s, lambda b: 0 <= b < 1, "AdamW beta2 values in [0, 1)")
  _numbers("cosine.extra_lrs", s.cosine.extra_lrs, positive, "learning rates > 0", empty_ok=True)
  for m in ("cosine", "constant"):
    extra = tuple(s[m].get("extra_lrs", ()))
    _numbers(f"{m}.extra_lrs", extra, positive, "learning rates > 0", empty_ok=True)
    if set(extra) & set(s[m].lrs):
      _fail(f"{m}.extra_lrs", extra, f"must not repeat {m}.lrs")
    if extra and not any(h <= s[m].extra_lrs_max_horizon for h in s.horizons):
      _fail(f"{m}.extra_lrs_max_horizon", s[m].extra_lrs_max_horizon, "at least one horizon")
  if s.inverse_sqrt.enabled:
    _numbers("inverse_sqrt.offsets", s.inverse_sqrt.offsets, positive, "offsets (steps) > 0")
  if s.wsd.enabled:
    if not s.constant.enabled:
      _fail("wsd.enabled", True, "WSD branches from the constant runs: enable constant")
    parents = {"lrs": _constant_lrs(s), "b2s": tuple(s.constant.b2s)}
    for field in ("lrs", "b2s"):
      if not set(s.wsd[field]) <= set(parents[field]):
        _fail(f"wsd.{field}", s.wsd[field], f"a subset of constant.{field} {parents[field]}")
    if not 0 < s.wsd.branch_fraction < 1:
      _fail("wsd.branch_fraction", s.wsd.branch_fraction, "in (0, 1)")
    shapes = tuple(s.wsd.shapes)
    if not shapes or len(set(shapes)) < len(shapes) or set(shapes) - set(schedules.WSD_SHAPES):
      _fail("wsd.shapes", shapes, f"distinct values of {schedules.WSD_SHAPES}, at least one")
  if s.to_zero.enabled:
    if not s.to_zero.horizons or set(s.to_zero.horizons) - set(s.horizons):
      _fail("to_zero.horizons", s.to_zero.horizons, f"some of sweep.horizons={s.horizons}")
    allowed = tuple(TO_ZERO)
    if not s.to_zero.schedules or set(s.to_zero.schedules) - set(allowed):
      _fail("to_zero.schedules", s.to_zero.schedules, f"some of {allowed}")
  _validate_noise(s, enabled)


def _validate_noise(s, enabled) -> None:
  n = s.noise
  _numbers("noise.seeds", n.seeds, lambda x: isinstance(x, int) and x >= 0, "ints", empty_ok=True)
  if set(n.seeds) & set(s.seeds):
    _fail("noise.seeds", n.seeds, f"must differ from sweep.seeds={s.seeds}")
  if not n.seeds:
    return
  for h in n.horizons:
    if h not in s.horizons:
      _fail("noise.horizons", n.horizons, f"each one of sweep.horizons={s.horizons}")
  for m in n.methods:
    if m not in enabled or m in ("wsd", "to_zero"):
      allowed = tuple(x for x in enabled if x not in ("wsd", "to_zero"))
      _fail("noise.methods", n.methods, f"each one of the enabled methods {allowed}")
    if n.lr not in tuple(s[m].lrs) + (tuple(s.cosine.extra_lrs) if m == "cosine" else ()):
      _fail("noise.lr", n.lr, f"one of {m}.lrs={s[m].lrs}")
    if n.b2 not in s[m].b2s:
      _fail("noise.b2", n.b2, f"one of {m}.b2s={s[m].b2s}")


# --------------------------------------------------------------------------------------------
# Runs.


@dataclasses.dataclass(frozen=True)
class Run:
  """One trainer invocation of a sweep."""

  name: str  # stable, unique in the sweep; its workdir is <root>/<name>
  method: str  # one of RUN_METHODS
  horizon: float  # the run's length in Chinchilla multiples
  lr: float
  b2: float
  seed: int
  offset: float | None  # inverse_sqrt only
  lm_arg: str  # the configs/lm.py argument
  overrides: tuple[tuple[str, str], ...]  # --config.FIELD=VALUE, in order
  parent: str | None  # WSD: the constant run it branches from ...
  parent_step: int | None  # ... at this step
  start_step: int  # 0, or parent_step for a branch
  total_steps: int
  steps_per_chinchilla: int
  tokens_per_step: int
  flops_per_token: int  # training FLOPs per token (6N + attention), as the trainer reports
  params: int  # non-embedding parameters
  supported: bool  # False: the trainer cannot run this method yet (Schedule-Free)

  @property
  def trained_steps(self) -> int:
    return self.total_steps - self.start_step

  @property
  def trained_tokens(self) -> int:
    return self.trained_steps * self.tokens_per_step

  @property
  def train_flops(self) -> float:
    return float(self.trained_tokens) * self.flops_per_token

  @property
  def config_key(self) -> tuple:
    """The hyper-parameters that make a configuration (everything except the seed)."""
    return (self.method, self.horizon, self.lr, self.b2, self.offset)

  def command(self, root: str, python: str = "python", module: str = "anytime.lm") -> list[str]:
    cmd = [python, "-m", module, f"--config=configs/lm.py:{self.lm_arg}"]
    cmd.append(f"--workdir={os.path.join(root, self.name)}")
    for key, value in self.overrides:
      if key == "init_from":
        value = os.path.join(root, value)
      cmd.append(f"--config.{key}={value}")
    return cmd


def _fmt(x: float) -> str:
  return f"{x:g}"


def run_name(method, horizon, lr, b2, seed, offset=None) -> str:
  """E.g. ``cosine_h4_lr0.001_b0.95_s0``, ``inverse_sqrt_o51200_h32_lr0.003_b0.99_s1``."""
  off = f"_o{_fmt(offset)}" if offset is not None else ""
  return f"{method}{off}_h{_fmt(horizon)}_lr{_fmt(lr)}_b{_fmt(b2)}_s{seed}"


def _resolve(value: str) -> str:
  return value.replace("<stdlib>", sysconfig.get_paths()["stdlib"])


def _coerce(key: str, value: str, current: Any) -> Any:
  """``value`` parsed like ml_collections' config_flags parses ``--config.KEY=value``."""
  try:
    if isinstance(current, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError
      return value.lower() in ("true", "1")
    if isinstance(current, int):
      return int(value)
    if isinstance(current, float):
      return float(value)
    if isinstance(current, tuple):
      parsed = ast.literal_eval(value)
      return tuple(parsed) if isinstance(parsed, tuple | list) else (parsed,)
  except (ValueError, SyntaxError):
    _fail("lm_overrides", f"{key}={value}", f"cannot parse as {type(current).__name__}")
  return value


def lm_config(lm_arg: str, overrides) -> ml_collections.ConfigDict:
  """The trainer config a run gets: configs/lm.py's ``get_config(lm_arg)`` plus overrides."""
  cfg = lm_configs().get_config(lm_arg)
  for key, value in overrides:
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
      if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
        _fail("lm_overrides", f"{key}={value}", f"configs/lm.py has no field {key!r}")
      node = node[p]
    if parts[-1] not in node:
      _fail("lm_overrides", f"{key}={value}", f"configs/lm.py has no field {key!r}")
    node[parts[-1]] = _coerce(key, value, node[parts[-1]])
  return cfg


@functools.lru_cache(maxsize=64)
def _model_numbers(model_cfg) -> tuple[int, int]:
  from anytime.lm import model as model_lib

  return model_lib.param_counts(model_cfg)["non_embedding"], model_lib.flops_per_token(model_cfg)


@functools.lru_cache(maxsize=4096)
def _plan(lm_arg: str, overrides: tuple, method: str):
  """(plan, flops per token, non-embedding params), validating the optimizer config."""
  from anytime import optim
  from anytime.lm import train

  cfg = lm_config(lm_arg, overrides)
  supported = cfg.opt.schedule in optim.SCHEDULES
  if not supported:  # plan it as a constant-LR run: same steps, tokens and FLOPs
    cfg.opt.schedule = "constant"
  try:
    mcfg = train.model_config(cfg)
    params, flops = _model_numbers(mcfg)
    plan = train.make_plan(cfg, params)
    optim.validate(cfg.opt, plan.total_steps)
  except ValueError as e:
    raise ValueError(f"{method} run {lm_arg!r}: {e}") from None
  return plan, flops, params, supported


def _run(s, method, horizon, lr, b2, seed, *, offset=None, extra=(), parent=None, branch=None):
  schedule = SCHEDULE.get(method, method)
  lm_arg = f"model={s.model},schedule={schedule},horizon={_fmt(horizon)},lr={lr!r},b2={b2!r}"
  lm_arg += f",seed={seed}"
  overrides = tuple((k, _resolve(v)) for k, v in map(parse_override, s.lm_overrides))
  overrides += tuple(extra)
  plan, flops, params, supported = _plan(lm_arg, overrides, method)
  start = 0
  if branch is not None:
    start = round(branch * plan.steps_per_chinchilla)
    # The decay length exactly as anytime.optim.make_schedule computes it from the override.
    decay = max(1, round(float(dict(overrides)["opt.wsd_decay_fraction"]) * plan.total_steps))
    if start != plan.total_steps - decay or start < 1:
      _fail(
        "wsd.branch_fraction",
        s.wsd.branch_fraction,
        f"at horizon {horizon:g} the branch step {start} differs from the WSD decay start "
        f"{plan.total_steps - decay} ({plan.total_steps} steps): choose steps_per_chinchilla so "
        f"that horizon x branch_fraction x steps_per_chinchilla is an integer",
      )
    overrides += (("init_from_step", str(start)),)
  return Run(
    name=run_name(method, horizon, lr, b2, seed, offset),
    method=method,
    horizon=float(horizon),
    lr=float(lr),
    b2=float(b2),
    seed=int(seed),
    offset=None if offset is None else float(offset),
    lm_arg=lm_arg,
    overrides=overrides,
    parent=parent,
    parent_step=start if parent else None,
    start_step=start,
    total_steps=plan.total_steps,
    steps_per_chinchilla=plan.steps_per_chinchilla,
    tokens_per_step=plan.tokens_per_step,
    flops_per_token=flops,
    params=params,
    supported=supported,
  )


def _tuple(values) -> str:
  return repr(tuple(float(v) for v in values))


def _constant_lrs(s) -> tuple:
  return tuple(s.constant.lrs) + tuple(s.constant.get("extra_lrs", ()))


def _constant_horizon(s, lr) -> float:
  """How far the constant run at ``lr`` goes: the longest horizon, or for an extra LR the
  longest horizon <= constant.extra_lrs_max_horizon."""
  if lr in tuple(s.constant.lrs):
    return max(s.horizons)
  return max(h for h in s.horizons if h <= s.constant.extra_lrs_max_horizon)


def expand(s) -> list[Run]:
  """Every run of sweep ``s`` (validated first), parents before their branches."""
  validate_sweep(s)
  longest = max(s.horizons)
  averages = ("opt.averages", repr(tuple(s.averages)))
  runs = []
  noise = s.noise

  def seeds_for(method, horizon, lr, b2):
    extra = noise.seeds if (method in noise.methods and lr == noise.lr and b2 == noise.b2) else ()
    if method == "cosine" and horizon not in noise.horizons:
      extra = ()
    return tuple(s.seeds) + tuple(extra)

  if s.cosine.enabled:
    for h in s.horizons:
      lrs = tuple(s.cosine.lrs)
      if h <= s.cosine.extra_lrs_max_horizon:
        lrs += tuple(s.cosine.extra_lrs)
      # Peak LRs added at this horizon only (a cosine run serves one horizon): the points
      # anytime.sweeps.bracket adds from <root>/bracket.json.
      lrs += tuple(lr for at, lr in s.cosine.get("horizon_lrs", ()) if at == h and lr not in lrs)
      # Cosine is scored on its last iterate (the paper's baseline): no averages kept.
      extra = [("horizons", _tuple(x for x in s.horizons if x <= h)), ("opt.averages", "()")]
      for lr in lrs:
        for b2 in s.cosine.b2s:
          for seed in seeds_for("cosine", h, lr, b2):
            runs.append(_run(s, "cosine", h, lr, b2, seed, extra=extra))
  if s.constant.enabled:
    points = set(s.horizons)
    if s.wsd.enabled:
      points |= {h * s.wsd.branch_fraction for h in s.horizons}
    for lr in _constant_lrs(s):
      reach = _constant_horizon(s, lr)
      extra = [("horizons", _tuple(sorted(p for p in points if p <= reach))), averages]
      for b2 in s.constant.b2s:
        for seed in seeds_for("constant", reach, lr, b2):
          runs.append(_run(s, "constant", reach, lr, b2, seed, extra=extra))
  if s.inverse_sqrt.enabled:
    top = max(s.inverse_sqrt.offsets)
    # The lrs x offsets grid, then single (lr, offset) runs off it (anytime.sweeps.bracket's).
    grid = [(lr, off) for off in s.inverse_sqrt.offsets for lr in s.inverse_sqrt.lrs]
    pairs = [p for p in s.inverse_sqrt.get("pairs", ()) if tuple(p) not in grid]
    for i, (lr, off) in enumerate(grid + pairs):
      extra = [("horizons", _tuple(s.horizons)), averages, ("opt.offset", _fmt(off))]
      for b2 in s.inverse_sqrt.b2s:
        on_grid = i < len(grid) and off == top
        seeds = seeds_for("inverse_sqrt", longest, lr, b2) if on_grid else s.seeds
        for seed in seeds:
          runs.append(_run(s, "inverse_sqrt", longest, lr, b2, seed, offset=off, extra=extra))
  for shape in tuple(s.wsd.shapes) if s.wsd.enabled else ():
    for h in s.horizons:
      for lr in s.wsd.lrs:
        if h > _constant_horizon(s, lr):
          continue  # the constant run at this LR stops before h
        for b2 in s.wsd.b2s:
          for seed in s.seeds:
            parent = run_name("constant", _constant_horizon(s, lr), lr, b2, seed)
            extra = [
              ("horizons", _tuple([h])),
              averages,  # the branch restores the parent's state, averages included
              ("opt.wsd_decay_fraction", _fmt(1 - s.wsd.branch_fraction)),
              ("opt.wsd_shape", shape),
              ("init_from", parent),
            ]
            runs.append(
              _run(
                s, wsd_method(shape), h, lr, b2, seed, extra=extra, parent=parent,
                branch=h * s.wsd.branch_fraction,
              )
            )  # fmt: skip
  if s.schedule_free.enabled:
    b1 = ("opt.b1", _fmt(s.schedule_free.b1))
    extra = [("horizons", _tuple(s.horizons)), ("opt.averages", "()"), b1]
    for lr in s.schedule_free.lrs:
      for b2 in s.schedule_free.b2s:
        for seed in seeds_for("schedule_free", longest, lr, b2):
          runs.append(_run(s, "schedule_free", longest, lr, b2, seed, extra=extra))
  if s.to_zero.enabled:
    for h in s.to_zero.horizons:
      for schedule in s.to_zero.schedules:
        extra = [
          ("horizons", _tuple(x for x in s.horizons if x <= h)),
          ("opt.averages", "()"),
          ("opt.final_lr_fraction", "0"),  # to zero, not to 0.1x peak
        ]
        for lr in s.to_zero.lrs:
          for b2 in s.to_zero.b2s:
            for seed in s.seeds:
              runs.append(_run(s, TO_ZERO[schedule], h, lr, b2, seed, extra=extra))
  names = [r.name for r in runs]
  if len(set(names)) != len(names):
    dup = sorted({n for n in names if names.count(n) > 1})
    raise ValueError(f"sweep {s.name!r} expands to duplicate run names {dup[:3]}.")
  return runs
