"""Loss curves as the laws see them, their validation, and reading them from run logs.

A :class:`LossCurve` is one training run: the learning rate of every update
and the loss measured after some of them,

    lrs[k - 1] = eta_k, the step size of update k = 1..T (``schedule(k - 1)`` in
                 Optax's count, as in ``theory.risk_curve``),
    steps      = increasing values of k in [1, T] where the loss was measured,
    loss       = the measured loss after ``steps[i]`` updates.

Annealing laws need the whole LR sequence (areas under it), not only its value
at the eval points, hence ``lrs`` has one entry per update.

Run logs. :func:`read_runs` reads JSON Lines or CSV with one record per
measurement, fields ``run`` (name; optional for a single-run file), ``step``,
``lr`` and ``loss`` (names configurable; optional ``model_size``). The LR at
steps between records is interpolated linearly in the step, exact for the
piecewise-linear schedules (constant, WSD-linear, warmup) and within the
interpolation error otherwise; before the first LR record it is held at that
record's value, so log the LR at step 1 (the LM trainer does) and often (it logs
it with every train record), or pass ``lr_records`` from a denser log. Measured
in ``tests/laws/test_fit_command.py``: without the step-1 record, a warmup of 100
steps logged every 10 biases S1 at step 50 by ~3% and the fitted parameters by
about 3 sigma. The LM trainer's
``train.jsonl`` (``step``, ``lr``, ``loss``) gives the LR and ``eval.jsonl``
(``step`` and ``loss/raw`` for the last iterate, ``loss/<average>`` for the
averaged ones) the loss; ``experiments/laws/fit.py --lm_workdirs`` reads both.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["LossCurve", "curve_from_records", "from_schedule", "lookup", "read_runs"]

# Fewer measured points than this cannot constrain any of the laws.
MIN_POINTS = 5


@dataclasses.dataclass(frozen=True)
class LossCurve:
  """One run: per-update learning rates and the losses measured at some steps.

  Args:
    name: a label.
    lrs: [T] step sizes of updates 1..T; finite and >= 0, not all 0.
    steps: [n] strictly increasing ints in [1, T], n >= MIN_POINTS.
    loss: [n] finite losses.
    warmup_steps: leading updates that are warmup (the multi-power law counts
      their LR area separately); an int in [0, T).
    model_size: the model's parameter count (the forward-momentum law uses it);
      None or > 0.
  """

  name: str
  lrs: np.ndarray
  steps: np.ndarray
  loss: np.ndarray
  warmup_steps: int = 0
  model_size: float | None = None

  def __post_init__(self):
    lrs = np.asarray(self.lrs, dtype=np.float64)
    steps = np.asarray(self.steps)
    loss = np.asarray(self.loss, dtype=np.float64)
    tag = f"curve {self.name!r}"
    if lrs.ndim != 1 or lrs.size < 1:
      raise ValueError(f"{tag}: lrs of shape {lrs.shape} must be 1-D with >= 1 entry.")
    if not np.all(np.isfinite(lrs)) or np.any(lrs < 0) or not np.any(lrs > 0):
      bad = lrs[~np.isfinite(lrs) | (lrs < 0)]
      shown = bad[:3].tolist() if bad.size else "all zero"
      raise ValueError(f"{tag}: lrs must be finite, >= 0 and not all 0; got {shown}.")
    if steps.ndim != 1 or loss.ndim != 1 or steps.shape != loss.shape:
      raise ValueError(
        f"{tag}: steps {steps.shape} and loss {loss.shape} must be 1-D of the same length."
      )
    if steps.size < MIN_POINTS:
      raise ValueError(
        f"{tag}: {steps.size} measured points is too short; need >= {MIN_POINTS} to fit a law."
      )
    if not np.issubdtype(steps.dtype, np.integer):
      if not np.all(np.isfinite(steps)) or np.any(steps != np.round(steps)):
        raise ValueError(f"{tag}: steps must be integers; got {steps[:3].tolist()}...")
      steps = steps.astype(np.int64)
    if np.any(np.diff(steps) <= 0) or steps[0] < 1 or steps[-1] > lrs.size:
      raise ValueError(
        f"{tag}: steps must be strictly increasing ints in [1, len(lrs)={lrs.size}]; got "
        f"first {int(steps[0])}, last {int(steps[-1])}."
      )
    if not np.all(np.isfinite(loss)):
      i = int(np.flatnonzero(~np.isfinite(loss))[0])
      raise ValueError(f"{tag}: loss[{i}]={loss[i]} at step {int(steps[i])} must be finite.")
    w = self.warmup_steps
    if isinstance(w, bool) or not isinstance(w, int | np.integer) or not 0 <= w < lrs.size:
      raise ValueError(f"{tag}: warmup_steps={w!r} must be an int in [0, {lrs.size}).")
    if self.model_size is not None and not (
      math.isfinite(float(self.model_size)) and float(self.model_size) > 0
    ):
      raise ValueError(f"{tag}: model_size={self.model_size!r} must be None or > 0.")
    object.__setattr__(self, "lrs", lrs)
    object.__setattr__(self, "steps", steps.astype(np.int64))
    object.__setattr__(self, "loss", loss)
    object.__setattr__(self, "warmup_steps", int(w))

  @property
  def total_steps(self) -> int:
    return int(self.lrs.size)


def from_schedule(
  name: str,
  schedule: Callable,
  total_steps: int,
  steps: Sequence[int],
  loss: Sequence[float],
  *,
  warmup_steps: int = 0,
  model_size: float | None = None,
) -> LossCurve:
  """A curve whose LRs are ``schedule(0..total_steps-1)`` (an ``anytime.schedules`` schedule)."""
  if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
    raise ValueError(f"total_steps={total_steps!r} must be an int >= 1.")
  lrs = np.asarray(schedule(np.arange(total_steps, dtype=np.int32)), dtype=np.float64)
  return LossCurve(name, lrs, np.asarray(steps), np.asarray(loss), warmup_steps, model_size)


def lookup(record: dict, key: str):
  """``record[key]``, where ``key`` may be a path ``"a/b"`` into nested dicts; None if absent."""
  value = record
  for part in key.split("/"):
    if not isinstance(value, dict) or part not in value:
      return None
    value = value[part]
  return value


def curve_from_records(
  name: str,
  records: Sequence[dict],
  *,
  loss_key: str = "loss",
  lr_key: str = "lr",
  lr_records: Sequence[dict] | None = None,
  warmup_steps: int = 0,
) -> LossCurve:
  """Builds a curve from records with ``step``, ``lr_key`` and ``loss_key``.

  Keys may be paths into nested dicts (``"loss/raw"`` for the LM trainer's eval
  records). The LR comes from ``lr_records`` when given (e.g. the denser train
  log), else from ``records``; it is interpolated linearly over updates 1..last
  step. Records without the loss (headers) are skipped.
  """
  rec = [r for r in records if lookup(r, loss_key) is not None and "step" in r]
  if not rec:
    raise ValueError(f"run {name!r}: no record has 'step' and the loss field {loss_key!r}.")
  lr_src = list(lr_records) if lr_records is not None else rec
  lr_pts = [
    (int(r["step"]), float(lookup(r, lr_key)))
    for r in lr_src
    if lookup(r, lr_key) is not None and "step" in r
  ]
  if len(lr_pts) < 1:
    raise ValueError(f"run {name!r}: no record has both 'step' and the LR field {lr_key!r}.")
  lr_pts.sort()
  lr_steps = np.array([s for s, _ in lr_pts], dtype=np.float64)
  lr_vals = np.array([v for _, v in lr_pts])
  if not np.all(np.isfinite(lr_vals)):
    i = int(np.flatnonzero(~np.isfinite(lr_vals))[0])
    raise ValueError(
      f"run {name!r}: {lr_key}={lr_vals[i]} at step {int(lr_steps[i])} must be finite."
    )
  if np.any(lr_vals < 0):
    i = int(np.flatnonzero(lr_vals < 0)[0])
    raise ValueError(f"run {name!r}: {lr_key}={lr_vals[i]} at step {int(lr_steps[i])} is < 0.")
  try:
    steps = np.array([int(r["step"]) for r in rec])
    loss = np.array([float(lookup(r, loss_key)) for r in rec])
  except (KeyError, TypeError, ValueError) as e:
    raise ValueError(f"run {name!r}: every record needs an int 'step' and a number: {e}") from e
  order = np.argsort(steps, kind="stable")
  steps, loss = steps[order], loss[order]
  if np.any(np.diff(steps) == 0):
    i = int(np.flatnonzero(np.diff(steps) == 0)[0])
    raise ValueError(f"run {name!r}: step {int(steps[i])} is recorded twice (inconsistent log).")
  keep = steps >= 1  # the loss before any update has no LR area; laws start at k = 1
  steps, loss = steps[keep], loss[keep]
  total = int(max(steps[-1] if steps.size else 1, 1))
  lrs = np.interp(np.arange(1, total + 1, dtype=np.float64), lr_steps, lr_vals)
  return LossCurve(name, lrs, steps, loss, warmup_steps=warmup_steps)


def _read_records(path: str) -> list[dict]:
  if not os.path.exists(path):
    raise ValueError(f"path={path!r} does not exist.")
  if path.endswith(".csv"):
    with open(path, newline="") as f:
      return [dict(row) for row in csv.DictReader(f)]
  records = []
  with open(path) as f:
    for n, line in enumerate(f, 1):
      if line.strip():
        try:
          records.append(json.loads(line))
        except json.JSONDecodeError as e:
          raise ValueError(f"{path}:{n} is not valid JSON: {e}") from e
  return records


def read_runs(
  path: str,
  *,
  loss_key: str = "loss",
  lr_key: str = "lr",
  run_key: str = "run",
  warmup_steps: int = 0,
) -> dict[str, LossCurve]:
  """Reads every run of a JSONL (``.jsonl``) or CSV (``.csv``) file: {run name: curve}.

  Records without ``run_key`` belong to a run named after the file. CSV values
  are parsed as numbers. ``model_size``, if present, is taken from the records.
  """
  records = _read_records(path)
  if not records:
    raise ValueError(f"path={path!r} holds no records.")
  default = os.path.splitext(os.path.basename(path))[0]
  by_run: dict[str, list[dict]] = {}
  for r in records:
    r = {k: (float(v) if k not in (run_key,) and _is_number(v) else v) for k, v in r.items()}
    by_run.setdefault(str(r.get(run_key, default)), []).append(r)
  out = {}
  for name, recs in by_run.items():
    curve = curve_from_records(
      name, recs, loss_key=loss_key, lr_key=lr_key, warmup_steps=warmup_steps
    )
    sizes = {float(r["model_size"]) for r in recs if "model_size" in r}
    if len(sizes) > 1:
      raise ValueError(f"run {name!r}: inconsistent model_size values {sorted(sizes)}.")
    if sizes:
      curve = dataclasses.replace(curve, model_size=sizes.pop())
    out[name] = curve
  return out


def _is_number(v) -> bool:
  if isinstance(v, int | float) and not isinstance(v, bool):
    return True
  if isinstance(v, str):
    try:
      float(v)
      return True
    except ValueError:
      return False
  return False
