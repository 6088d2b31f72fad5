"""Sweep validation, run expansion and naming, and the dry listing against hand computation."""

import pytest

from anytime.sweeps import common as sc
from anytime.sweeps import listing


@pytest.fixture(scope="module")
def paper_runs():
  return sc.expand(sc.load_sweep("150m"))


def test_150m_grid_counts_tokens_flops_and_hours_by_hand(paper_runs):
  by = {m: [r for r in paper_runs if r.method == m] for m in sc.RUN_METHODS}
  by = {m: runs for m, runs in by.items() if runs}
  # The paper's grids (configs/kempner/sweeps of its code): cosine 6 horizons x 3 lrs x 3 b2s
  # + 1e-2 at 1-8x x 3 b2s; constant 3 lrs x 3 b2s to 32x + 1e-2 x 3 b2s to 8x; inverse-sqrt
  # 3 lrs x b2 {.98, .99} x 3 offsets; WSD {1e-3, 3e-3} x 3 b2s x 6 horizons + 1e-2 x 3 x 4.
  counts = {"cosine": 54 + 12, "constant": 9 + 3, "inverse_sqrt": 18, "wsd": 36 + 12}
  counts["schedule_free"] = 9  # ours (not in the paper)
  assert {m: len(v) for m, v in by.items()} == counts
  unit = 12_500 * 256 * 1024  # tokens at 1x Chinchilla
  # In units of 1x: cosine 9 x 63 + 3 x 15; constant 9 x 32 + 3 x 8; inverse-sqrt 18 x 32;
  # WSD 10% of 6 x (1+2+...+32) + 3 x (1+2+4+8).
  units = {"cosine": 612, "constant": 312, "inverse_sqrt": 576, "wsd": 42.3, "schedule_free": 288}
  for m, u in units.items():
    assert sum(r.trained_tokens for r in by[m]) == pytest.approx(u * unit), m
  # FLOPs/token: 6 x (non-embedding + unembedding) + 6 x layers x seq x d.
  flops = 6 * (151_045_120 + 32128 * 1024) + 6 * 12 * 1024 * 1024
  assert {r.flops_per_token for r in paper_runs} == {flops} == {1_179_162_624}
  total = sum(units.values()) * unit * flops
  assert sum(r.train_flops for r in paper_runs) == pytest.approx(total)
  hours = total / (0.4 * 989e12) / 3600
  assert hours == pytest.approx(4966, abs=1)
  text = listing.dry_listing(sc.load_sweep("150m"), paper_runs, peak=989e12, mfu=0.4)
  assert f"{'total':<14} {153:>5} {'6T':>10} {total:>12.3e} {'4,966':>12}" in text
  assert all(r.supported for r in paper_runs)  # the trainer runs every method, Schedule-Free too


def test_names_and_branch_points(paper_runs):
  names = {r.name: r for r in paper_runs}
  assert len(names) == len(paper_runs)
  wsd = names["wsd_h4_lr0.001_b0.98_s0"]
  assert wsd.parent == "constant_h32_lr0.001_b0.98_s0" and wsd.parent_step == 45_000
  assert (wsd.start_step, wsd.total_steps) == (45_000, 50_000)
  ov = dict(wsd.overrides)
  assert ov["init_from"] == wsd.parent and ov["init_from_step"] == "45000"
  assert ov["opt.wsd_decay_fraction"] == "0.1" and ov["opt.wsd_shape"] == "linear"
  # The constant run keeps a checkpoint at every branch point (0.9 h) and every horizon.
  const = dict(names["constant_h32_lr0.001_b0.98_s0"].overrides)
  assert const["horizons"] == repr((0.9, 1.0, 1.8, 2.0, 3.6, 4.0, 7.2, 8.0, 14.4, 16.0, 28.8, 32.0))
  cos = names["cosine_h8_lr0.01_b0.95_s0"]
  assert dict(cos.overrides) == {"horizons": "(1.0, 2.0, 4.0, 8.0)", "opt.averages": "()"}
  assert "cosine_h16_lr0.01_b0.95_s0" not in names  # 1e-2 only up to 8x
  # The 1e-2 constant run stops at 8x; its WSD branches too (wsd.yaml, wsd_decay*.yaml).
  assert names["wsd_h8_lr0.01_b0.99_s0"].parent == "constant_h8_lr0.01_b0.99_s0"
  assert "wsd_h16_lr0.01_b0.99_s0" not in names and "wsd_h1_lr0.0003_b0.95_s0" not in names
  assert not any(n.startswith("inverse_sqrt") and "_b0.95_" in n for n in names)
  isq = names["inverse_sqrt_o12800_h32_lr0.003_b0.99_s0"]
  assert isq.lm_arg == "model=150m,schedule=inverse_sqrt,horizon=32,lr=0.003,b2=0.99,seed=0"
  assert dict(isq.overrides)["opt.offset"] == "12800"
  cmd = wsd.command("/runs/150m", python="py")
  assert cmd[:4] == ["py", "-m", "anytime.lm", f"--config=configs/lm.py:{wsd.lm_arg}"]
  assert "--workdir=/runs/150m/wsd_h4_lr0.001_b0.98_s0" in cmd
  assert "--config.init_from=/runs/150m/constant_h32_lr0.001_b0.98_s0" in cmd


