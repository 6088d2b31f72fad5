"""Is the LR area the clock? The shorter cosine's miss traced to the schedule laws' shared premise.

    .venv/bin/python -m experiments.laws_lm area --root results/laws/lm/runs

In every LM schedule set here, a law fitted on the constant run and the long cosine
over-predicts the final loss of the cosine at half the horizon by about 1% (laws_lm,
laws_lm_w64, laws_lm_long). Both laws write the loss as a power law P(S) in the LR area
S = sum of eta_t (warmup included), minus an annealing term LD that a decrease of the LR adds.
The constant run has no LD, so its own curve gives P. That allows a model-free reading of
what LD must be at the end of an annealed run R of T steps:

    gain_area(R) = L_const(t_eq) - L_R(T),  where the constant run's area at t_eq equals R's at T.

For two cosines of the same peak and final LR, the half-horizon one passes through the same LR
levels in half the steps. After each decrease it accumulates half the area. Both laws' annealing
term grows with the area since each decrease: the multi-power law's G(eta**-gamma S_k), and the
annealing law's momentum sum S2. So for any parameters, LD(short cosine) <= LD(long cosine).
This module measures both sides of that inequality:

- gain_area (and the equal-step gain L_const(T) - L_R(T)) of every annealed run, seed means,
  beside LD at the forecast's fit (the multi-power law on constant + long cosine) and that fit's
  power-law part at the run's area minus L_const(t_eq) (the forecast's error in nats is their
  sum: power_part_err + gain_area - ld_fit);
- the largest LD(short) / LD(long) over random parameter draws spanning each law's fit bounds
  (B or C = 1; LD is proportional to it);
- a post hoc fit with both cosines in the fit set (constant + long cosine + short cosine), and
  each fitted final's relative error. When gain_area(short) > gain_area(long), no parameters
  fit both cosines. The fit has to split the difference.

Post hoc, a clock other than the area: the multi-power law with every LR eta replaced by
eta**p (p = 1 is the law; p = 0 would count steps), fitted on constant + long cosine as the
forecasts are, for each p in POWERS, with the fit runs' RMSE and each held-out final's error;
the RMSE of the same law fitted on the two cosines, or on constant + both cosines (can those fit
sets choose p?); and the long cosine forecast from constant + the short one. Last, the law at
each p fitted on every run of the set, in sample: the closest the family comes to all finals.

It writes ``area_clock.csv`` (gains and the bound), ``area_fit.csv`` (the fit with both
cosines), ``area_power.csv`` (the eta**p profile), ``area_capacity.csv`` (the in-sample fits)
and ``area_clock.png`` (loss against LR area: the constant curve and each run's end).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from anytime import cli
from anytime.laws import AnnealingLaw, MultiPowerLaw
from experiments.laws_lm import data as lld
from experiments.laws_lm import grid as ll
from experiments.laws_lm import long, w64

# (key, width, peak LR, model shape, horizon in units, eval interval, run-name prefix): the
# schedule sets; "fresh_" is laws_lm_repeat's set on the fresh split (lld.retarget's names),
# "lr0.02_" laws_lm_clock's at peak 2e-2 (its PREFIX). Reading logs needs only the names.
SETTINGS = (
  ("w32_8u", ll.SCHEDULE_WIDTH, ll.SCHEDULE_LR, None, ll.SCHEDULE_HORIZON, ll.DENSE_EVERY, ""),
  ("w48_8u", w64.SIZE_WIDTH, w64.SIZE_LR, None, ll.SCHEDULE_HORIZON, ll.DENSE_EVERY, ""),
  ("w64_8u", w64.WIDTH, w64.SCHEDULE_LR, w64.SHAPE, ll.SCHEDULE_HORIZON, ll.DENSE_EVERY, ""),
  ("w32_32u", long.WIDTH, long.PEAK_LR, None, long.HORIZON, long.EVERY, ""),
  ("fresh_w32_32u", long.WIDTH, long.PEAK_LR, None, long.HORIZON, long.EVERY, "fresh_"),
  ("lr0.02_w32_32u", long.WIDTH, 2e-2, None, long.HORIZON, long.EVERY, "lr0.02_"),
)
SEEDS = ll.DENSE_SEEDS
N_DRAWS = 2000  # random parameter draws for the bound
POWERS = (1.0, 0.75, 0.5, 0.35, 0.25)  # the post hoc clock eta**p
LAWS = (("multipower", MultiPowerLaw, "B"), ("annealing", AnnealingLaw, "C"))


def labels(horizon: float) -> tuple[str, ...]:
  return ("constant", f"cosine_h{horizon:g}", f"cosine_h{horizon / 2:g}", *long.WSD)


def seed_curves(root: str, setting) -> list[dict] | None:
  """[{label: LossCurve} per seed] of one schedule set, or None if any of its runs is missing."""
  _, width, peak, shape, horizon, every, prefix = setting
  runs = []
  for seed in SEEDS:
    runs += ll._schedule_runs(
      seed, dense=True, width=width, peak_lr=peak, shape=shape, horizon=horizon, every=every
    )
  runs = lld.prefixed(runs, prefix)
  if any(ll.final_loss(root, r) is None for r in runs):
    return None
  by_name = {r.name: r for r in runs}
  return [
    {lb: ll.curve(root, by_name[prefix + ll.dense_name(lb, s, width, horizon, every)], by_name)
     for lb in labels(horizon)}
    for s in SEEDS
  ]  # fmt: skip


def complete_sets(root: str):
  """Yields (key, horizon, per-seed curves, primary fit window) of each complete schedule set
  under ``root``; names the ones skipped."""
  for setting in SETTINGS:
    key, horizon = setting[0], setting[4]
    per_seed = seed_curves(root, setting)
    if per_seed is None:
      print(f"{key}: not every run under {root}; skipped")
      continue
    yield key, horizon, per_seed, long.MIN_STEPS[0] if horizon == long.HORIZON else 100


def seed_mean(per_seed: list[dict]) -> dict:
  return {lb: ll._mean_curve(lb, [c[lb] for c in per_seed]) for lb in per_seed[0]}


def gain_ratio(curves: dict, horizon: float) -> float:
  """gain_area(short cosine) / gain_area(long cosine)."""
  const = curves["constant"]
  short, long_ = (gains(const, curves[f"cosine_h{h:g}"]) for h in (horizon / 2, horizon))
  return short["gain_area"] / long_["gain_area"]


def area(curve, lr_ref: float) -> np.ndarray:
  """The LR area (units of lr_ref) after updates 0..T: area[k] = sum eta_1..eta_k."""
  return np.concatenate([[0.0], np.cumsum(curve.lrs / lr_ref)])


def gains(const, run) -> dict:
  """The annealed ``run``'s final against the constant run at equal area and at equal step."""
  t = int(run.steps[-1])
  peak = float(const.lrs.max())
  s_run, s_const = area(run, peak)[t], area(const, peak)
  if not s_run <= s_const[-1]:
    raise ValueError(f"{run.name}: its area {s_run:.1f} exceeds the constant run's.")
  t_eq = float(np.interp(s_run, s_const, np.arange(s_const.size)))
  if t_eq < const.steps[0]:
    raise ValueError(f"{run.name}: equal-area step {t_eq:.0f} precedes the constant run's evals.")
  l_eq = float(np.interp(t_eq, const.steps, const.loss))
  l_step = float(np.interp(t, const.steps, const.loss))
  l_run = float(run.loss[-1])
  return dict(
    steps=t, area=s_run, t_eq=t_eq, loss=l_run, gain_area=l_eq - l_run, gain_step=l_step - l_run
  )


