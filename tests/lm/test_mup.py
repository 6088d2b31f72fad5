"""muP parameterization and the per-group optimizer (anytime/lm/model.py, anytime/optim.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from anytime import optim
from anytime.lm import model as model_lib
from experiments.mup import common as mup_common
from experiments.mup import coord_check
from tests.lm.util import tiny_config


def _mcfg(width, parameterization="mup", heads=2, base=16, **kw):
  mup = parameterization == "mup"
  return model_lib.ModelConfig(
    vocab_size=64,
    d_model=width,
    num_layers=2,
    num_heads=heads,
    mlp_dim=4 * width,
    seq_len=8,
    parameterization=parameterization,
    base_width=base if mup else 0,
    **kw,
  )


def _params(mcfg, seed=0):
  return nnx.to_pure_dict(nnx.state(model_lib.build(mcfg, seed), nnx.Param))


def test_mup_at_the_base_width_is_the_standard_model():
  tokens = jax.random.randint(jax.random.key(1), (2, 8), 0, 64)
  outs = []
  for par in ("standard", "mup"):
    mcfg = _mcfg(16, par)
    graphdef, state = nnx.split(model_lib.build(mcfg, 0), nnx.Param)
    outs.append(model_lib.forward(graphdef, nnx.to_pure_dict(state), tokens))
  np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6, atol=1e-6)


def test_mup_scales_against_their_closed_forms():
  mcfg = _mcfg(64, heads=2, base=16)  # r = 4, K = 32, K0 = 8
  assert mcfg.width_mult == 4
  assert mcfg.output_mult == 0.25
  assert mcfg.attention_scale == pytest.approx(np.sqrt(8) / 32)
  params = _params(mcfg)
  up = np.asarray(params["blocks"][0]["mlp"]["up"]["kernel"])
  emb = np.asarray(params["embed"]["embedding"])
  assert up.std() == pytest.approx(0.02 / 2, rel=0.03)  # init_std / sqrt(r)
  assert emb.std() == pytest.approx(0.02, rel=0.03)  # width-independent
  std = _mcfg(64, "standard")
  assert std.attention_scale == pytest.approx(1 / np.sqrt(32))
  assert std.output_mult == 1 and std.width_mult == 1


def test_readout_multiplier_is_applied_to_the_logits():
  mcfg = _mcfg(32)  # r = 2
  tokens = jnp.arange(8)[None]
  model = model_lib.build(mcfg, 0)
  logits = model(tokens)
  hidden = model.final_norm(_residual(model, tokens))
  np.testing.assert_allclose(logits, 0.5 * model.unembed(hidden), rtol=1e-5, atol=1e-6)
  acts = model.activations(tokens)
  assert float(acts["logits"]) == pytest.approx(float(jnp.abs(logits).mean()), rel=1e-6)


@pytest.mark.parametrize("parameterization", ["standard", "mup"])
def test_zero_readout_starts_at_zero_logits_and_still_learns(parameterization):
  mcfg = _mcfg(32, parameterization, readout_zero_init=True)
  graphdef, params = mup_common.init(mcfg, 0)
  tokens = jax.random.randint(jax.random.key(2), (2, 9), 0, 64)
  batch = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:]}
  np.testing.assert_array_equal(model_lib.forward(graphdef, params, batch["inputs"]), 0.0)
  loss0, grads = jax.value_and_grad(lambda p: model_lib.loss_fn(graphdef, p, batch))(params)
  assert float(loss0) == pytest.approx(np.log(64), rel=1e-6)  # uniform prediction
  # Only the readout gets a gradient at the first step (every path to the logits goes
  # through W_U = 0), and it is the features' outer product with (softmax - onehot).
  assert float(jnp.abs(grads["unembed"]["kernel"]).max()) > 0
  assert float(jnp.abs(grads["blocks"][0]["mlp"]["up"]["kernel"]).max()) == 0
  # The rest of the init is the default one.
  ref = _params(_mcfg(32, parameterization))
  np.testing.assert_array_equal(params["embed"]["embedding"], ref["embed"]["embedding"])


def _residual(model, tokens):
  x = model.embed(tokens)
  for block in model.blocks:
    x = block(x)
  return x


@pytest.mark.parametrize(
  ("field", "value", "match"),
  [
    ("parameterization", "ntk", r"model.parameterization='ntk' must be one of"),
    ("base_width", -1, r"model.base_width=-1 must be an integer >= 0"),
    ("readout_zero_init", "yes", r"model.readout_zero_init='yes' must be True or False"),
  ],
)
def test_bad_model_fields_raise(field, value, match):
  kw = dict(vocab_size=8, d_model=16, num_layers=1, num_heads=2, mlp_dim=32, seq_len=4)
  kw["parameterization"] = "mup"
  kw[field] = value
  with pytest.raises(ValueError, match=match):
    model_lib.ModelConfig(**kw)


def test_base_width_needs_mup():
  with pytest.raises(
    ValueError, match=r"base_width=16.*only apply to model.parameterization='mup'"
  ):
    model_lib.ModelConfig(8, 16, 1, 2, 32, 4, base_width=16)


def test_groups_from_paths_cover_every_parameter():
  labels = optim.group_labels(_params(_mcfg(16)))
  flat = {optim._path(p): v for p, v in jax.tree_util.tree_flatten_with_path(labels)[0]}
  assert flat["embed/embedding"] == "embedding"
  assert flat["unembed/kernel"] == "readout"
  assert flat["final_norm/scale"] == "norm"
  assert flat["blocks/1/attn/k_norm/scale"] == "norm"
  assert flat["blocks/1/attn/out/kernel"] == "attention"
  assert flat["blocks/0/mlp/down/kernel"] == "mlp"
  assert set(flat.values()) == set(optim.PARAM_GROUPS)


def test_group_updates_equal_adamw_times_their_multipliers():
  """One step of the per-group optimizer vs plain AdamW with the closed-form group LR and decay."""
  mcfg = _mcfg(64, base=16)  # r = 4
  params = _params(mcfg)
  grads = jax.tree.map(lambda p: jnp.sin(3.0 * p) + 0.1, params)
  opt = mup_common.opt_config(1e-2, clip=0.0, weight_decay=0.1, module_lr={"embedding": 2.0})
  tx = optim.make_optimizer(opt, 10, model=mcfg)
  updates, _ = tx.update(grads, tx.init(params), params)
  labels = optim.group_labels(params)
  r, lr, wd = 4.0, opt.lr * opt.init_lr_fraction, 0.1  # warmup 0: the peak; see below
  lr = float(optim.make_schedule(opt, 10)(0))
  want_lr = {"embedding": 2 * lr, "attention": lr / r, "mlp": lr / r, "norm": lr, "readout": lr}
  want_wd = {"embedding": wd, "attention": wd * r, "mlp": wd * r, "norm": wd, "readout": wd}

  def reference(g, p, label):
    # AdamW's first step: m_hat = g, v_hat = g^2 (bias-corrected).
    u = g / (jnp.abs(g) + opt.eps)
    return -want_lr[label] * (u + want_wd[label] * p)

  want = jax.tree.map(reference, grads, params, labels)
  for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-9)
  # The global LR readout is the schedule's, not a group's.
  _, state = tx.update(grads, tx.init(params), params)
  assert float(optim.current_lr(state)) == pytest.approx(lr)


def test_standard_without_multipliers_keeps_the_single_adamw_state():
  cfg = tiny_config()
  mcfg = _mcfg(16, "standard")
  state = optim.make_optimizer(cfg.opt, 8, model=mcfg).init(_params(mcfg))
  kind = optax.PartitionState if hasattr(optax, "PartitionState") else tuple
  found = [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, kind))]
  assert not any(type(s).__name__ == "PartitionState" for s in found)
  assert not optim.uses_groups(cfg.opt, mcfg)
  cfg.opt.module_lr.norm = 0.5
  assert optim.uses_groups(cfg.opt, mcfg)


@pytest.mark.parametrize(
  ("field", "value", "match"),
  [
    ("module_lr.norm", -1.0, r"opt.module_lr.norm=-1.0 must be a finite number >= 0"),
  ],
)
def test_bad_opt_fields_raise(field, value, match):
  cfg = tiny_config(**{f"opt.{field}": value})
  with pytest.raises(ValueError, match=match):
    optim.validate(cfg.opt, 8)


def test_schedule_free_with_groups_is_refused():
  cfg = tiny_config(**{"opt.schedule": "schedule_free", "opt.per_group": True})
  with pytest.raises(ValueError, match=r"schedule_free.*per-group"):
    optim.validate(cfg.opt, 8)


@pytest.mark.slow  # a coordinate check over widths (~1 min)
def test_coordinate_check_tiny():
  """A small coordinate check (experiments/mup/coord_check.py; the full one is in docs/mup.md).

  Standard: std 0.02 at every width, so the hidden outputs grow ~sqrt(width) per matmul at
  init and faster after 4 Adam steps. muP with a zero readout: the block outputs keep their
  size (|slope| < 0.15 at these tiny widths, < 0.1 in the full check); the logits, which
  start at 0, still shrink a little at these widths (a finite-width effect), far less than
  the standard logits grow.
  """
  setup = mup_common.Setup(
    layers=1, heads=2, seq_len=16, batch=4, vocab=256, base_width=32, source="synthetic"
  )
  widths = (32, 64, 128)
  slopes = {}
  for variant in ("standard", "mup_zero_readout"):
    sizes = coord_check.measure(setup, widths, variant, steps=4, lr=1e-3, seeds=range(2))
    slopes[variant] = {k: coord_check.slopes(widths, v) for k, v in sizes.items()}
  mup, std = slopes["mup_zero_readout"], slopes["standard"]
  for layer in ("block0/attn_out", "block0/mlp_out", "block0/residual", "embed"):
    assert abs(mup["init"][layer]) < 0.15, layer
    assert abs(mup["trained"][layer]) < 0.15, layer
  for layer in ("block0/attn_out", "block0/mlp_out", "block0/residual"):
    assert std["init"][layer] > 0.4, layer
    assert std["trained"][layer] > 0.7, layer
  assert np.isnan(mup["init"]["logits"])  # zero logits: no slope
  assert std["trained"]["logits"] - mup["trained"]["logits"] > 0.5