def test_noise_seeds_repeat_only_the_named_runs():
  runs = sc.expand(sc.load_sweep("smoke"))
  seeds1 = sorted(r.name for r in runs if r.seed == 1)
  assert seeds1 == ["cosine_h1_lr0.003_b0.95_s1"]
  mini = sc.expand(sc.load_sweep("mini"))
  assert sorted(r.name for r in mini if r.seed == 1) == [
    "cosine_h1_lr0.003_b0.95_s1",
    "cosine_h8_lr0.003_b0.95_s1",
  ]


def test_mini_uses_the_stdlib_tests_and_an_integer_branch_step():
  mini = sc.expand(sc.load_sweep("mini"))
  ov = dict(mini[0].overrides)
  assert (
    ov["data.extra_text_dirs"].endswith("/test',)") and "<stdlib>" not in ov["data.extra_text_dirs"]
  )
  assert {r.steps_per_chinchilla for r in mini} == {270}
  assert {r.start_step for r in mini if r.method == "wsd"} == {243, 486, 972, 1944, 3888}


def _smoke(**changes):
  s = sc.load_sweep("smoke")
  for path, value in changes.items():
    node = s
    *parents, leaf = path.split("__")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return s


@pytest.mark.parametrize(
  "changes, message",
  [
    ({"model": "1b"}, r"sweep.model='1b' is invalid: one of the configs/lm.py presets"),
    ({"horizons": (2, 1)}, r"sweep.horizons=\(2, 1\) is invalid: must be increasing"),
    ({"horizons": (1, -2)}, r"sweep.horizons=.* Chinchilla multiples > 0"),
    ({"seeds": (0, 0)}, r"sweep.seeds=\(0, 0\) is invalid: values must be distinct"),
    ({"cosine__lrs": ()}, r"sweep.cosine.lrs=\(\) is invalid: expected a non-empty tuple"),
    ({"constant__b2s": (1.0,)}, r"sweep.constant.b2s=\(1.0,\) is invalid: AdamW beta2"),
    ({"cosine__enabled": False}, r"sweep.cosine.enabled=False .* tuned cosine"),
    ({"wsd__lrs": (0.5,)}, r"sweep.wsd.lrs=\(0.5,\) is invalid: a subset of constant.lrs"),
    ({"wsd__shapes": ("step",)}, r"sweep.wsd.shapes=\('step',\) is invalid: distinct values"),
    ({"wsd__shapes": ("sqrt", "sqrt")}, r"sweep.wsd.shapes=.* distinct values of \('linear'"),
    ({"to_zero__enabled": True}, r"sweep.to_zero.horizons=\(\) is invalid: some of sweep"),
    (
      {"to_zero__enabled": True, "to_zero__horizons": (1,), "to_zero__schedules": ("wsd",)},
      r"sweep.to_zero.schedules=\('wsd',\) is invalid: some of \('cosine', 'linear_decay'\)",
    ),
    ({"wsd__branch_fraction": 1.0}, r"sweep.wsd.branch_fraction=1.0 is invalid: in \(0, 1\)"),
    ({"averages": ("pema25", "avg")}, r"sweep.averages=.*'avg'"),
    ({"main_average": "pema50"}, r"sweep.main_average='pema50' is invalid: one of sweep"),
    ({"noise__seeds": (0,)}, r"sweep.noise.seeds=\(0,\) is invalid: must differ"),
    ({"noise__horizons": (8,)}, r"sweep.noise.horizons=\(8,\) is invalid: each one of"),
    ({"noise__lr": 0.5}, r"sweep.noise.lr=0.5 is invalid: one of cosine.lrs"),
    ({"lm_overrides": ("seed=3",)}, r"sweep.lm_overrides='seed=3' .* set per run"),
    ({"lm_overrides": ("nosuch=3",)}, r"sweep.lm_overrides='nosuch=3' .* no field 'nosuch'"),
    ({"lm_overrides": ("batch_size=big",)}, r"sweep.lm_overrides='batch_size=big' .* as int"),
    ({"lm_overrides": ("warmup",)}, r"sweep.lm_overrides='warmup' .* 'FIELD=VALUE'"),
    ({"name": "a/b"}, r"sweep.name='a/b' is invalid"),
  ],
)
def test_bad_sweeps_fail_naming_the_field(changes, message):
  with pytest.raises(ValueError, match=message):
    sc.expand(_smoke(**changes))


