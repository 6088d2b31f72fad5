"""Sweep definitions: ``get_config(NAME)`` for NAME in SWEEPS (150m, 300m, fig2, mini, ...).

A sweep is the grid of LM runs behind one anytime-vs-cosine comparison (docs/design.md
section 5). ``anytime/sweeps/launch.py`` expands it into runs of configs/lm.py and
launches them; ``anytime/sweeps/report.py`` turns their eval logs into the
per-horizon table. Every run is ``python -m anytime.lm
--config=configs/lm.py:<model, schedule, horizon, lr, b2, seed> --workdir=<root>/<name>``
plus the ``--config.FIELD=VALUE`` overrides of ``lm_overrides`` and those the
method needs (the horizons to evaluate, the WSD branch point, ...).

Methods (each section has ``enabled``, the peak LR grid ``lrs`` and the AdamW
``b2s``):

  cosine         one run per horizon x lr x b2, cosine to 0.1x peak at that horizon
  constant       one run to the longest horizon per lr x b2, keeping ``averages``
  inverse_sqrt   one run to the longest horizon per offset x lr x b2, keeping ``averages``
  wsd            branches of the constant runs at ``branch_fraction`` of each horizon,
                 linear decay to 0.1x peak at the horizon (trainer's ``init_from``)
  schedule_free  Schedule-Free AdamW (optax.contrib.schedule_free_adamw), one run to the
                 longest horizon per lr x b2, evaluated at its eval params

``noise`` repeats a few runs with other seeds so the report can state the
seed-to-seed spread next to the deltas.
"""

from __future__ import annotations

import ml_collections

# Proportional-EMA averages of the paper (anytime.averaging.proportional_ema(gamma)).
PAPER_AVERAGES = ("pema6.25", "pema12.5", "pema25", "pema50", "pema100")
SWEEPS = ("150m", "300m", "fig2", "mini", "demo", "smoke")


def _method(lrs, b2s, enabled=True) -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  m.enabled = enabled  # False: the method is left out of the sweep
  m.lrs = tuple(lrs)  # peak learning rates
  m.b2s = tuple(b2s)  # AdamW beta2 values
  return m


def _base(name: str, model: str, horizons, lrs, b2s) -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.name = name  # the sweep's name (its runs live in <root>/<run name>)
  s.model = model  # configs/lm.py preset of every run
  s.horizons = tuple(horizons)  # compared horizons, Chinchilla multiples; anytime runs go to max
  s.seeds = (0,)  # seeds of every run (init and data order)
  s.lm_overrides = ()  # "FIELD=VALUE" strings given to every run as --config.FIELD=VALUE
  s.averages = PAPER_AVERAGES  # averages kept by the anytime runs (opt.averages)
  s.main_average = "pema25"  # the paper's headline average (EMA-25), reported on its own

  s.cosine = _method(lrs, b2s)
  s.cosine.extra_lrs = ()  # more peak LRs tried only at short horizons
  s.cosine.extra_lrs_max_horizon = 0.0  # ... at horizons <= this (Chinchilla multiples)

  s.constant = _method(lrs, b2s)
  # More peak LRs run only to the largest horizon <= extra_lrs_max_horizon (their WSD branches
  # then stop there too).
  s.constant.extra_lrs = ()
  s.constant.extra_lrs_max_horizon = 0.0

  s.inverse_sqrt = _method(lrs, b2s)
  s.inverse_sqrt.offsets = (12_800.0, 25_600.0, 51_200.0)  # steps; the paper's best is 51.2k

  # lrs x b2s: which constant runs to branch (each in constant's lrs + extra_lrs and b2s); a
  # branch is made at every horizon its constant run reaches.
  s.wsd = _method(lrs, b2s)
  s.wsd.branch_fraction = 0.9  # branch at this fraction of each horizon, decay over the rest
  # Cooldown shapes, each a set of branches (to 0.1x peak): linear (method "wsd") | sqrt
  # (1 - sqrt, "wsd_sqrt") | cosine ("wsd_cosine").
  s.wsd.shapes = ("linear",)

  s.schedule_free = _method(lrs, b2s)
  s.schedule_free.b1 = 0.9  # Schedule-Free interpolation (optax.contrib's b1)

  # Horizon-bound baselines decayed to 0 instead of 0.1x peak (cosine_zero, linear_zero), at a
  # few horizons: does the cosine floor explain a gap?
  s.to_zero = _method(lrs, b2s, enabled=False)
  s.to_zero.horizons = ()  # Chinchilla multiples, some of horizons
  s.to_zero.schedules = ("cosine", "linear_decay")  # cosine_zero, linear_zero

  s.noise = ml_collections.ConfigDict()
  s.noise.seeds = ()  # extra seeds for the runs below (empty: no seed repeats)
  s.noise.horizons = ()  # cosine horizons repeated (anytime runs always span every horizon)
  s.noise.methods = ("cosine", "constant")  # which methods are repeated
  s.noise.lr = lrs[0]  # the repeated runs' peak LR ...
  s.noise.b2 = b2s[0]  # ... and beta2 (inverse_sqrt: its largest offset)

  # Headline seeds (anytime/sweeps/headline.py): once the grid is done, the headline configs
  # (tuned cosine per horizon + the Figure-2 constant / inverse-sqrt trajectories, selected on
  # seeds[0] and recorded in <root>/headline.json) are repeated with these seeds (empty: none).
  s.headline = ml_collections.ConfigDict()
  s.headline.seeds = ()
  # Training tokens of the corpus (one epoch), for the report's epochs column (0: unknown).
  s.report_train_tokens = 0
  return s


