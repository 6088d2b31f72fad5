"""Averaging rules and the with_averaging transform against independent references."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import anytime
from anytime import averaging


def feed_iterates(tx, iterates, params0):
  """Runs tx so that the k-th update moves the params to iterates[k-1].

  The gradient fed to optax.identity() is the displacement itself, so the
  iterate sequence is under the test's control (up to the rounding of
  params + (w - params) in the params' dtype). Returns the final params, the
  state and the params actually held after each update.
  """
  tx = anytime.with_averaging(optax.identity(), tx) if isinstance(tx, dict) else tx
  state = tx.init(params0)
  params, held = params0, []
  for w in iterates:
    updates, state = tx.update(jax.tree.map(lambda a, b: a - b, w, params), state, params)
    params = optax.apply_updates(params, updates)
    held.append(params)
  return params, state, held


def reference_average(c, iterates, w0):
  """avg_k = sum_j alpha_j w_j with explicit weights from c_1..c_k (no recursion)."""
  k = len(iterates)
  alphas = [np.prod([1 - c[i] for i in range(k)])]  # weight of w_0
  for j in range(1, k + 1):
    alphas.append(c[j - 1] * np.prod([1 - c[i] for i in range(j, k)]))
  points = [w0, *iterates]
  return sum(a * p for a, p in zip(alphas, points, strict=True)), np.sum(alphas)


# ----------------------------------------------------------------------------
# Rules.


def test_rules_closed_forms():
  k = np.arange(1, 10_001, dtype=np.float64)
  with jax.enable_x64(True):
    np.testing.assert_allclose(anytime.polyak()(k), 1.0 / k, rtol=1e-15)
    np.testing.assert_allclose(anytime.ema(0.999)(k), np.full_like(k, 0.001), rtol=1e-12)
    got = np.asarray(anytime.proportional_ema(25.0)(k))
  np.testing.assert_allclose(got, 1.0 - 0.5 ** (25.0 / (k + 1.0)), rtol=1e-12)
  # The half-life after k updates is (k + 1) / gamma: (1 - c)**((k+1)/gamma) = 1/2.
  np.testing.assert_allclose((1 - got) ** ((k + 1) / 25.0), 0.5, rtol=1e-10)


def test_proportional_ema_is_accurate_for_long_runs():
  # In float32, 1 - 0.5**x loses everything once x < 6e-8; the rule must not.
  k = jnp.asarray([1e6, 1e8, 2**31 - 1], dtype=jnp.float32)
  got = np.asarray(anytime.proportional_ema(6.25)(k), np.float64)
  want = -np.expm1(-6.25 * np.log(2) / (np.asarray(k, np.float64) + 1))
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert np.all(got > 0)


@pytest.mark.parametrize(
  "make,message",
  [
    (lambda: anytime.ema(1.0), r"decay=1.0 must be in \[0, 1\)"),
    (lambda: anytime.ema(-0.1), r"decay=-0.1 must be in \[0, 1\)"),
    (lambda: anytime.ema("0.9"), "decay='0.9' must be a real number"),
    (lambda: anytime.proportional_ema(0.0), "gamma=0.0 must be finite and > 0"),
    (lambda: anytime.proportional_ema(float("inf")), "gamma=inf must be finite and > 0"),
    (lambda: anytime.with_averaging(optax.sgd(1.0), {}), "rules={} must be a non-empty mapping"),
    (
      lambda: anytime.with_averaging(optax.sgd(1.0), {"a": 0.5}),
      r"rules\['a'\]=0.5 must be callable",
    ),
    (
      lambda: anytime.with_averaging(optax.sgd(1.0), {"a": anytime.polyak()}, dtype=jnp.int32),
      "dtype=int32 must be a floating dtype",
    ),
  ],
)
def test_bad_arguments(make, message):
  with pytest.raises(ValueError, match=message):
    make()


# ----------------------------------------------------------------------------
# The transform.


def test_polyak_of_200_iterates_is_their_mean_in_float64():
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    iterates = [{"w": jnp.asarray(rng.normal(size=(7, 3)))} for _ in range(200)]
    tx = anytime.with_averaging(optax.identity(), {"p": anytime.polyak()}, dtype=jnp.float64)
    _, state, _ = feed_iterates(tx, iterates, {"w": jnp.zeros((7, 3))})
    avg = np.asarray(anytime.averaged_params(state)["p"]["w"])
  mean = np.mean([np.asarray(it["w"]) for it in iterates], axis=0)
  np.testing.assert_allclose(avg, mean, rtol=1e-12, atol=1e-12)
  assert int(state.count) == 200


@pytest.mark.parametrize("name", ["ema", "proportional_ema"])
def test_ema_rules_match_explicit_weights(name):
  rng = np.random.default_rng(1)
  k_total = 60
  ks = np.arange(1, k_total + 1, dtype=np.float64)
  if name == "ema":
    rule, c = anytime.ema(0.9), np.full(k_total, 0.1)
  else:
    rule, c = anytime.proportional_ema(6.25), 1.0 - 0.5 ** (6.25 / (ks + 1.0))
  w0 = rng.normal(size=5)
  iterates = [rng.normal(size=5) for _ in range(k_total)]
  with jax.enable_x64(True):
    tx = anytime.with_averaging(optax.identity(), {"r": rule}, dtype=jnp.float64)
    _, state, _ = feed_iterates(tx, [jnp.asarray(w) for w in iterates], jnp.asarray(w0))
    got = np.asarray(anytime.averaged_params(state)["r"])
  want, total_weight = reference_average(c, iterates, w0)
  assert total_weight == pytest.approx(1.0, abs=1e-12)
  np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_several_rules_are_independent_of_each_other():
  rng = np.random.default_rng(2)
  iterates = [{"a": jnp.asarray(rng.normal(size=(4,)), jnp.float32)} for _ in range(30)]
  p0 = {"a": jnp.zeros(4)}
  rules = {"p": anytime.polyak(), "e": anytime.ema(0.8), "g": anytime.proportional_ema(12.5)}
  _, joint, _ = feed_iterates(rules, iterates, p0)
  joint_avg = anytime.averaged_params(joint)
  for name, rule in rules.items():
    _, alone, _ = feed_iterates({name: rule}, iterates, p0)
    np.testing.assert_array_equal(joint_avg[name]["a"], anytime.averaged_params(alone)[name]["a"])


def test_updates_pass_through_unchanged():
  tx = anytime.with_averaging(optax.adam(1e-2), {"p": anytime.polyak()})
  ref = optax.adam(1e-2)
  params = {"w": jnp.arange(6.0).reshape(2, 3)}
  s, r = tx.init(params), ref.init(params)
  for i in range(5):
    g = {"w": jnp.sin(params["w"] + i)}
    u, s = tx.update(g, s, params)
    v, r = ref.update(g, r, params)
    np.testing.assert_array_equal(u["w"], v["w"])
    params = optax.apply_updates(params, u)


def test_update_without_params_is_a_clear_error():
  tx = anytime.with_averaging(optax.sgd(0.1), {"p": anytime.polyak()})
  state = tx.init({"w": jnp.ones(2)})
  with pytest.raises(ValueError, match="with_averaging needs params"):
    tx.update({"w": jnp.ones(2)}, state)


def train_quadratic(tx, steps, params=None):
  """SGD-like loop on 0.5 |w - target|^2 with a deterministic gradient wiggle."""
  params = {"w": jnp.zeros(3), "b": jnp.ones(())} if params is None else params
  state = tx.init(params)
  history = []

  @jax.jit
  def step(params, state, i):
    grads = jax.tree.map(lambda p: p - jnp.cos(i + p), params)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for i in range(steps):
    params, state = step(params, state, jnp.float32(i))
    history.append(params)
  return params, state, history


@pytest.mark.parametrize("placement", ["inside", "outside"])
def test_multisteps_averages_only_real_updates(placement):
  k_acc, steps = 4, 24
  rules = {"p": anytime.polyak(), "e": anytime.proportional_ema(6.25)}
  inner = optax.sgd(0.3)
  if placement == "inside":
    tx = optax.MultiSteps(anytime.with_averaging(inner, rules), every_k_schedule=k_acc)
  else:
    tx = anytime.with_averaging(optax.MultiSteps(inner, every_k_schedule=k_acc), rules)
  params0 = {"w": jnp.zeros(3), "b": jnp.ones(())}
  _, state, history = train_quadratic(tx, steps, params0)
  avg = anytime.averaged_params(state)
  real = history[k_acc - 1 :: k_acc]  # params after each real update
  assert len(real) == steps // k_acc
  # Parameters move only on real updates, so `real` is the whole iterate list.
  for i in range(1, steps):
    moved = not np.array_equal(history[i]["w"], history[i - 1]["w"])
    assert moved == ((i + 1) % k_acc == 0), i
  want_polyak = jax.tree.map(lambda *xs: np.mean(np.stack(xs), 0), *real)
  for leaf in ("w", "b"):
    np.testing.assert_allclose(avg["p"][leaf], want_polyak[leaf], rtol=1e-6, atol=1e-7)
  c = 1.0 - 0.5 ** (6.25 / (np.arange(1, len(real) + 1) + 1.0))
  for leaf in ("w", "b"):
    want, _ = reference_average(c, [np.asarray(r[leaf]) for r in real], np.asarray(params0[leaf]))
    np.testing.assert_allclose(avg["e"][leaf], want, rtol=1e-5, atol=1e-6)


def test_skipped_nonfinite_update_is_not_averaged():
  tx = anytime.with_averaging(
    optax.apply_if_finite(optax.sgd(0.5), max_consecutive_errors=10), {"p": anytime.polyak()}
  )
  params = {"w": jnp.zeros(2)}
  state = tx.init(params)
  seen = []
  for g in ([1.0, 1.0], [np.nan, 0.0], [2.0, -2.0]):
    updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
    params = optax.apply_updates(params, updates)
    if np.all(np.isfinite(g)):
      seen.append(np.asarray(params["w"]))
  assert int(state.count) == 2
  np.testing.assert_allclose(anytime.averaged_params(state)["p"]["w"], np.mean(seen, 0))


def test_inject_hyperparams_learning_rate_is_readable():
  schedule = anytime.cosine(1.0, 10, final_value=0.1, warmup_steps=2)
  tx = anytime.with_averaging(
    optax.inject_hyperparams(optax.adamw)(learning_rate=schedule, weight_decay=0.0),
    {"e": anytime.proportional_ema(25.0)},
  )
  _, state, _ = train_quadratic(tx, 6)
  lr = state.inner_state.hyperparams["learning_rate"]
  # inject_hyperparams stores the rate used by the latest update (count 5).
  assert float(lr) == pytest.approx(float(schedule(5)), rel=1e-6)
  assert "e" in anytime.averaged_params(state)


def test_chain_and_partition_compose():
  labels = {"w": "fast", "b": "frozen"}
  tx = anytime.with_averaging(
    optax.chain(
      optax.clip_by_global_norm(1.0),
      optax.partition({"fast": optax.sgd(0.1), "frozen": optax.set_to_zero()}, labels),
    ),
    {"p": anytime.polyak()},
  )
  params, state, history = train_quadratic(tx, 10)
  avg = anytime.averaged_params(state)["p"]
  np.testing.assert_allclose(avg["w"], np.mean([h["w"] for h in history], 0), rtol=1e-6)
  np.testing.assert_array_equal(avg["b"], params["b"])  # frozen stays at its init
  # Averaging only one partition: the other group's leaves are masked out.
  tx_inner = optax.partition(
    {
      "fast": anytime.with_averaging(optax.sgd(0.1), {"q": anytime.polyak()}),
      "frozen": optax.sgd(0.0),
    },
    labels,
  )
  _, state, history = train_quadratic(tx_inner, 10)
  avg = anytime.averaged_params(state)["q"]
  np.testing.assert_allclose(avg["w"], np.mean([h["w"] for h in history], 0), rtol=1e-6)


def test_averaged_params_errors():
  with pytest.raises(ValueError, match="holds no AveragingState"):
    anytime.averaged_params(optax.sgd(0.1).init({"w": jnp.ones(1)}))
  a = anytime.with_averaging(optax.sgd(0.1), {"x": anytime.polyak()})
  state = (a.init({"w": jnp.ones(1)}), a.init({"w": jnp.ones(1)}))
  with pytest.raises(ValueError, match="both define the rule name 'x'"):
    anytime.averaged_params(state)


def test_bfloat16_params_keep_float32_averages():
  rng = np.random.default_rng(3)
  iterates = [{"w": jnp.asarray(rng.normal(size=(16,)), jnp.bfloat16)} for _ in range(50)]
  p0 = {"w": jnp.zeros(16, jnp.bfloat16)}
  _, state, held = feed_iterates({"p": anytime.polyak()}, iterates, p0)
  assert all(h["w"].dtype == jnp.bfloat16 for h in held)
  avg = anytime.averaged_params(state)["p"]["w"]
  assert avg.dtype == jnp.float32
  want = np.mean([np.asarray(h["w"], np.float64) for h in held], 0)
  # The bf16 iterates are exact in fp32; only the fp32 accumulation rounds.
  np.testing.assert_allclose(np.asarray(avg, np.float64), want, rtol=1e-5, atol=1e-6)
  # The same running average kept in bf16 is off by orders of magnitude more.
  bf16_avg = held[0]["w"]
  for k, h in enumerate(held[1:], start=2):
    bf16_avg = (bf16_avg + (h["w"] - bf16_avg) / k).astype(jnp.bfloat16)
  assert np.max(np.abs(np.asarray(bf16_avg, np.float64) - want)) > 100 * np.max(
    np.abs(np.asarray(avg, np.float64) - want)
  )


def test_fp32_average_does_not_alias_params():
  params = {"w": jnp.ones((8,), jnp.float32)}
  state = anytime.with_averaging(optax.sgd(0.1), {"p": anytime.polyak()}).init(params)
  avg = state.averages["p"]["w"]
  assert avg.unsafe_buffer_pointer() != params["w"].unsafe_buffer_pointer()


def make_sharded_problem():
  devices = np.asarray(jax.devices()[:8]).reshape(4, 2)
  mesh = jax.sharding.Mesh(devices, ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
  spec = jax.sharding.PartitionSpec
  shardings = {
    "w": jax.sharding.NamedSharding(mesh, spec("data", "model")),
    "v": jax.sharding.NamedSharding(mesh, spec(None, "model")),
    "s": jax.sharding.NamedSharding(mesh, spec()),
  }
  params = {
    "w": jnp.arange(64.0).reshape(8, 8),
    "v": jnp.ones((3, 4), jnp.bfloat16),
    "s": jnp.asarray(2.0),
  }
  return jax.device_put(params, shardings), shardings


def test_averages_are_sharded_like_params_under_jit_and_donation():
  assert jax.device_count() == 8, "conftest.py sets 8 fake CPU devices"
  params, shardings = make_sharded_problem()
  rules = {"p": anytime.polyak(), "e": anytime.proportional_ema(25.0)}
  tx = anytime.with_averaging(optax.adamw(1e-2), rules)

  def loss(p):
    return sum(jnp.sum(jnp.sin(x.astype(jnp.float32))) for x in jax.tree.leaves(p))

  def step(params, state):
    grads = jax.grad(loss)(params)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  state = jax.jit(tx.init)(params)
  reference = jax.jit(step)
  donating = jax.jit(step, donate_argnums=(0, 1))
  ref_params, ref_state = params, state
  # Separate copies for the donating run: donation invalidates its inputs.
  don_params = jax.tree.map(jnp.copy, params)
  don_state = jax.tree.map(jnp.copy, state)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # e.g. "Some donated buffers were not usable"
    for _ in range(3):
      ref_params, ref_state = reference(ref_params, ref_state)
      don_params, don_state = donating(don_params, don_state)
  for name in rules:
    avg = anytime.averaged_params(don_state)[name]
    for key, sharding in shardings.items():
      leaf = avg[key]
      assert leaf.dtype == jnp.float32
      assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim), (name, key, leaf.sharding)
  jax.tree.map(np.testing.assert_array_equal, don_state, ref_state)
  jax.tree.map(np.testing.assert_array_equal, don_params, ref_params)


def test_orbax_round_trip(tmp_path):
  import orbax.checkpoint as ocp

  params, _ = make_sharded_problem()
  tx = anytime.with_averaging(
    optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3)),
    {"p": anytime.polyak(), "e": anytime.proportional_ema(12.5)},
  )
  state = jax.jit(tx.init)(params)
  grads = jax.tree.map(jnp.ones_like, params)

  @jax.jit
  def step(params, state):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for _ in range(3):
    params, state = step(params, state)
  path = tmp_path / "ckpt"
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, {"params": params, "opt_state": state})
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, {"params": params, "opt_state": state})
  with ocp.StandardCheckpointer() as ckptr:
    restored = ckptr.restore(path, abstract)
  assert isinstance(restored["opt_state"], averaging.AveragingState)
  assert jax.tree.structure(restored) == jax.tree.structure({"params": params, "opt_state": state})
  jax.tree.map(np.testing.assert_array_equal, restored["opt_state"], state)
  for name in ("p", "e"):
    for leaf, ref in zip(
      jax.tree.leaves(anytime.averaged_params(restored["opt_state"])[name]),
      jax.tree.leaves(anytime.averaged_params(state)[name]),
      strict=True,
    ):
      assert leaf.sharding.is_equivalent_to(ref.sharding, ref.ndim)
  # Training continues identically from the restored state.
  p1, s1 = step(params, state)
  p2, s2 = step(restored["params"], restored["opt_state"])
  jax.tree.map(np.testing.assert_array_equal, (p1, s1), (p2, s2))


def test_rules_keep_numpy_float64_without_x64():
  k = np.arange(1, 6)
  for rule in (anytime.polyak(), anytime.ema(0.9), anytime.proportional_ema(12.5)):
    c = rule(k)
    assert isinstance(c, np.ndarray) and c.dtype == np.float64
    assert rule(jnp.arange(1, 6)).dtype == jnp.float32  # JAX in, JAX out
  np.testing.assert_array_equal(anytime.polyak()(k), 1.0 / k)
  np.testing.assert_allclose(
    anytime.proportional_ema(12.5)(k), 1 - 0.5 ** (12.5 / (k + 1)), rtol=1e-14
  )


def _average_after_jump(dtype, rule, updates_before: int, jump: float):
  """The average after ``updates_before`` real updates at w = 0 and one more at w = jump."""
  tx = anytime.with_averaging(optax.sgd(1.0), {"a": rule}, dtype=dtype)
  params = {"w": jnp.zeros((), jnp.float32)}
  state = tx.init(params)
  zero = {"w": jnp.zeros((), jnp.float32)}
  step = jax.jit(lambda s: tx.update(zero, s, params)[1])
  state = jax.lax.fori_loop(0, updates_before, lambda _, s: step(s), state)
  grad = {"w": jnp.asarray(-jump, jnp.float32)}  # sgd(1.0): w = 0 - (-jump)
  _, state = tx.update(grad, state, params)
  return int(state.count), float(anytime.averaged_params(state)["a"]["w"])


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_low_precision_averages_keep_moving_past_100k_updates(dtype):
  # In float16, k = 100,001 overflows (max 65,504) and 1/k would underflow: the average froze.
  # The weight is computed in float32, so update 100,001 moves a Polyak average by jump/100,001
  # and a proportional EMA by (1 - 0.5**(gamma/100,001)) * jump (closed forms).
  n, jump = 100_000, 1000.0
  count, polyak_avg = _average_after_jump(dtype, anytime.polyak(), n, jump)
  assert count == n + 1
  expected = jump / (n + 1)
  np.testing.assert_allclose(polyak_avg, expected, rtol=1e-2 if dtype != jnp.float32 else 1e-6)
  _, ema_avg = _average_after_jump(dtype, anytime.proportional_ema(25.0), n, jump)
  expected = (1 - 0.5 ** (25.0 / (n + 1))) * jump
  np.testing.assert_allclose(ema_avg, expected, rtol=1e-2 if dtype != jnp.float32 else 1e-5)


def test_integer_leaves_are_carried_not_averaged():
  # An integer leaf averaged in float and cast back would truncate (the Polyak mean of the
  # iterates 1..4 is 2.5 -> 2); non-float leaves carry the latest iterate, in their own dtype.
  identity = optax.GradientTransformation(lambda p: optax.EmptyState(), lambda u, s, p=None: (u, s))
  tx = anytime.with_averaging(identity, {"p": anytime.polyak(), "e": anytime.ema(0.5)})
  params = {"w": jnp.zeros(2), "n": jnp.asarray(0, jnp.int32)}
  state = tx.init(params)
  for k in range(1, 5):
    new = {"w": jnp.full(2, float(k)), "n": jnp.asarray(k, jnp.int32)}
    _, state = tx.update(jax.tree.map(lambda a, b: a - b, new, params), state, params)
    params = new
  avgs = anytime.averaged_params(state)
  for name in ("p", "e"):
    assert avgs[name]["n"].dtype == jnp.int32 and int(avgs[name]["n"]) == 4
  np.testing.assert_allclose(avgs["p"]["w"], np.full(2, (1 + 2 + 3 + 4) / 4), rtol=1e-6)
