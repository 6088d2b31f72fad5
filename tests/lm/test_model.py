"""The Transformer: sizes of the reference presets, causality, no biases, untied embeddings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from anytime.configs import lm as lm_config
from anytime.lm import model as model_lib


def _preset(name, **kw):
  p = dict(lm_config.PRESETS[name])
  p["vocab_size"] = p["vocab_size"] or 97
  p.update(kw)
  return model_lib.ModelConfig(**p)


@pytest.mark.parametrize("name, expected", [("150m", 151.0e6), ("300m", 302.0e6)])
def test_reference_non_embedding_params_within_one_percent(name, expected):
  counts = model_lib.param_counts(_preset(name))  # eval_shape: nothing allocated
  assert abs(counts["non_embedding"] - expected) / expected < 0.01
  # Untied embeddings: input and output tables, vocab x d each (the paper's 216M / 368M total).
  assert counts["embedding"] == 2 * 32128 * 1024
  assert abs(counts["total"] - {"150m": 216e6, "300m": 368e6}[name]) / 368e6 < 0.01


def test_param_count_matches_architecture_formula():
  cfg = _preset("nano")
  d, f, n, v = cfg.d_model, cfg.mlp_dim, cfg.num_layers, cfg.vocab_size
  # q, k, v, o (d x d) + MLP (2 d f) + four norm scales per block + final norm; no biases.
  expected = n * (4 * d * d + 2 * d * f + 4 * d) + d
  assert model_lib.param_counts(cfg)["non_embedding"] == expected
  assert model_lib.param_counts(cfg)["embedding"] == 2 * v * d


def test_no_biases_and_untied_embeddings():
  cfg = _preset("tiny")
  _, params = nnx.split(model_lib.build(cfg), nnx.Param)
  paths = ["/".join(map(str, p)) for p, _ in nnx.to_flat_state(params)]
  assert not [p for p in paths if "bias" in p]
  pure = nnx.to_pure_dict(params)
  emb, unemb = pure["embed"]["embedding"], pure["unembed"]["kernel"]
  assert emb.shape == (cfg.vocab_size, cfg.d_model) and unemb.shape == (cfg.d_model, cfg.vocab_size)
  assert not np.allclose(emb, unemb.T)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(pure))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_causal_future_tokens_do_not_change_earlier_logits(dtype):
  cfg = _preset("tiny", dtype=dtype)
  graphdef, params = nnx.split(model_lib.build(cfg, seed=1), nnx.Param)
  params = nnx.to_pure_dict(params)
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, cfg.vocab_size, size=(2, cfg.seq_len)).astype(np.int32)
  changed = tokens.copy()
  cut = cfg.seq_len // 2
  changed[:, cut:] = (changed[:, cut:] + 1) % cfg.vocab_size
  a = np.asarray(model_lib.forward(graphdef, params, tokens))
  b = np.asarray(model_lib.forward(graphdef, params, changed))
  assert a.shape == (2, cfg.seq_len, cfg.vocab_size) and a.dtype == np.float32
  np.testing.assert_array_equal(a[:, :cut], b[:, :cut])
  # ...and the later positions do see the change (the test can fail).
  assert np.abs(a[:, cut:] - b[:, cut:]).max() > 1e-3


def _assert_same_loss_and_gradients(configs, seed, tokens):
  """Every config in ``configs``, built from ``seed``, gives the first one's loss and gradients."""
  batch = dict(inputs=tokens, targets=np.roll(tokens, -1, axis=1))
  out = []
  for cfg in configs:
    graphdef, params = nnx.split(model_lib.build(cfg, seed=seed), nnx.Param)
    grad_fn = jax.value_and_grad(lambda p, g=graphdef: model_lib.loss_fn(g, p, batch))
    out.append(jax.jit(grad_fn)(nnx.to_pure_dict(params)))
  for loss, grads in out[1:]:
    np.testing.assert_allclose(out[0][0], loss, rtol=1e-6)
    jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), out[0][1], grads
    )