def _paper(model: str) -> ml_collections.ConfigDict:
  """The paper's grids, from its code (alexandrumeterez/anytime-training, configs/kempner/sweeps
  and reproducibility/run_manifest.json; docs/sweeps.md lists the files behind each line).

  150m (batch 256, warmup 5000; sweep groups chinchilla_32x, second_sweep_cosine,
  8x_anytime_wsd_sweep_decays): cosine {3e-4, 1e-3, 3e-3} x b2 {.95, .98, .99} at 1-32x,
  + 1e-2 at 1-8x; constant {3e-4, 1e-3, 3e-3} to 32x, + 1e-2 to 8x (wsd.yaml); inverse-sqrt
  {3e-4, 1e-3, 3e-3} x b2 {.98, .99} x offsets {12.8k, 25.6k, 51.2k} (32_chinchilla/sqrt.yaml);
  WSD branches at 0.9 H of the {1e-3, 3e-3, 1e-2} constant runs, linear to 0.1x.
  300m (batch 512, warmup 5000; groups fixed_300m_16x_chinchilla, decay_300m): every method
  {3e-4, 1e-3, 3e-3} x b2 {.95, .99} at 1-16x, the same three offsets.
  """
  if model == "150m":
    s = _base(model, model, (1, 2, 4, 8, 16, 32), lrs=(3e-4, 1e-3, 3e-3), b2s=(0.95, 0.98, 0.99))
    s.cosine.extra_lrs = (1e-2,)  # second_sweep_cosine: 1e-3, 3e-3, 1e-2 at 1-8x
    s.cosine.extra_lrs_max_horizon = 8.0
    s.constant.extra_lrs = (1e-2,)  # wsd.yaml: constant 1e-2 to 8x (WSD parents)
    s.constant.extra_lrs_max_horizon = 8.0
    s.inverse_sqrt.b2s = (0.98, 0.99)  # 32_chinchilla/sqrt.yaml: no 0.95
    s.wsd.lrs = (1e-3, 3e-3, 1e-2)  # wsd_decay*.yaml: no 3e-4 branches
  else:
    s = _base(model, model, (1, 2, 4, 8, 16), lrs=(3e-4, 1e-3, 3e-3), b2s=(0.95, 0.99))
  # The data: pre-tokenized C4 with the T5 tokenizer (set data.path on the command line).
  return s


