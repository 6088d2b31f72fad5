"""Equivalent compute: how many more tokens the tuned cosine would need to match a Δ.

A law L(D) = E + A (D / d0)^-alpha is fitted by least squares to the tuned cosine's loss at the
sweep's horizons; a method Δ nats from cosine at D tokens then counts as D_eq / D, with
D_eq = L^-1(C(D) + Δ) and C(D) the cosine loss there. Used by :mod:`anytime.sweeps.fig2`.
"""

from __future__ import annotations

import dataclasses
import math

from anytime.sweeps import report


@dataclasses.dataclass(frozen=True)
class Law:
  E: float
  A: float  # with D in units of d0 (tokens of the first fitted horizon)
  alpha: float
  d0: float
  tokens: tuple[float, ...]
  losses: tuple[float, ...]

  def loss(self, d: float) -> float:
    return self.E + self.A * (d / self.d0) ** -self.alpha

  def tokens_for(self, loss: float) -> float:
    """D with L(D) = loss; inf when loss <= E (the fit never gets there)."""
    if loss <= self.E:
      return math.inf
    return self.d0 * (self.A / (loss - self.E)) ** (1 / self.alpha)

  @property
  def residuals(self) -> tuple[float, ...]:
    return tuple(y - self.loss(d) for d, y in zip(self.tokens, self.losses, strict=True))

  def extrapolated(self, d: float) -> bool:
    """``d`` outside the fitted tokens (beyond float rounding)."""
    return not min(self.tokens) * (1 - 1e-9) <= d <= max(self.tokens) * (1 + 1e-9)


def fit_law(tokens, losses) -> Law | None:
  """Least squares of L = E + A (D/d0)^-alpha: (E, A) linear for each alpha, alpha by a bounded
  1-D search (after a grid). None with fewer than 3 points or no decreasing fit (A <= 0)."""
  import numpy as np
  from scipy import optimize

  pts = sorted((float(d), float(y)) for d, y in zip(tokens, losses, strict=True))
  if len(pts) < 3:
    return None
  d, y = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
  x = d / d[0]

  def solve(alpha):
    m = np.stack([np.ones_like(x), x**-alpha], axis=1)
    coef = np.linalg.lstsq(m, y, rcond=None)[0]
    return coef, float(np.sum((m @ coef - y) ** 2))

  grid = np.geomspace(1e-3, 5.0, 200)
  i = int(np.argmin([solve(a)[1] for a in grid]))
  lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
  res = optimize.minimize_scalar(lambda a: solve(a)[1], bounds=(lo, hi), method="bounded",
                                 options={"xatol": 1e-12})  # fmt: skip
  alpha = float(res.x)
  (e, a), _ = solve(alpha)
  if a <= 0:
    return None
  return Law(float(e), float(a), alpha, float(d[0]), tuple(d.tolist()), tuple(y.tolist()))


def deq_ratio(law: Law | None, cosine_loss: float | None, delta, tokens) -> float | None:
  """D_eq / D: the tokens at which the fitted cosine reaches C(D) + delta, over D."""
  if law is None or cosine_loss is None or delta is None:
    return None
  return law.tokens_for(cosine_loss + delta) / tokens


def format_ratio(law, r: float | None, tokens: int) -> str:
  if r is None:
    return "—"
  if math.isinf(r):
    return "inf"
  return f"{r:.3f}" + ("*" if law.extrapolated(r * tokens) else "")


def markdown_law(law: Law | None, frows) -> str:
  parts = ["## Equivalent compute", ""]
  if law is None:
    why = "No fit: fewer than 3 horizons with a tuned cosine, or no decreasing law fits them."
    return "\n".join([*parts, why, ""])
  parts += [
    f"L(D) = E + A (D / {law.d0:,.0f})^-alpha fitted (least squares) to the tuned cosine loss "
    f"(mean over its seeds) at the {len(law.tokens)} horizons: E = {law.E:.4f}, "
    f"A = {law.A:.4f}, alpha = {law.alpha:.4f}. Residuals (loss - fit):",
    "",
    "| tokens | cosine loss | fit | residual |",
    "|---|---|---|---|",
  ]
  for d, y, e in zip(law.tokens, law.losses, law.residuals, strict=True):
    parts.append(f"| {report.sc_tokens(int(d))} | {y:.4f} | {law.loss(d):.4f} | {e:+.5f} |")
  parts += [
    "",
    "For a Δ at D tokens: D_eq = L^-1(C(D) + Δ), C(D) the cosine loss above; D_eq / D < 1: "
    "cosine tuned for that budget matches the method with fewer tokens (0.93 = 7% fewer), > 1: "
    "it needs more. `*`: D_eq outside the fitted range (extrapolated); inf: C(D) + Δ <= E.",
    "",
  ]
  return "\n".join(parts)
