"""The fitting command reads LM trainer workdirs (train.jsonl + eval.jsonl, trainer format)."""

import json
import os

import numpy as np

import anytime
from anytime.laws import AnnealingLaw, from_schedule
from experiments.laws_fit import load_lm_workdirs

T, PEAK, WARMUP = 1200, 3e-3, 100
TRUE = np.array([3.0, 2.0, 0.3, 3e-4])  # L0, A, alpha, C of an annealing law with decay 0.99


def write_workdir(root, name, schedule, rng):
  d = os.path.join(root, name)
  os.makedirs(d)
  law = AnnealingLaw(decay=0.99)
  eval_steps = np.unique(np.round(np.geomspace(50, T, 25)).astype(int))
  curve = from_schedule(
    name, schedule, T, eval_steps, np.ones(eval_steps.size), warmup_steps=WARMUP
  )
  loss = law.predict_from(TRUE, law.features(curve, PEAK)) * (1 + 1e-3 * rng.standard_normal(25))
  with open(os.path.join(d, "train.jsonl"), "w") as f:
    for step in [1, *range(10, T + 1, 10)]:  # the trainer logs step 1 and every log_every
      rec = {"step": step, "loss": 9.9, "lr": float(schedule(step - 1)), "grad_norm": 1.0}
      f.write(json.dumps(rec) + "\n")
  with open(os.path.join(d, "eval.jsonl"), "w") as f:
    header = {"kind": "header", "lr": PEAK, "params": {"total": 2e6, "non_embedding": 1e6}}
    f.write(json.dumps(header) + "\n")
    for step, lo in zip(eval_steps, loss, strict=True):
      rec = {"kind": "eval", "step": int(step), "loss": {"raw": float(lo), "ema25": 0.0}}
      f.write(json.dumps(rec) + "\n")
  return d


def test_lm_workdirs_are_read_and_fitted(tmp_path):
  rng = np.random.default_rng(0)
  kw = dict(warmup_steps=WARMUP, final_value=0.1 * PEAK)
  scheds = {
    "constant": anytime.constant(PEAK, warmup_steps=WARMUP),
    "cosine": anytime.cosine(PEAK, T, **kw),
    "wsd": anytime.wsd(PEAK, T, decay_steps=T // 5, shape="linear", **kw),
  }
  dirs = [write_workdir(str(tmp_path), n, s, rng) for n, s in scheds.items()]
  runs = load_lm_workdirs(dirs, "eval.jsonl", "loss/raw", warmup_steps=WARMUP)
  assert set(runs) == set(scheds)
  assert runs["wsd"].model_size == 1e6 and runs["wsd"].steps[0] == 50
  # LRs logged every 10 steps, interpolated: within 1% of the schedule after warmup
  want = np.asarray(scheds["cosine"](np.arange(T)))
  assert np.max(np.abs(runs["cosine"].lrs[WARMUP:] / want[WARMUP:] - 1)) < 0.01
  fitted = AnnealingLaw(decay=0.99).fit([runs["constant"], runs["cosine"]])
  res = fitted.result
  assert np.all(np.abs(res.params - TRUE) < 3 * res.stderr), (res.params, res.stderr)
  pred = fitted.predict(runs["wsd"])
  assert abs(pred[-1] / runs["wsd"].loss[-1] - 1) < 0.005  # held-out WSD final within 0.5%