def _mini() -> ml_collections.ConfigDict:
  """The first CPU miniature (docs/sweeps.md; superseded by fig2): about 3 h on 2 cores."""
  # Peak LRs half a decade apart. Session 1 ran {1e-3, 3e-3} and cosine chose its top (1e-2) at
  # 1-4x, so every method now also gets 1e-2 and cosine 3e-2 at short horizons: optima bracketed.
  s = _base("mini", "nano", (1, 2, 4, 8, 16), lrs=(1e-3, 3e-3, 1e-2), b2s=(0.95,))
  s.lm_overrides = (
    "model.d_model=48",  # d 48, 2 layers, 2 heads, MLP 192: 55.6k non-embedding params
    "model.num_heads=2",
    "model.mlp_dim=192",
    "batch_size=32",  # 32 x 128 = 4,096 tokens per step
    "steps_per_chinchilla=270",  # 1x = 1.106M tokens = 19.9 tokens per non-embedding param
    "opt.warmup_steps=60",  # 22% of 1x (the paper: 5000 of 12,500 steps = 40%)
    "eval_batches=16",  # 16 x 32 x 128 = 65.5k validation tokens per evaluation
    "checkpoint_every=1000",
    "data.tokenizer_vocab_size=1024",  # small vocabulary: the unembedding dominates FLOPs
    "data.extra_text_dirs=('<stdlib>/test',)",  # stdlib + its tests: 11.3M train tokens
  )  # 16x = 17.7M tokens = 1.6 epochs
  # Second round: with {1e-3, 3e-3, 1e-2} cosine chose 3e-2 at 1-4x and 1e-2 at 8-16x and every
  # anytime method chose 1e-2, each at its grid's top; 3e-2 for cosine at every horizon and for
  # constant (+ its WSD branches) brackets the headline comparison.
  s.cosine.extra_lrs = (3e-2,)
  s.cosine.extra_lrs_max_horizon = 16.0
  s.constant.lrs = (1e-3, 3e-3, 1e-2, 3e-2)
  s.wsd.lrs = (1e-3, 3e-3, 1e-2, 3e-2)
  s.schedule_free.lrs = (
    3e-3,
    1e-2,
  )  # 1e-3 is too small for every method here (saves 16x of compute)
  s.inverse_sqrt.offsets = (1080.0,)  # 4x Chinchilla, as the paper's best 51.2k ~ 4.1 x 12.5k
  s.noise.seeds = (1,)
  s.noise.horizons = (1, 8)
  s.noise.methods = ("cosine",)  # add "constant" for the anytime side (+16x of training)
  s.noise.lr = 3e-3
  return s


def _fig2() -> ml_collections.ConfigDict:
  """Figure 2 in miniature (issue #30; docs/sweeps.md, "fig2"): the paper's protocol on the
  micro preset (55.6k non-embedding params, the paper's init and architecture) and the offline
  natural-text corpus (python -m anytime.lm.natural_corpus; 32x = 35.4M tokens = 0.70 epochs).

  Stated before the runs (the Figure-2 rule): the one constant trajectory is the constant run
  and EMA (lr, gamma in 12.5 / 25 / 50) with the lowest mean over the six horizons of its loss
  minus the tuned cosine loss of that horizon (seed 0); the one inverse-sqrt trajectory
  likewise over (lr, offset, gamma). Every other column is tuned per horizon. The headline
  configurations (tuned cosine per horizon, the two trajectories) are then repeated with
  seeds 1 and 2, paired (same init and data order across methods for a seed).

  Grid: peak LRs on the sqrt(2) grid around a 1x cosine probe (0.016 / 0.032 / 0.045 gave
  5.130 / 5.074 / 5.114 nats), extended by --bracket until every selected LR is interior.
  """
  s = _base("fig2", "micro", (1, 2, 4, 8, 16, 32), lrs=(0.0113, 0.016, 0.0226), b2s=(0.95,))
  s.lm_overrides = (
    "data.source=tokens",  # the corpus' rows: --set data.path=OUT/rows when launching
    # The corpus' vocabulary, stated so that listing and reporting need no data on disk
    # (on C4 with the T5 tokenizer: --set model.vocab_size=32128).
    "model.vocab_size=4096",
    "eval_points=0",  # evaluate at the horizons (and WSD branch points) only ...
    "eval_batch_size=216",  # ... on the whole validation split: 216 x 31 = 6,696 rows of
    "eval_batches=31",  # 128 tokens = 857,088 tokens, every held-out document
    "checkpoint_every=1000",
    "log_every=100",
  )
  s.averages = ("pema12.5", "pema25", "pema50")
  s.main_average = "pema25"
  s.cosine.lrs = (0.016, 0.0226, 0.032)
  s.cosine.extra_lrs = (0.045,)  # the 1x probe's right neighbour, at the short horizons
  s.cosine.extra_lrs_max_horizon = 2.0
  s.inverse_sqrt.lrs = (0.016, 0.0226, 0.032)
  s.inverse_sqrt.offsets = (1080.0,)  # 4x Chinchilla, as the paper's best 51.2k ~ 4.1 x 12.5k
  s.wsd.shapes = ("linear", "sqrt")
  s.schedule_free.lrs = (0.016, 0.0226)
  s.to_zero.enabled = True
  s.to_zero.horizons = (1.0, 4.0)
  s.to_zero.lrs = (0.0226, 0.032)
  s.headline.seeds = (1, 2)  # the headline configs repeated with seeds 1 and 2 (paired)
  # One epoch of the natural corpus: 393,784 training rows x 128 tokens (of its 50,405,804
  # training tokens, docs/data.md): the report's epochs column.
  s.report_train_tokens = 50_404_352
  return s