def _draws(law_name: str, rng, n: int) -> np.ndarray:
  """Random shape parameters over the fit bounds (the amplitude, B or C, is 1)."""
  if law_name == "multipower":  # L0, A, alpha, B, C, beta, gamma
    c = 10.0 ** rng.uniform(-4, 4, n)
    beta = 10.0 ** rng.uniform(-2, np.log10(20), n)
    gamma = rng.uniform(0, 2, n)
    return np.stack([np.zeros(n), np.zeros(n), np.full(n, 0.5), np.ones(n), c, beta, gamma], 1)
  decay = 1 - 10.0 ** rng.uniform(-5, 0, n)  # L0, A, alpha, C, decay: dense near 1
  return np.stack([np.zeros(n), np.zeros(n), np.full(n, 0.5), np.ones(n), decay], 1)


def annealing_term(law, params, feats, amplitude: str) -> float:
  """LD at the curve's last record: the law with the annealing amplitude zeroed, minus the law."""
  off = np.array(params, dtype=float)
  off[law.names.index(amplitude)] = 0.0
  return float(law.predict_from(off, feats)[-1] - law.predict_from(params, feats)[-1])


def largest_ratio(short, long_, law_name: str, n: int = N_DRAWS, seed: int = 0) -> float:
  """max over random parameters of LD(short curve) / LD(long curve), both at their ends."""
  _, cls, amplitude = next(x for x in LAWS if x[0] == law_name)
  law = cls()
  lr_ref = max(short.lrs.max(), long_.lrs.max())
  fs, fl = law.features(short, lr_ref), law.features(long_, lr_ref)
  ratios = []
  for p in _draws(law_name, np.random.default_rng(seed), n):
    ld_long = annealing_term(law, p, fl, amplitude)
    if ld_long > 1e-12:  # draws whose term vanishes on both say nothing
      ratios.append(annealing_term(law, p, fs, amplitude) / ld_long)
  return float(np.max(ratios))


