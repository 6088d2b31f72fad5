"""The LR half of laws_lm: per-sweep optima, the (N, D) LR law, equivalent compute, seed noise.

Checks 2 and 3 of experiments/laws_lm/grid.py (which runs them from its ``main``) on the grid and
logs of experiments/laws_lm/runs.py (imported by both, so neither imports the other):

- :func:`lr_optima`: per (width, budget) the quadratic-in-ln-LR optimum of the final loss
  averaged over the seeds that finished (optionally on a window of LRs around the best);
- :func:`lr_law`: ``ln LR* = ln C + alpha ln N + beta ln D`` fitted on every optimum but the
  held-out one, and its error there (octaves);
- :func:`equivalent_compute`: the loss-compute law on width 32's tuned losses, inverted at the
  held-out checkpoint;
- :func:`seed_noise`: seed-to-seed differences and the pooled per-run std.
"""

from __future__ import annotations

import os

import numpy as np

from anytime.laws.continued import fit_loss_compute, fit_power_law
from anytime.laws.optimal_lr import fit_lr_law, fit_lr_optimum
from anytime.sweeps import common as sc
from experiments.laws_lm import runs as ll


def sweep_losses(root: str, runs: list[sc.Run]) -> dict:
  """{(width, horizon): {lr: {seed: (final loss, run)}}} over every finished cosine sweep run."""
  points: dict = {}
  dense = ll.dense_names()
  for r in runs:
    if r.method != "cosine" or not r.name.startswith("w") or r.name in dense:
      continue
    width = int(r.name[1:].split("_")[0])
    loss = ll.final_loss(root, r)
    if loss is not None:
      points.setdefault((width, r.horizon), {}).setdefault(r.lr, {})[r.seed] = (loss, r)
  return points


def _optimum(key, lrs, losses):
  try:
    return fit_lr_optimum(lrs, losses)
  except ValueError as e:
    print(f"  {key}: no optimum ({e})")
    return None


