"""The 150m/300m presets against the reference paper's own code, item by item.

The paper's code is the OLMo fork github.com/alexandrumeterez/anytime-training; every expected
number below is computed from the formula in its files (named in each test), never read back from
our implementation.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import special, stats

import anytime
from anytime.configs import lm as lm_configs
from anytime.lm import model as model_lib
from anytime.lm import plan as plan_lib


def _paper_model(num_layers: int = 2, vocab: int = 512) -> model_lib.Transformer:
  """The 150m preset's widths (D 1024, F 4096) and paper fields, fewer layers, small vocab."""
  cfg = lm_configs.get_config("model=150m")
  mcfg = plan_lib.model_config(cfg)
  mcfg = dataclasses.replace(mcfg, num_layers=num_layers, vocab_size=vocab, dtype="float32")
  return model_lib.build(mcfg, seed=0)


@pytest.mark.parametrize("name", ["150m", "300m"])
def test_presets_carry_the_papers_model_fields(name):
  cfg = lm_configs.get_config(f"model={name}")
  m = cfg.model
  # base-c4-t5.yaml: init_fn mitchell, activation_type gelu (GELU(approximate="none") in
  # olmo/model.py), layer_norm_eps 1e-5 (olmo/config.py), no biases, untied, T5 vocab 32128.
  assert (m.init, m.gelu_approximate, m.norm_eps) == ("mitchell", False, 1e-5)
  assert (m.d_model, m.num_heads, m.mlp_dim, m.seq_len, m.vocab_size) == (
    1024,
    16,
    4096,
    1024,
    32128,
  )
  assert m.num_layers == {"150m": 12, "300m": 24}[name]
  # batch 256 (150m) / 512 (300m), warmup 5000 (every sweep yaml), AdamW b1 0.9, eps 1e-8, no
  # weight decay, clip 1.0, warmup from 0.1x (alpha_0) and cosine to 0.1x (alpha_f).
  assert cfg.batch_size == {"150m": 256, "300m": 512}[name]
  o = cfg.opt
  assert (o.warmup_steps, o.b1, o.eps, o.weight_decay, o.clip) == (5000, 0.9, 1e-8, 0.0, 1.0)
  assert (o.init_lr_fraction, o.final_lr_fraction, cfg.steps_per_chinchilla) == (0.1, 0.1, 12_500)
  # models/150m.yaml ema_decay [0.0, 6.25, 12.5, 25, 50, 100]: the raw iterate + five EMAs.
  assert tuple(o.averages) == ("pema6.25", "pema12.5", "pema25", "pema50", "pema100")
  mcfg = plan_lib.model_config(cfg)
  layers, d = m.num_layers, m.d_model  # L (4 D^2 attention + 8 D^2 MLP + 4 norms of D) + D
  assert model_lib.param_counts(mcfg)["non_embedding"] == layers * (12 * d * d + 4 * d) + d


def test_miniatures_keep_the_previous_init():
  m = lm_configs.get_config("model=nano").model
  assert (m.init, m.gelu_approximate, m.norm_eps) == ("normal", True, 1e-6)


def test_mitchell_init_std_of_every_parameter_family():
  """olmo/model.py reset_parameters, init_fn mitchell: trunc_normal_(std=s, a=-3s, b=3s)."""
  model = _paper_model(num_layers=2)
  d, f = 1024, 4096
  trunc = math.sqrt(stats.truncnorm(-3, 3).var())  # realised std / s of PyTorch's trunc_normal_
  assert pytest.approx(trunc, rel=1e-8) == model_lib.TRUNC3_STD
  expected = {
    "embed": (model.embed.embedding[...], 1 / math.sqrt(d)),  # wte_std
    "readout": (model.unembed.kernel[...], 1 / math.sqrt(d)),  # ff_out_std (untied)
  }
  for layer, block in enumerate(model.blocks):
    expected |= {
      f"{layer}/q": (block.attn.query.kernel[...], 1 / math.sqrt(d)),
      f"{layer}/k": (block.attn.key.kernel[...], 1 / math.sqrt(d)),
      f"{layer}/v": (block.attn.value.kernel[...], 1 / math.sqrt(d)),
      f"{layer}/up": (block.mlp.up.kernel[...], 1 / math.sqrt(d)),
      # attn_out_std = 1 / sqrt(2 d (layer_id + 1)), ff_out_std = 1 / sqrt(2 F (layer_id + 1))
      f"{layer}/out": (block.attn.out.kernel[...], 1 / math.sqrt(2 * d * (layer + 1))),
      f"{layer}/down": (block.mlp.down.kernel[...], 1 / math.sqrt(2 * f * (layer + 1))),
    }
  for name, (w, s) in expected.items():
    w = np.asarray(w, np.float64)
    # >= 0.5M draws each: the sample std is within 0.3% of s * 0.98658 (5 sigma: 5/sqrt(2n)).
    assert w.std() == pytest.approx(s * trunc, rel=3e-3), name
    assert np.abs(w).max() <= 3 * s * (1 + 1e-6), name  # cut at 3 std
    assert np.abs(w).max() > 2.9 * s, name  # ... and only there
    assert abs(w.mean()) < 5 * s / math.sqrt(w.size), name
  for block in model.blocks:
    for norm in (block.attn_norm, block.mlp_norm, block.attn.q_norm, block.attn.k_norm):
      np.testing.assert_array_equal(norm.scale[...], 1.0)