def clock_rows(key: str, horizon: float, curves: dict, min_step: int) -> list[dict]:
  """Each annealed run's gains; the law's LD and power-law error at the forecast's fit (the
  multi-power law on constant + long cosine); the bound on LD(short) / LD(long)."""
  const = curves["constant"]
  long_label, short_label = f"cosine_h{horizon:g}", f"cosine_h{horizon / 2:g}"
  cut = {k: ll._cut(c, min_step) for k, c in curves.items()}
  fitted = MultiPowerLaw().fit([cut["constant"], cut[long_label]])
  params = fitted.result.params
  rows = []
  for k, c in curves.items():
    if k == "constant":
      continue
    g = gains(const, c)
    feats = fitted.law.features(c, fitted.lr_ref)
    ld = annealing_term(fitted.law, params, feats, "B")
    # the law's power-law part at the run's area, against the constant run's loss there
    p_err = float(fitted.law.predict_from(params, feats)[-1]) + ld - (g["loss"] + g["gain_area"])
    rows.append(dict(setting=key, run=k, **g, ld_fit=ld, power_part_err=p_err))
  bound = {name: largest_ratio(curves[short_label], curves[long_label], name) for name, *_ in LAWS}
  by_run = {r["run"]: r for r in rows}
  measured = gain_ratio(curves, horizon)
  at_fit = by_run[short_label]["ld_fit"] / by_run[long_label]["ld_fit"]
  for r in rows:
    for k in ("loss", "gain_area", "gain_step", "ld_fit", "power_part_err"):
      r[k] = f"{r[k]:+.5f}" if k == "power_part_err" else f"{r[k]:.5f}"
    r["area"], r["t_eq"] = f"{r['area']:.1f}", f"{r['t_eq']:.0f}"
    if r["run"] == short_label:
      r["gain_ratio_short_long"] = f"{measured:.3f}"
      r["ld_ratio_at_fit"] = f"{at_fit:.3f}"
      r.update({f"law_max_ratio_{name}": f"{v:.3f}" for name, v in bound.items()})
  return rows


def both_cosines_fit(key: str, horizon: float, curves: dict, min_step: int) -> list[dict]:
  """The multi-power law on constant + both cosines (post hoc): each run's final error."""
  fit_set = ("constant", f"cosine_h{horizon:g}", f"cosine_h{horizon / 2:g}")
  cut = {k: ll._cut(c, min_step) for k, c in curves.items()}
  fitted = MultiPowerLaw().fit([cut[k] for k in fit_set])
  rows = []
  for k, c in cut.items():
    pred = float(fitted.predict(c)[-1])
    rows.append(
      dict(
        setting=key,
        min_step=min_step,
        run=k,
        role="fit" if k in fit_set else "held-out",
        final_true=f"{c.loss[-1]:.5f}",
        final_pred=f"{pred:.5f}",
        final_rel_err=f"{pred / c.loss[-1] - 1:+.5f}",
      )
    )
  return rows


def power_profile(key: str, horizon: float, curves: dict, min_step: int) -> list[dict]:
  """The multi-power law on eta**p for each p in POWERS, fitted on constant + long cosine."""
  fit_set = ("constant", f"cosine_h{horizon:g}")
  rows = []
  for p in POWERS:
    cut = {k: ll._cut(dataclasses.replace(c, lrs=c.lrs**p), min_step) for k, c in curves.items()}
    fitted = MultiPowerLaw().fit([cut[k] for k in fit_set])
    rel = {k: fitted.predict(c) / c.loss - 1 for k, c in cut.items()}
    rmse = float(np.sqrt(np.mean(np.concatenate([rel[k] ** 2 for k in fit_set]))))
    held = {k: float(v[-1]) for k, v in rel.items() if k not in fit_set}
    # could a second cosine instead of the constant run pick p? its fit runs' RMSE at this p
    cosines = (f"cosine_h{horizon:g}", f"cosine_h{horizon / 2:g}")
    two = MultiPowerLaw().fit([cut[k] for k in cosines])
    rel_two = np.concatenate([two.predict(cut[k]) / cut[k].loss - 1 for k in cosines])
    # could three fit runs pick p? the RMSE of constant + both cosines, and the long cosine
    # forecast from constant + short cosine (the direction opposite to the forecasts')
    three_set = ("constant", *cosines)
    three = MultiPowerLaw().fit([cut[k] for k in three_set])
    rel_three = np.concatenate([three.predict(cut[k]) / cut[k].loss - 1 for k in three_set])
    swapped = MultiPowerLaw().fit([cut["constant"], cut[cosines[1]]])
    long_c = cut[cosines[0]]
    err_long = float(swapped.predict(long_c)[-1] / long_c.loss[-1] - 1)
    rows.append(
      dict(
        setting=key,
        min_step=min_step,
        power=p,
        fit_rmse_rel=f"{rmse:.5f}",
        **{f"err_{k}": f"{v:+.5f}" for k, v in held.items()},
        largest_abs_err=f"{max(abs(v) for v in held.values()):.5f}",
        fit_rmse_rel_two_cosines=f"{np.sqrt(np.mean(rel_two**2)):.5f}",
        fit_rmse_rel_three=f"{np.sqrt(np.mean(rel_three**2)):.5f}",
        err_long_cosine_from_short=f"{err_long:+.5f}",
      )
    )
  return rows