def around_best(lrs: list, losses: list, window: int) -> tuple[list, list]:
  """The ``window`` consecutive (lr, loss) points centred on the lowest loss, shifted inside the
  grid; all of them for ``window`` 0 or a grid no longer than the window."""
  if not window or len(lrs) <= window:
    return lrs, losses
  first = min(max(int(np.argmin(losses)) - window // 2, 0), len(lrs) - window)
  return lrs[first : first + window], losses[first : first + window]


def lr_optima(root: str, runs: list[sc.Run], window: int = 0) -> dict:
  """{(width, horizon): (optimum, [(lr, loss)], run)}: per LR the final loss averaged over the
  seeds that finished, then the quadratic-in-ln-LR optimum. ``window`` > 0: the quadratic on
  only the ``window`` consecutive LRs centred on the lowest mean loss (shifted inside the grid),
  a check of the full-grid fit's sensitivity to the sweep's far ends (near-divergent top LRs)."""
  if window and window < 4:
    raise ValueError(
      f"window={window} is invalid: 0 (all LRs) or >= 4 (a quadratic with an error)."
    )
  optima = {}
  for key, by_lr in sorted(sweep_losses(root, runs).items()):
    lrs = sorted(by_lr)
    losses = [float(np.mean([loss for loss, _ in by_lr[lr].values()])) for lr in lrs]
    lrs, losses = around_best(lrs, losses, window)
    opt = _optimum(key, lrs, losses)
    if opt is not None:
      run = next(iter(by_lr[lrs[0]].values()))[1]
      optima[key] = (opt, list(zip(lrs, losses, strict=True)), run)
  return optima


def seed_noise(root: str, runs: list[sc.Run], out: str) -> list[dict]:
  """Per sweep run at seeds 0 and 1: the final-loss difference per LR, its std over the sweep,
  and each seed's own optimum (written to ``seed_noise.csv``)."""
  rows = []
  for key, by_lr in sorted(sweep_losses(root, runs).items()):
    pairs = [(lr, s[1][0] - s[0][0]) for lr, s in sorted(by_lr.items()) if {0, 1} <= set(s)]
    if len(pairs) < 2:
      continue
    diff = np.array([d for _, d in pairs])
    seeds = sorted(set.intersection(*(set(s) for s in by_lr.values())))
    own = {}
    lrs = sorted(by_lr)
    for seed in seeds:
      opt = _optimum((*key, seed), lrs, [by_lr[lr][seed][0] for lr in lrs])
      own[seed] = f"{opt.lr:.4g} ({opt.low:.3g}-{opt.high:.3g})" if opt else "none"
    # Pooled within-LR std over every seed (LRs with >= 2 seeds): one run's seed noise.
    groups = [[v[0] for v in s.values()] for s in by_lr.values() if len(s) >= 2]
    pooled = np.sqrt(
      sum(np.var(g, ddof=1) * (len(g) - 1) for g in groups) / sum(len(g) - 1 for g in groups)
    )
    rows.append(
      dict(
        width=key[0],
        horizon=key[1],
        n_lrs=len(pairs),
        diffs_s1_minus_s0=" ".join(f"{d:+.4f}" for d in diff),
        mean_diff=round(float(diff.mean()), 5),
        std_diff=round(float(diff.std(ddof=1)), 5),
        pooled_run_std=round(float(pooled), 5),
        seeds_at_every_lr=",".join(map(str, seeds)),
        **{f"lr_opt_s{seed}": own[seed] for seed in seeds},
      )
    )
  if rows:
    ll._write_csv(os.path.join(out, "seed_noise.csv"), rows)
  return rows


def fit_law(optima: dict, held_out=(ll.HELD_OUT,)):
  """``ln LR* = ln C + alpha ln N + beta ln D`` fitted on the optima (lr_optima) not held out."""
  fit_keys = [k for k in optima if k not in held_out]
  n = [optima[k][2].params for k in fit_keys]
  d = [optima[k][2].trained_tokens for k in fit_keys]
  y = [optima[k][0].log_lr for k in fit_keys]
  se = [max(optima[k][0].log_lr_se, 1e-3) for k in fit_keys]
  return fit_lr_law(n, d, y, se)


def lr_law(optima: dict, out: str, name: str = "lr_law") -> list[dict]:
  law = fit_law(optima)
  rows = []
  for key, (opt, _, run) in optima.items():
    pred, lo, hi = (float(v) for v in law.predict(run.params, run.trained_tokens, z=2.0))
    rows.append(
      dict(
        width=key[0],
        horizon=key[1],
        n=run.params,
        d=run.trained_tokens,
        role="held-out" if key == ll.HELD_OUT else "fit",
        lr_opt=f"{opt.lr:.4g}",
        lr_opt_low=f"{opt.low:.4g}",
        lr_opt_high=f"{opt.high:.4g}",
        lr_law=f"{pred:.4g}",
        law_band_2sigma=f"{lo:.4g}-{hi:.4g}",
        error_octaves=round(float(np.log2(pred / opt.lr)), 3),
        alpha=f"{law.alpha:.3f}+-{law.alpha_se:.3f}",
        beta=f"{law.beta:.3f}+-{law.beta_se:.3f}",
      )
    )
  ll._write_csv(os.path.join(out, f"{name}.csv"), rows)
  _plot_lr(optima, law, os.path.join(out, f"{name}.png"))
  return rows


def equivalent_compute(optima: dict, out: str) -> list[dict]:
  width, held = ll.HELD_OUT
  proxies = sorted(k for k in optima if k[0] == width and k != ll.HELD_OUT)
  compute = [optima[k][2].train_flops for k in proxies]
  loss_law = fit_loss_compute(compute, [optima[k][0].min_loss for k in proxies])
  lr_of_c = fit_power_law(compute, [optima[k][0].lr for k in proxies])
  opt, pts, run = optima[ll.HELD_OUT]
  best_loss = min(loss for _, loss in pts)  # the checkpoint: the best 8-unit run's final loss
  c_eq, lo, hi = loss_law.equivalent_compute(best_loss, z=2.0)
  lr_pred, lr_lo, lr_hi = (float(v) for v in lr_of_c.predict(run.train_flops, z=2.0))
  rows = [
    dict(
      checkpoint=f"w{width} cosine {held:g} units, best LR",
      loss=round(best_loss, 5),
      true_compute=f"{run.train_flops:.4g}",
      equivalent_compute=f"{c_eq:.4g}",
      band_2sigma=f"{lo:.4g}-{hi:.4g}",
      rel_err=round(c_eq / run.train_flops - 1, 4),
      law=" ".join(
        f"{k}={v:.4g}" for k, v in zip(("E", "A", "a"), loss_law.fit.params, strict=True)
      ),
      lr_from_compute=f"{lr_pred:.4g} ({lr_lo:.3g}-{lr_hi:.3g})",
      lr_opt=f"{opt.lr:.4g}",
      lr_error_octaves=round(float(np.log2(lr_pred / opt.lr)), 3),
    )
  ]
  ll._write_csv(os.path.join(out, "equivalent_compute.csv"), rows)
  return rows


def _plot_lr(optima, law, path) -> None:
  plt = ll._pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for i, (key, (opt, pts, run)) in enumerate(sorted(optima.items())):
    color = plt.cm.viridis(i / max(len(optima) - 1, 1))
    lrs, losses = zip(*pts, strict=True)
    ls = "--" if key == ll.HELD_OUT else "-"
    ax.plot(lrs, losses, "o" + ls, color=color, ms=3, label=f"w{key[0]} {key[1]:g}u")
    pred = float(law.predict(run.params, run.trained_tokens)[0])
    ax.axvline(pred, color=color, lw=0.8, ls=":")
    ax.plot([opt.lr], [opt.min_loss], "k|", ms=12)
  ax.set_xscale("log")
  ax.set(xlabel="peak LR (cosine)", ylabel="final validation loss")
  ax.set_title("loss vs LR per (width, budget); |: fitted optimum, dotted: the LR law", fontsize=9)
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
