"""Monte-Carlo one-pass SGD on a :class:`theory.Problem`, many seeds vectorised.

Each seed runs SGD from ``w_0 = 0`` with fresh samples every step: features
``x = sqrt(lam) * z`` with ``z`` standard Gaussian (``kurtosis = 3``) or
Rademacher signs (``kurtosis = 1``), labels ``y = x . w* + eps`` with Gaussian
``eps`` of variance ``noise_variance``, ``batch_size`` samples per step, update k
with ``schedule(k - 1)``, and the averaging rule's ``c_k``. At each recorded step
the per-seed excess risk ``0.5 * sum_i lam_i (w_i - w*_i)**2`` (exact given the
iterate) is averaged over seeds; the standard error is the sample standard
deviation over sqrt(seeds). Float64 inside ``jax.enable_x64``.

This is the independent check of :mod:`theory.recursion` (tests/theory/test_montecarlo.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from theory.problems import Problem
from theory.recursion import _check_record_steps, _check_steps, _rho_array, lr_array, record

__all__ = ["MonteCarlo", "simulate_sgd"]

MAX_MC_DIM = 4096


@dataclasses.dataclass(frozen=True)
class MonteCarlo:
  """Sample mean and standard error of the excess risk at ``record_steps``.

  ``mean``/``stderr`` are those of the averaged iterate when an averaging rule
  was given, else of the last iterate; ``last_*`` and ``avg_*`` give both.
  """

  record_steps: np.ndarray
  last_mean: np.ndarray
  last_stderr: np.ndarray
  avg_mean: np.ndarray | None
  avg_stderr: np.ndarray | None
  seeds: int

  @property
  def mean(self) -> np.ndarray:
    return self.last_mean if self.avg_mean is None else self.avg_mean

  @property
  def stderr(self) -> np.ndarray:
    return self.last_stderr if self.avg_stderr is None else self.avg_stderr


@partial(jax.jit, static_argnames=("batch", "rademacher", "track_avg", "n_rec"))
def _simulate(keys, lam, wstar, lrs, rho, rec_flag, sigma, *, batch, rademacher, track_avg, n_rec):
  n, d = keys.shape[0], lam.shape[0]
  sqrt_lam = jnp.sqrt(lam)
  e0 = jnp.broadcast_to(-wstar, (n, d))

  def risk(e):
    return 0.5 * jnp.sum(lam * e * e, axis=-1)

  def sample(key, t):
    kz, ke = jax.random.split(jax.random.fold_in(key, t))
    if rademacher:
      z = jax.random.rademacher(kz, (batch, d), dtype=jnp.float64)
    else:
      z = jax.random.normal(kz, (batch, d), dtype=jnp.float64)
    eps = sigma * jax.random.normal(ke, (batch,), dtype=jnp.float64)
    return z * sqrt_lam, eps

  def body(carry, inp):
    e, ebar, j, o_last, o_avg = carry
    t, eta, r, flag = inp
    x, eps = jax.vmap(sample, in_axes=(0, None))(keys, t)  # [n, B, d], [n, B]
    resid = jnp.einsum("nbd,nd->nb", x, e) - eps
    e = e - (eta / batch) * jnp.einsum("nbd,nb->nd", x, resid)
    if track_avg:
      ebar = ebar + r * (e - ebar)

    o_last, o_avg = record(
      (o_last, o_avg), flag, j, lambda: risk(e), (lambda: risk(ebar)) if track_avg else None
    )
    return (e, ebar, j + flag, o_last, o_avg), None

  steps = lrs.shape[0]
  inputs = (jnp.arange(steps), lrs, rho, rec_flag)
  zeros = jnp.zeros((n, n_rec))
  (_, _, _, o_last, o_avg), _ = lax.scan(body, (e0, e0, 0, zeros, zeros), inputs)
  return o_last, o_avg


def simulate_sgd(
  problem: Problem,
  schedule: Callable,
  *,
  steps: int,
  averaging: Callable | None = None,
  seeds: int | Sequence[int],
  record_steps: Sequence[int],
) -> MonteCarlo:
  """Monte-Carlo estimate of the excess risk of SGD (last and, if given, averaged iterate).

  Args:
    problem: a :class:`theory.Problem` with finite ``dim <= 4096`` and
      ``kurtosis`` 3 (Gaussian) or 1 (Rademacher).
    schedule: an ``optax.Schedule``; update k uses ``schedule(k - 1)``.
    steps: number of updates; an int >= 1.
    averaging: an ``anytime.averaging`` rule or None.
    seeds: number of independent runs (seeds 0..n-1), or the seeds themselves.
    record_steps: increasing values of k in [1, steps].

  Example:
    >>> import anytime, theory
    >>> p = theory.Problem(capacity=2.0, source=2.0, dim=1, noise_variance=0.0, kurtosis=1.0)
    >>> mc = simulate_sgd(p, anytime.constant(0.5), steps=2, seeds=3, record_steps=[1, 2])
    >>> mc.mean.tolist(), mc.stderr.tolist()  # x**2 = 1, no noise: deterministic
    ([0.125, 0.03125], [0.0, 0.0])
  """
  if not isinstance(problem, Problem):
    raise ValueError(f"problem={problem!r} must be a theory.Problem.")
  if not problem.finite or problem.dim > MAX_MC_DIM:
    raise ValueError(
      f"problem.dim={problem.dim!r} must be finite and <= {MAX_MC_DIM} for Monte Carlo."
    )
  if problem.kurtosis not in (1.0, 3.0):
    raise ValueError(
      f"problem.kurtosis={problem.kurtosis!r} must be 3 (Gaussian) or 1 (Rademacher) "
      "for Monte Carlo."
    )
  steps = _check_steps(steps)
  rec = _check_record_steps(record_steps, steps)
  if rec[0] < 1:
    raise ValueError(f"record_steps={record_steps!r} must be >= 1 for Monte Carlo.")
  if isinstance(seeds, bool):
    raise ValueError(f"seeds={seeds!r} must be an int >= 2 or a sequence of >= 2 ints.")
  seed_arr = np.arange(seeds) if isinstance(seeds, int | np.integer) else np.asarray(seeds)
  if seed_arr.ndim != 1 or seed_arr.size < 2 or not np.issubdtype(seed_arr.dtype, np.integer):
    raise ValueError(f"seeds={seeds!r} must be an int >= 2 or a sequence of >= 2 ints.")
  lrs = lr_array(schedule, steps)[0]
  rho = _rho_array(averaging, steps)
  flags = np.zeros(steps, dtype=np.int32)
  flags[rec - 1] = 1
  with jax.enable_x64(True):
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seed_arr, dtype=jnp.uint32))
    o_last, o_avg = _simulate(
      keys,
      jnp.asarray(problem.eigenvalues()),
      jnp.asarray(problem.target()),
      jnp.asarray(lrs),
      jnp.asarray(rho if rho is not None else np.zeros(steps)),
      jnp.asarray(flags),
      float(np.sqrt(problem.noise_variance)),
      batch=problem.batch_size,
      rademacher=problem.kurtosis == 1.0,
      track_avg=rho is not None,
      n_rec=int(rec.size),
    )
    o_last = np.asarray(o_last)[:, : rec.size]
    o_avg = np.asarray(o_avg)[:, : rec.size]
  n = seed_arr.size

  def stats(x):
    return x.mean(0), x.std(0, ddof=1) / np.sqrt(n)

  lm, ls = stats(o_last)
  am, as_ = stats(o_avg) if rho is not None else (None, None)
  return MonteCarlo(rec, lm, ls, am, as_, n)