def _demo() -> ml_collections.ConfigDict:
  """`make demo`'s LM part: the mini comparison shrunk to a few minutes, fixed peak LRs."""
  s = _base("demo", "nano", (1, 2, 4), lrs=(1e-2,), b2s=(0.95,))
  s.lm_overrides = (
    "model.d_model=32",  # d 32, 2 layers, 2 heads, MLP 128: 24.8k non-embedding params
    "model.num_heads=2",
    "model.mlp_dim=128",
    "batch_size=16",  # 16 x 128 = 2,048 tokens per step
    "steps_per_chinchilla=240",  # 1x = 492k tokens = 19.8 tokens per non-embedding param
    "opt.warmup_steps=50",
    "eval_batches=8",  # 8 x 16 x 128 = 16.4k validation tokens per evaluation
    "eval_points=12",  # log-spaced evaluations besides the horizons
    "checkpoint_every=0",  # only the horizon checkpoints (WSD branches start from them)
    "data.tokenizer_vocab_size=1024",
  )
  s.averages = ("pema6.25", "pema25")
  s.main_average = "pema25"
  s.cosine.lrs = (1e-2,)  # the mini grid's choice at short horizons
  s.constant.lrs = (3e-3,)  # ... and for constant + EMA
  s.wsd.lrs = (3e-3,)
  s.inverse_sqrt.enabled = False  # the full miniature has them
  s.schedule_free.enabled = False
  return s


def _smoke() -> ml_collections.ConfigDict:
  """Seconds per run: proves launcher -> trainer -> report end to end (synthetic data)."""
  s = _base("smoke", "tiny", (1, 2), lrs=(3e-3,), b2s=(0.95,))
  s.lm_overrides = (
    "data.source=synthetic",
    "steps_per_chinchilla=20",
    "opt.warmup_steps=2",
    "eval_points=4",
    "eval_batches=2",
    "log_every=10",
    "checkpoint_every=0",
    "async_checkpoints=False",
  )
  s.averages = ("pema6.25", "pema25")
  s.main_average = "pema25"
  s.cosine.lrs = (3e-3, 1e-2)
  s.inverse_sqrt.offsets = (20.0,)
  s.noise.seeds = (1,)
  s.noise.horizons = (1,)
  s.noise.methods = ("cosine",)
  return s


def get_config(arg: str = "150m") -> ml_collections.ConfigDict:
  """The sweep named ``arg`` (one of SWEEPS)."""
  arg = (arg or "150m").strip()
  if arg in ("150m", "300m"):
    return _paper(arg)
  if arg == "mini":
    return _mini()
  if arg == "fig2":
    return _fig2()
  if arg == "demo":
    return _demo()
  if arg == "smoke":
    return _smoke()
  raise ValueError(f"sweep {arg!r} is unknown; allowed: {SWEEPS}.")
