"""Annealing laws on exact theory curves: fit on constant + cosine, predict held-out schedules.

    .venv/bin/python -m experiments.laws theory [--steps 4000] [--out results/laws]

For each problem (capacity 1.5, source 1.5 and 3.0, dim 2000, noise 0.01; peak
step 0.5 / tr(H)), the exact excess-risk curves of ``theory.risk_curve`` stand
in for loss curves, in two forms: the population loss ``excess + sigma**2 / 2``
(the analogue of an LM loss, whose irreducible part is the law's ``L0``) and
the bare excess risk (no floor). Each law (annealing, multi-power, forward-momentum) is fitted
on the constant and cosine runs (steps >= T/20) and predicts the held-out runs:
WSD with 10%/20% linear and 1-sqrt cooldowns, t**-gamma decays (gamma = 1/2, 1
and the theory's optimal gamma* when it is > 0), and a cosine with twice the horizon stopped at T.
Writes ``theory_prediction.csv`` (relative error of the final value and mean
relative error over the curve, per law and schedule), ``theory_choice.csv``
(the WSD cooldown and cosine horizon each law picks without running them,
against the truth from the recursion) and ``theory_fit.png``.
"""

from __future__ import annotations

import argparse
import csv
import os
import time

import numpy as np

import anytime
import theory
from anytime import cli
from anytime.laws import AnnealingLaw, ForwardMomentumLaw, MultiPowerLaw, from_schedule

PROBLEMS = {"a1.5_b1.5": (1.5, 1.5), "a1.5_b3.0": (1.5, 3.0)}
DIM = 2000
NOISE = 0.01
PEAK_MULT = 0.5
FINAL = 0.1  # cosine and WSD anneal to 0.1 x peak, as in the paper
FIT = ("constant", "cosine")  # the default fit set; --fit changes it
LAWS = {
  "annealing": AnnealingLaw,
  "multipower": MultiPowerLaw,
  "forward_momentum": ForwardMomentumLaw,
}


def schedules(peak: float, steps: int, gamma_star: float) -> dict:
  """Fit and held-out schedules, all of ``steps`` updates."""
  fin = FINAL * peak
  out = {
    "constant": anytime.constant(peak),
    "cosine": anytime.cosine(peak, steps, final_value=fin),
  }
  for frac in (0.1, 0.2):
    for shape, tag in (("linear", "linear"), ("sqrt", "1-sqrt")):
      out[f"wsd{int(frac * 100)}_{tag}"] = anytime.wsd(
        peak, steps, decay_steps=int(frac * steps), shape=shape, final_value=fin
      )
  off = steps / 40
  out["t^-0.5"] = anytime.polynomial_decay(peak, 0.5, offset=off)
  out["t^-1"] = anytime.polynomial_decay(peak, 1.0, offset=off)
  if gamma_star > 0.05:  # the theory's optimal anytime decay (0 = constant for b <= a)
    out[f"t^-{gamma_star:.2f}(gamma*)"] = anytime.polynomial_decay(peak, gamma_star, offset=off)
  out["cosine_2T@T"] = anytime.cosine(peak, 2 * steps, final_value=fin)
  return out


def candidates(peak: float, steps: int) -> dict:
  """Schedules to choose among without running them: WSD cooldowns, cosine horizons."""
  fin = FINAL * peak
  out = {}
  for frac in (0.05, 0.1, 0.2, 0.3, 0.5):
    for shape in ("linear", "sqrt", "cosine"):
      out[("wsd", f"{shape} {frac:.0%}")] = anytime.wsd(
        peak, steps, decay_steps=int(frac * steps), shape=shape, final_value=fin
      )
  for mult in (0.75, 1.0, 1.25, 1.5, 2.0):
    total = int(mult * steps)
    out[("cosine", f"horizon {mult:.2f}T")] = anytime.cosine(peak, total, final_value=fin)
  return out


def record_steps(steps: int) -> np.ndarray:
  lo = steps // 40
  pts = np.concatenate([np.geomspace(lo, steps, 30), np.linspace(lo, steps, 60)])
  return np.unique(np.round(pts).astype(np.int64))