def test_branch_step_must_be_an_integer():
  s = _smoke(lm_overrides=("data.source=synthetic", "steps_per_chinchilla=15"))
  with pytest.raises(
    ValueError,
    match=r"sweep.wsd.branch_fraction=0.9 .* branch step 14 differs from the WSD decay start 13",
  ):
    sc.expand(s)


def test_trainer_validation_is_reported_before_any_run():
  s = _smoke(lm_overrides=("data.source=synthetic", "steps_per_chinchilla=20", "opt.b1=2.0"))
  with pytest.raises(ValueError, match=r"cosine run .*opt.b1=2.0 must be in \[0, 1\)"):
    sc.expand(s)


def test_unknown_sweep_name():
  with pytest.raises(ValueError, match=r"sweep 'huge' is unknown; allowed: \('150m'"):
    sc.load_sweep("huge")


def test_demo_sweep_is_the_comparison_in_small():
  """`make demo` part 4: cosine per horizon vs one constant run and its WSD branches, few tokens."""
  runs = sc.expand(sc.load_sweep("demo"))
  by_method = {
    m: sorted(r.horizon for r in runs if r.method == m) for m in {r.method for r in runs}
  }
  assert by_method == {"cosine": [1, 2, 4], "constant": [4], "wsd": [1, 2, 4]}
  # Every WSD branch restores the constant run at 90% of its horizon (240 steps per 1x).
  assert sorted(r.start_step for r in runs if r.method == "wsd") == [216, 432, 864]
  assert all(r.parent == "constant_h4_lr0.003_b0.95_s0" for r in runs if r.method == "wsd")
  # Small enough for a laptop in minutes: under 6M trained tokens in all.
  assert sum(r.trained_tokens for r in runs) < 6_000_000


def test_wsd_shapes_and_to_zero_runs():
  s = _smoke(wsd__shapes=("linear", "sqrt"), to_zero__enabled=True, to_zero__horizons=(2,))
  runs = {r.name: r for r in sc.expand(s)}
  lin, sqrt = runs["wsd_h2_lr0.003_b0.95_s0"], runs["wsd_sqrt_h2_lr0.003_b0.95_s0"]
  # Both shapes branch from the same constant run at the same step; only the shape differs.
  assert (lin.parent, lin.start_step) == (sqrt.parent, sqrt.start_step)
  assert dict(sqrt.overrides)["opt.wsd_shape"] == "sqrt" and "schedule=wsd," in sqrt.lm_arg
  assert dict(lin.overrides)["opt.wsd_shape"] == "linear"
  for name, schedule in (("cosine_zero", "cosine"), ("linear_zero", "linear_decay")):
    run = runs[f"{name}_h2_lr0.003_b0.95_s0"]
    cfg = sc.lm_config(run.lm_arg, run.overrides)
    assert (cfg.opt.schedule, cfg.opt.final_lr_fraction, run.horizon) == (schedule, 0.0, 2.0)
    # Same length as the cosine run of that horizon (to 0.1x): only the floor differs.
    assert run.total_steps == runs["cosine_h2_lr0.003_b0.95_s0"].total_steps
  assert not any(n.startswith(("cosine_zero_h1", "linear_zero_h1")) for n in runs)


def test_report_scores_the_new_methods_at_their_own_end_only():
  from anytime.sweeps import report

  s = _smoke(wsd__shapes=("linear", "sqrt"), to_zero__enabled=True, to_zero__horizons=(2,))
  runs = {r.name: r for r in sc.expand(s)}
  labels = {v.label: v.method for v in report.variants(s)}
  assert labels["WSD sqrt (last iterate)"] == "wsd_sqrt"
  assert labels["cosine to 0 (tuned)"] == "cosine_zero"
  assert labels["linear to 0 (tuned)"] == "linear_zero"
  zero = runs["cosine_zero_h2_lr0.003_b0.95_s0"]
  assert report._step(zero, 2) == zero.total_steps and report._step(zero, 1) is None
