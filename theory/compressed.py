r"""Spectra for the exact recursion: the full one, and a compressed one for huge or infinite dim.

The recursion of :mod:`theory.recursion` runs on *groups* of coordinates. A group
``g`` has an eigenvalue ``lam_g``, a multiplicity ``n_g`` (a positive real) and
initial second moment ``m0_g``; its members all follow

    m_g <- A(lam_g) m_g + (eta**2 / B) lam_g (S + sigma**2),   S = sum_g n_g lam_g m_g,

so the full problem is the spectrum with one group per coordinate (``n_g = 1``).

Compression. Coordinates with nearly equal eigenvalues evolve nearly alike, and
a power law puts almost all coordinates in its tail, where neighbouring
eigenvalues are within a factor ``ratio**capacity``. :func:`spectrum` keeps the
first ``head`` coordinates exactly and merges the tail into geometric bins
``[i_k, i_{k+1})`` with ``i_{k+1} ~ ratio * i_k``. Each bin is one group chosen
to match the two sums the recursion injects into the risk exactly,

    n_g lam_g = sum_{i in bin} lam_i,      n_g lam_g**2 = sum_{i in bin} lam_i**2,
    n_g lam_g m0_g = sum_{i in bin} lam_i m0_i = sum_{i in bin} i**-source,

so the initial risk and the noise injected into the risk are exact, and only
the per-coordinate contraction ``A(lam)`` is approximated within a bin
(relative spread ``~ ratio**capacity - 1``). The bin sums are differences of
Hurwitz zeta functions, ``sum_{i=p}^{q-1} i**-s = zeta(s, p) - zeta(s, q)``.
For ``dim = inf`` the bins run up to ``tail_end`` and one last group carries
the analytic remainder ``[tail_end, inf)`` (the same moment matching with
``zeta(s, tail_end)``); its coordinates are essentially unlearned for any
feasible number of steps.

The error against the full recursion is measured by ``experiments/bench/recursion.py``
(paper's d = 500k settings) and bounded in ``tests/theory/test_compressed.py``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.special import zeta

from theory.problems import Problem

__all__ = ["Spectrum", "full_spectrum", "spectrum"]

DEFAULT_HEAD = 512
DEFAULT_RATIO = 1.02
DEFAULT_TAIL_END = 1e10


@dataclasses.dataclass(frozen=True)
class Spectrum:
  """Groups of coordinates: eigenvalue, multiplicity and initial second moment (float64)."""

  lam: np.ndarray
  weight: np.ndarray
  m0: np.ndarray

  @property
  def size(self) -> int:
    return int(self.lam.shape[0])

  def risk(self, m: np.ndarray) -> np.ndarray:
    """``0.5 * sum_g n_g lam_g m_g`` over the last axis."""
    return 0.5 * np.sum(m * (self.weight * self.lam), axis=-1)


def full_spectrum(problem: Problem) -> Spectrum:
  """One group per coordinate (finite dim only)."""
  if not problem.finite:
    raise ValueError("dim=inf has no full spectrum; use theory.compressed.spectrum.")
  lam = problem.eigenvalues()
  return Spectrum(lam=lam, weight=np.ones_like(lam), m0=problem.initial_moments())


def _bin_sums(s: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
  """``sum_{i=lo}^{hi-1} i**-s`` for each bin (hi may be inf)."""
  upper = np.where(np.isinf(hi), 0.0, zeta(s, np.where(np.isinf(hi), 1.0, hi)))
  return zeta(s, lo) - upper


def spectrum(
  problem: Problem,
  *,
  head: int = DEFAULT_HEAD,
  ratio: float = DEFAULT_RATIO,
  tail_end: float = DEFAULT_TAIL_END,
) -> Spectrum:
  """Compressed spectrum: exact head, geometric bins, analytic remainder if dim = inf.

  Args:
    problem: the problem.
    head: number of leading coordinates kept exactly; an int >= 1.
    ratio: bin growth factor, i_{k+1} = max(i_k + 1, ceil(ratio * i_k)); > 1.
    tail_end: for dim = inf, where the last (remainder) group starts; > head.

  Example:
    >>> p = Problem(capacity=1.5, source=3.0, dim=10**6, noise_variance=0.0)
    >>> s = spectrum(p)
    >>> s.size < 1100, round(float(s.risk(s.m0)) / p.initial_risk(), 12)  # initial risk exact
    (True, 1.0)
  """
  if isinstance(head, bool) or not isinstance(head, int) or head < 1:
    raise ValueError(f"head={head!r} must be an int >= 1.")
  if not (isinstance(ratio, int | float) and math.isfinite(ratio) and ratio > 1.0):
    raise ValueError(f"ratio={ratio!r} must be a real number > 1.")
  if not (isinstance(tail_end, int | float) and tail_end > head and math.isfinite(tail_end)):
    raise ValueError(f"tail_end={tail_end!r} must be a finite number > head={head}.")
  a, b = problem.capacity, problem.source
  end = problem.dim + 1 if problem.finite else float(int(tail_end))
  n_head = int(min(head, end - 1))
  idx = np.arange(1, n_head + 1, dtype=np.float64)
  lam_h = idx**-a
  groups_lam, groups_w, groups_m0 = [lam_h], [np.ones_like(lam_h)], [idx ** (a - b)]
  edges = [float(n_head + 1)]
  while edges[-1] < end:
    nxt = max(edges[-1] + 1.0, math.ceil(edges[-1] * ratio))
    edges.append(min(float(nxt), end))
  if not problem.finite:
    edges.append(math.inf)
  if len(edges) > 1:
    lo = np.asarray(edges[:-1])
    hi = np.asarray(edges[1:])
    s1 = _bin_sums(a, lo, hi)  # sum lam
    s2 = _bin_sums(2 * a, lo, hi)  # sum lam^2
    sb = _bin_sums(b, lo, hi)  # sum lam m0 = sum i^-b
    # Single-coordinate bins: use the exact values (zeta differences lose digits there).
    single = (hi - lo) == 1
    s1 = np.where(single, lo**-a, s1)
    s2 = np.where(single, lo ** (-2 * a), s2)
    sb = np.where(single, lo**-b, sb)
    lam_g = s2 / s1
    groups_lam.append(lam_g)
    groups_w.append(s1 / lam_g)
    groups_m0.append(sb / s1)
  return Spectrum(
    lam=np.concatenate(groups_lam),
    weight=np.concatenate(groups_w),
    m0=np.concatenate(groups_m0),
  )
