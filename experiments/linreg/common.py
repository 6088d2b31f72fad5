"""Shared helpers of the theory experiments (paper's Figure 3 settings, schedules, CSV I/O)."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence

import numpy as np

import anytime
import theory

# The paper's Figure 3: d = 500k, 50k steps, sigma^2 = 0.01, a in {1.1, 1.5, 1.9}, b in {a, 2a}.
PAPER_SETTINGS = tuple((a, f * a) for a in (1.1, 1.5, 1.9) for f in (1.0, 2.0))
PAPER_DIM = 500_000
PAPER_STEPS = 50_000
PAPER_NOISE = 0.01
RESULTS = os.path.join("results", "theory")


def problem(a: float, b: float, dim=PAPER_DIM, noise=PAPER_NOISE) -> theory.Problem:
  return theory.Problem(capacity=a, source=b, dim=dim, noise_variance=noise)


def anytime_schedules(a: float, b: float, peak: float) -> dict:
  """constant, 1/sqrt(t) and t**-gamma* (gamma* of theory.rates, general form), offset 1."""
  g = theory.rates.optimal_decay(a, b)
  return {
    "constant": anytime.constant(peak),
    "inv_sqrt": anytime.inverse_sqrt(peak, offset=1.0),
    "gamma_star": anytime.polynomial_decay(peak, g, offset=1.0)
    if g > 0
    else anytime.constant(peak),
  }


def write_csv(path: str, rows: Sequence[dict]) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    w.writeheader()
    for r in rows:
      w.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in r.items()})
  os.replace(tmp, path)


def typed(row: dict) -> dict:
  """A CSV row with its numbers as numbers (ints where the text is an integer)."""
  out = {}
  for k, v in row.items():
    for kind in (int, float):
      try:
        out[k] = kind(v)
        break
      except ValueError:
        continue
    else:
      out[k] = v
  return out


def read_csv(path: str) -> list[dict]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def fmt(x: float) -> str:
  return "inf" if not math.isfinite(x) else f"{x:.4g}"


def log_records(steps: int, num: int = 60) -> np.ndarray:
  return theory.recursion.default_record_steps(steps, num)