def test_remat_changes_nothing_but_memory():
  tokens = np.arange(2 * 16, dtype=np.int32).reshape(2, 16) % 97
  _assert_same_loss_and_gradients([_preset("tiny", remat=r) for r in (False, True)], 3, tokens)


def test_fused_attention_matches_einsum():
  tokens = (np.arange(2 * 16, dtype=np.int32).reshape(2, 16) * 7) % 97
  logits = []
  for attention in ("einsum", "dot_product"):
    cfg = _preset("tiny", attention=attention)
    graphdef, params = nnx.split(model_lib.build(cfg, seed=4), nnx.Param)
    logits.append(np.asarray(model_lib.forward(graphdef, nnx.to_pure_dict(params), tokens)))
  np.testing.assert_allclose(logits[0], logits[1], rtol=1e-5, atol=1e-5)


def test_loss_at_init_is_near_uniform():
  cfg = _preset("tiny")
  graphdef, params = nnx.split(model_lib.build(cfg), nnx.Param)
  tokens = np.arange(2 * cfg.seq_len, dtype=np.int32).reshape(2, -1) % cfg.vocab_size
  loss = model_lib.loss_fn(graphdef, nnx.to_pure_dict(params), dict(inputs=tokens, targets=tokens))
  assert abs(float(loss) - np.log(cfg.vocab_size)) < 0.1


def test_invalid_model_config_names_the_field():
  with pytest.raises(ValueError, match="num_heads"):
    _preset("tiny", num_heads=3)
  with pytest.raises(ValueError, match="dtype"):
    _preset("tiny", dtype="float16")
  with pytest.raises(ValueError, match="attention"):
    _preset("tiny", attention="flash")


def _numpy_causal_attention(q, k, v, scale):
  """float64 reference: masked softmax over all L x L scores, no blocks."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  scores = np.einsum("bhqk,bhsk->bhqs", q, k) * scale
  length = q.shape[2]
  scores = np.where(np.tril(np.ones((length, length), bool)), scores, -np.inf)
  probs = np.exp(scores - scores.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  return np.einsum("bhqs,bhsk->bhqk", probs, v)


@pytest.mark.parametrize(
  "blocks",
  [1, 2, 3, 5, pytest.param(12, marks=pytest.mark.slow)],  # 12 blocks: ~1 min
)
def test_causal_blocks_equal_the_full_masked_softmax(blocks):
  rng = np.random.default_rng(blocks)
  q, k, v, g = (rng.standard_normal((2, 3, 12, 4)).astype(np.float32) for _ in range(4))
  scale = 0.37
  out = model_lib.causal_attention(q, k, v, scale, blocks)
  np.testing.assert_allclose(out, _numpy_causal_attention(q, k, v, scale), rtol=1e-5, atol=1e-5)

  def objective(n):
    return lambda q, k, v: jnp.sum(model_lib.causal_attention(q, k, v, scale, n) * g)

  grads = jax.grad(objective(blocks), argnums=(0, 1, 2))(q, k, v)
  grads_full = jax.grad(objective(1), argnums=(0, 1, 2))(q, k, v)
  for a, b in zip(grads, grads_full, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # The gradient is not trivially equal: keys see later queries only through the mask.
  assert np.abs(np.asarray(grads[1])[:, :, -1]).max() < np.abs(np.asarray(grads[1])[:, :, 0]).max()


@pytest.mark.parametrize("parameterization", ["standard", "mup"])
def test_model_with_causal_blocks_has_the_same_loss_and_gradients(parameterization):
  tokens = (np.arange(2 * 16, dtype=np.int32).reshape(2, 16) * 5) % 97
  mup = dict(parameterization="mup", base_width=16) if parameterization == "mup" else {}
  configs = [_preset("tiny", causal_blocks=n, **mup) for n in (1, 3)]
  _assert_same_loss_and_gradients(configs, 5, tokens)


@pytest.mark.parametrize("blocks", [0, 17, True, 2.0])
def test_invalid_causal_blocks_names_the_field(blocks):
  with pytest.raises(ValueError, match=r"model.causal_blocks=.*\[1, model.seq_len=16\]"):
    _preset("tiny", causal_blocks=blocks)