def rel_errors(pred: np.ndarray, true: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
  rel = pred / true - 1.0
  return float(rel[-1]), float(np.mean(np.abs(rel[mask])))


TARGETS = ("population", "excess")


def run(steps: int, out: str, fit=FIT, tag="") -> tuple[list[dict], list[dict], dict]:
  rec = record_steps(steps)
  fit_mask = rec >= steps // 20
  pred_rows, choice_rows, plots = [], [], {}
  for target, (pname, (a, b)) in ((t, item) for t in TARGETS for item in PROBLEMS.items()):
    floor = 0.5 * NOISE if target == "population" else 0.0
    prob = theory.Problem(capacity=a, source=b, dim=DIM, noise_variance=NOISE)
    peak = PEAK_MULT / prob.trace()
    gamma_star = float(theory.rates.optimal_decay(a, b))
    scheds = schedules(peak, steps, gamma_star)
    unknown = [n for n in fit if n not in scheds]
    if unknown:
      raise ValueError(f"fit schedules {unknown} unknown; choose from {sorted(scheds)}.")
    risks = floor + theory.risk_curve(prob, list(scheds.values()), steps=steps, record_steps=rec)
    curves = {
      n: from_schedule(n, s, steps, rec, r) for (n, s), r in zip(scheds.items(), risks, strict=True)
    }
    fit_curves = [
      from_schedule(n, scheds[n], steps, rec[fit_mask], curves[n].loss[fit_mask]) for n in fit
    ]
    cands = candidates(peak, steps)
    cand_true = theory.risk_curve(prob, list(cands.values()), steps=steps, record_steps=[steps])
    cand_true = dict(zip(cands, floor + cand_true[:, -1], strict=True))
    for lname, law_cls in LAWS.items():
      t0 = time.time()
      fitted = law_cls().fit(fit_curves)
      secs = time.time() - t0
      print(f"{target} {pname} {lname}: fitted in {secs:.1f}s, params {fitted.params}")
      for sname, curve in curves.items():
        pred = fitted.predict(curve)
        fin, mean = rel_errors(pred, curve.loss, fit_mask)
        pred_rows.append(
          {
            "target": target,
            "problem": pname,
            "law": lname,
            "schedule": sname,
            "role": "fit" if sname in fit else "held-out",
            "final_true": f"{curve.loss[-1]:.6g}",
            "final_pred": f"{pred[-1]:.6g}",
            "final_rel_err": f"{fin:+.4f}",
            "mean_abs_rel_err": f"{mean:.4f}",
          }
        )
        if target == "population":
          plots[(pname, lname, sname)] = (curve.steps, curve.loss, pred)
      for kind in ("wsd", "cosine"):
        keys = [k for k in cands if k[0] == kind]
        pred_final = {k: fitted.predict_schedule(cands[k], steps, rec[fit_mask])[-1] for k in keys}
        chosen = min(keys, key=pred_final.get)
        best = min(keys, key=cand_true.get)
        choice_rows.append(
          {
            "target": target,
            "problem": pname,
            "law": lname,
            "choice": kind,
            "chosen": chosen[1],
            "true_best": best[1],
            "true_loss_chosen": f"{cand_true[chosen]:.6g}",
            "true_loss_best": f"{cand_true[best]:.6g}",
            "regret_rel": f"{cand_true[chosen] / cand_true[best] - 1:.4f}",
            "pred_loss_chosen": f"{pred_final[chosen]:.6g}",
          }
        )
  os.makedirs(out, exist_ok=True)
  _write(os.path.join(out, f"theory_prediction{tag}.csv"), pred_rows)
  _write(os.path.join(out, f"theory_choice{tag}.csv"), choice_rows)
  return pred_rows, choice_rows, plots


def _write(path: str, rows: list[dict]) -> None:
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
  print(f"wrote {path}")


def plot(plots: dict, path: str, fit=FIT) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  probs = list(PROBLEMS)
  laws = list(LAWS)
  fig, axes = plt.subplots(len(probs), len(laws), figsize=(5 * len(laws), 4 * len(probs)))
  for i, p in enumerate(probs):
    for j, law in enumerate(laws):
      ax = axes[i, j]
      names = [k[2] for k in plots if k[0] == p and k[1] == law]
      for n, color in zip(names, plt.cm.tab10.colors, strict=False):
        steps, true, pred = plots[(p, law, n)]
        ax.plot(steps, true, color=color, lw=2, alpha=0.5, label=n)
        ax.plot(steps, pred, color=color, lw=1, ls="--" if n not in fit else ":")
      ax.set_xscale("log")
      ax.set_yscale("log")
      ax.set_title(f"{p}: {law} (fit: {', '.join(fit)})", fontsize=9)
      ax.set_xlabel("step")
      if j == 0:
        ax.set_ylabel("population loss (thick: exact, dashed: law)")
  axes[0, 0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  print(f"wrote {path}")


def markdown(pred_rows: list[dict], choice_rows: list[dict]) -> str:
  head = "| target | problem | schedule | "
  lines = [head + " | ".join(f"{law} final / mean" for law in LAWS) + " |"]
  lines.append("|" + "---|" * (3 + len(LAWS)))
  keys = dict.fromkeys((r["target"], r["problem"], r["schedule"], r["role"]) for r in pred_rows)
  for t, p, s, role in keys:
    cells = []
    for law in LAWS:
      r = next(
        x
        for x in pred_rows
        if (x["target"], x["problem"], x["schedule"], x["law"]) == (t, p, s, law)
      )
      cells.append(f"{float(r['final_rel_err']):+.1%} / {float(r['mean_abs_rel_err']):.1%}")
    tag = " (fit)" if role == "fit" else ""
    lines.append(f"| {t} | {p} | {s}{tag} | " + " | ".join(cells) + " |")
  lines += [
    "",
    "| target | problem | law | choice | chosen | true best | regret |",
    "|---|---|---|---|---|---|---|",
  ]
  for r in choice_rows:
    lines.append(
      f"| {r['target']} | {r['problem']} | {r['law']} | {r['choice']} | {r['chosen']} | "
      f"{r['true_best']} | {float(r['regret_rel']):.2%} |"
    )
  return "\n".join(lines)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=4000)
  parser.add_argument("--out", default=os.path.join("results", "laws"))
  parser.add_argument(
    "--fit", default=",".join(FIT), help="schedules to fit on (names as in the table)"
  )
  args = parser.parse_args(argv)
  cli.at_least("--steps", args.steps, 100)
  names = list(schedules(1.0, args.steps, 0.0))  # those of every setting (gamma* varies)
  fit = tuple(cli.one_of("--fit", args.fit, names))
  cli.output_dir("--out", args.out)
  tag = "" if fit == FIT else "_fit-" + "+".join(fit)
  pred_rows, choice_rows, plots = run(args.steps, args.out, fit, tag)
  plot(plots, os.path.join(args.out, f"theory_fit{tag}.png"), fit)
  table = markdown(pred_rows, choice_rows)
  with open(os.path.join(args.out, f"theory_table{tag}.md"), "w") as f:
    f.write(table + "\n")
  print(table)