def test_exact_gelu_and_layer_norm_eps():
  """GELU(approximate="none") = x Phi(x); LayerNorm (x - mean) / sqrt(var + 1e-5) * scale."""
  cfg = model_lib.ModelConfig(
    vocab_size=16, d_model=8, num_layers=1, num_heads=2, mlp_dim=16, seq_len=4,
    init="mitchell", gelu_approximate=False, norm_eps=1e-5,
  )  # fmt: skip
  model = model_lib.build(cfg)
  x = np.random.default_rng(0).normal(size=(1, 4, 8)).astype(np.float32) * 3
  up, down = (
    np.asarray(model.blocks[0].mlp.up.kernel[...]),
    np.asarray(model.blocks[0].mlp.down.kernel[...]),
  )
  h = x.reshape(4, 8).astype(np.float64) @ up
  ref = (h * 0.5 * (1 + special.erf(h / math.sqrt(2)))) @ down
  got = np.asarray(model.blocks[0].mlp(jnp.asarray(x))).reshape(4, 8)
  np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-6)
  tanh = (h * 0.5 * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))) @ down
  assert np.abs(got - tanh).max() > 10 * np.abs(got - ref).max()  # not the tanh form
  # A row of variance 1e-5: eps 1e-5 halves the variance term, eps 1e-6 would not.
  row = np.array([[[1, -1] * 4]], np.float32) * math.sqrt(1e-5)
  got = np.asarray(model.final_norm(jnp.asarray(row)))
  np.testing.assert_allclose(got, row / math.sqrt(1e-5 + 1e-5), rtol=1e-4)


def test_proportional_ema_matches_the_papers_update():
  """olmo/train.py EMA.update(model, step) with global_step 1, 2, ... (incremented before the
  train step): decay = 0.5 ** (gamma / (step + 1)); shadow = decay shadow + (1 - decay) w; the
  shadow starts as a copy of the initial weights (scripts/train.py)."""
  gammas = (6.25, 12.5, 25.0, 50.0, 100.0)
  rng = np.random.default_rng(1)
  grads = rng.normal(size=(40, 3))
  tx = anytime.with_averaging(
    optax.sgd(0.1), {f"g{g}": anytime.proportional_ema(g) for g in gammas}
  )
  w = jnp.zeros(3)
  state = tx.init(w)
  ws = [np.zeros(3)]
  for g in grads:
    u, state = tx.update(jnp.asarray(g, jnp.float32), state, w)
    w = optax.apply_updates(w, u)
    ws.append(np.asarray(w, np.float64))
  ours = anytime.averaged_params(state)
  for gamma in gammas:
    shadow = ws[0].copy()
    for step in range(1, len(ws)):
      decay = 0.5 ** (gamma / (step + 1))
      shadow = decay * shadow + (1 - decay) * ws[step]
    np.testing.assert_allclose(np.asarray(ours[f"g{gamma}"]), shadow, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
  ("name", "horizon", "steps"), [("150m", 32, 400_000), ("300m", 16, 200_000)]
)
def test_evaluation_points_and_size(name, horizon, steps):
  """olmo/train.py should_eval_this_step: int(n / 100) * 100 for n in np.logspace(-2.1, 0, 20) *
  max_duration, plus the Chinchilla multiples (custom_checkpoint_saving_list); base-c4-t5.yaml:
  eval_subset_num_batches 1000 x device_eval_batch_size 32 on one device."""
  cfg = lm_configs.get_config(f"model={name},horizon={horizon}")
  counts = model_lib.param_counts(plan_lib.model_config(cfg))
  plan = plan_lib.make_plan(cfg, counts["non_embedding"])
  assert plan.total_steps == steps
  log = {int(n / 100) * 100 for n in np.logspace(-2.1, 0, 20) * steps} - {0}
  multiples = {12_500 * 2**i for i in range(6) if 2**i <= horizon}
  assert set(plan.eval_steps) == log | multiples
  assert len(log) == 20
  assert plan.eval_batch_size * cfg.eval_batches * cfg.model.seq_len == 1000 * 32 * 1024


def test_eval_fields_are_validated():
  cfg = lm_configs.get_config("model=tiny")
  for field, value in (("eval_log_start", 1.0), ("eval_log_start", -0.1), ("eval_round", 0)):
    bad = lm_configs.get_config("model=tiny")
    bad[field] = value
    with pytest.raises(ValueError, match=field):
      plan_lib.make_plan(bad, 10_000)
  assert plan_lib.make_plan(cfg, 10_000).eval_steps[0] == 1  # miniatures: from step 1


def test_bad_init_fields_fail():
  kw = dict(vocab_size=16, d_model=8, num_layers=1, num_heads=2, mlp_dim=16, seq_len=4)
  with pytest.raises(ValueError, match=r"model\.init"):
    model_lib.ModelConfig(**kw, init="xavier")
  with pytest.raises(ValueError, match=r"model\.norm_eps"):
    model_lib.ModelConfig(**kw, norm_eps=0.0)
  with pytest.raises(ValueError, match="mitchell"):
    model_lib.ModelConfig(**kw, init="mitchell", parameterization="mup")
  with pytest.raises(ValueError, match="gelu_approximate"):
    model_lib.ModelConfig(**kw, gelu_approximate=1)
  assert jax.devices()  # the suite's 8 fake CPU devices do not matter here