def capacity_rows(key: str, curves: dict, min_step: int) -> list[dict]:
  """The multi-power law on eta**p fitted on every run of the set (in sample): how close can the
  law family come to all finals at once? A final it misses here, no fit set forecasts."""
  cut = {k: ll._cut(c, min_step) for k, c in curves.items()}
  rows = []
  for p in POWERS:
    fitted = MultiPowerLaw(lr_power=p).fit(list(cut.values()))
    errs = {k: float(fitted.predict(c)[-1] / c.loss[-1] - 1) for k, c in cut.items()}
    rows.append(
      dict(
        setting=key,
        min_step=min_step,
        power=p,
        **{f"err_{k}": f"{v:+.5f}" for k, v in errs.items()},
        largest_abs_err=f"{max(abs(v) for v in errs.values()):.5f}",
        at_bound=ll._at_bound(fitted),
      )
    )
  return rows


def _plot(all_curves: dict, path: str) -> None:
  plt = ll._pyplot()
  fig, axes = plt.subplots(1, len(all_curves), figsize=(4.2 * len(all_curves), 3.8))
  for ax, (key, curves) in zip(np.atleast_1d(axes), all_curves.items(), strict=True):
    const = curves["constant"]
    peak = float(const.lrs.max())
    s = area(const, peak)
    ax.plot(s[const.steps], const.loss, color="0.3", lw=1.5, label="constant")
    for (k, c), color in zip(
      ((k, c) for k, c in curves.items() if k != "constant"), plt.cm.tab10.colors, strict=False
    ):
      sc_ = area(c, peak)
      n = min(c.lrs.size, const.lrs.size)
      first = int(np.argmax(c.lrs[:n] != const.lrs[:n]))  # a branch: from where it leaves
      keep = c.steps > first
      ax.plot(sc_[c.steps[keep]], c.loss[keep], color=color, lw=0.8, alpha=0.8)
      ax.plot(sc_[c.steps[-1]], c.loss[-1], "o", color=color, ms=5, label=k)
    ax.set_xlim(0.1 * s[-1], 1.05 * s[-1])
    lo = min(c.loss[-1] for c in curves.values())
    ax.set_ylim(lo - 0.05, lo + 0.6)
    ax.set(title=key, xlabel="LR area (steps at peak LR)", ylabel="validation loss, seed mean")
  np.atleast_1d(axes)[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None) -> int:
  p = ll.parser(__doc__)
  p.add_argument("--root", default="runs/laws_lm", help="the runs' workdirs")
  p.add_argument("--out", default="results/laws/lm", help="CSV + PNG output directory")
  args = p.parse_args(argv)
  args.root = ll.open_root("--root", args.root)
  rows, fits, powers, capacity, all_curves = [], [], [], [], {}
  for key, horizon, per_seed, min_step in complete_sets(args.root):
    curves = seed_mean(per_seed)
    all_curves[key] = curves
    rows += clock_rows(key, horizon, curves, min_step)
    ratios = " ".join(f"{gain_ratio(c, horizon):.3f}" for c in per_seed)
    next(r for r in rows[::-1] if "gain_ratio_short_long" in r)["gain_ratio_per_seed"] = ratios
    fits += both_cosines_fit(key, horizon, curves, min_step)
    powers += power_profile(key, horizon, curves, min_step)
    capacity += capacity_rows(key, curves, min_step)
  if not rows:
    raise ValueError(f"no complete schedule set under {args.root}: nothing to measure.")
  os.makedirs(args.out, exist_ok=True)
  ll._write_csv(os.path.join(args.out, "area_clock.csv"), rows)
  ll._write_csv(os.path.join(args.out, "area_fit.csv"), fits)
  ll._write_csv(os.path.join(args.out, "area_power.csv"), powers)
  ll._write_csv(os.path.join(args.out, "area_capacity.csv"), capacity)
  _plot(all_curves, os.path.join(args.out, "area_clock.png"))
  cli.print_rows(rows + fits + powers + capacity)
  return 0
