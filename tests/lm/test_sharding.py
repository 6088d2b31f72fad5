"""1 device vs 8 fake devices: same losses and parameters on every mesh shape."""

import functools

import jax
import numpy as np
import pytest
from jax.sharding import AxisType, PartitionSpec

from anytime import averaged_params
from anytime.lm import sharding as sharding_lib
from anytime.lm import train
from tests.lm import util

STEPS = 3


@functools.cache
def _train(mesh):
  return util.train_steps(util.tiny_config(mesh=mesh), STEPS)


@pytest.fixture(scope="module")
def one_device():
  losses, state, _ = _train((1, 1, 1))
  return losses, jax.device_get(state)


@pytest.mark.parametrize("mesh", [(8, 1, 1), (2, 4, 1), (2, 2, 2)])
def test_same_loss_and_params_as_one_device(one_device, mesh):
  assert jax.device_count() == 8
  losses_1, state_1 = one_device
  losses, state, trainer = _train(mesh)
  assert dict(trainer.mesh.shape) == dict(zip(sharding_lib.MESH_AXES, mesh, strict=True))
  assert all(t == AxisType.Auto for t in trainer.mesh.axis_types)
  assert losses_1[-1] < losses_1[0]  # it trains
  np.testing.assert_allclose(losses, losses_1, rtol=0, atol=1e-5)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-5), jax.device_get(state), state_1
  )


def test_params_and_averages_are_sharded_alike():
  _, state, _ = _train((2, 2, 2))
  up = state["params"]["blocks"][0]["mlp"]["up"]["kernel"]  # logical (embed, mlp)
  assert up.sharding.spec == PartitionSpec("fsdp", "tensor")
  assert up.addressable_shards[0].data.shape == (up.shape[0] // 2, up.shape[1] // 2)
  for name, avg in averaged_params(state["opt_state"]).items():
    leaf = avg["blocks"][0]["mlp"]["up"]["kernel"]
    assert leaf.sharding.is_equivalent_to(up.sharding, up.ndim), name
  emb = state["params"]["embed"]["embedding"]  # (vocab, embed) -> (tensor, fsdp)
  assert emb.sharding.spec == PartitionSpec("tensor", "fsdp")


def test_rules_replicate_what_does_not_divide():
  mesh = sharding_lib.make_mesh((1, 4, 2))
  assert sharding_lib.logical_to_spec(("embed", "mlp"), (8, 6), mesh) == PartitionSpec(
    "fsdp", "tensor"
  )
  assert sharding_lib.logical_to_spec(("embed", "mlp"), (6, 3), mesh) == PartitionSpec(None, None)
  assert sharding_lib.logical_to_spec(("norm",), (8,), mesh) == PartitionSpec(None)


def test_mesh_larger_than_devices_fails_naming_it():
  with pytest.raises(ValueError, match=r"mesh=.*needs 16 devices"):
    sharding_lib.make_mesh((4, 4, 1))
  with pytest.raises(ValueError, match="mesh"):
    sharding_lib.resolve_mesh_shape((-1, -1, 1), 8)


def _compiled_step_text(cfg) -> str:
  mcfg, plan, mesh_shape = train.validate(cfg)
  trainer = train.Trainer(cfg, mcfg, plan, mesh_shape)
  return trainer.compile_train_step().as_text()


def test_chunked_loss_head_stays_sharded_over_the_batch():
  # 8 x 16 tokens in chunks of 16: the loss head scans 8 chunks. On a data mesh each device
  # must scan its own rows; a layout that put the scanned axis on the mesh made XLA gather
  # every activation onto every device (and compute the whole head there) before the loop.
  cfg = util.tiny_config(mesh=(8, 1, 1), **{"model.loss_chunk": 16})
  text = _compiled_step_text(cfg)
  assert "all-gather" not in text
  assert "all-reduce" in text  # the gradients are reduced (the check can see collectives)
  losses, _, _ = util.train_steps(cfg, STEPS)
  losses_1, _, _ = util.train_steps(util.tiny_config(**{"model.loss_chunk": 0}), STEPS)
  np.testing.assert_allclose(losses, losses_1, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
  "mesh, batches, seq_len, cores, expected",
  [
    ((-1, 1, 1), (32, 32), 128, 2, 2),  # nano: 2,048 tokens per device
    ((1, -1, 1), (32, 32), 128, 2, 2),  # the -1 axis may be fsdp
    ((-1, 1, 1), (32, 16), 128, 4, 4),
    ((-1, 1, 1), (32, 32), 128, 1, 0),  # one core: nothing to split
    ((1, 1, 1), (32, 32), 128, 2, 0),  # a fixed mesh is the user's choice
    ((1, 1, -1), (32, 32), 128, 2, 0),  # tensor parallelism over cores is not data parallelism
    ((-1, 1, 1), (33, 33), 128, 2, 0),  # the batch does not split evenly
    ((-1, 1, 1), (32, 3), 128, 2, 0),  # nor does the eval batch
    ((-1, 1, 1), (None, 32), 128, 2, 0),  # batch_size / grad_accum not an integer
    ((-1, 1, 1), (8, 8), 16, 2, 0),  # tiny: 64 tokens per device, overhead wins
    ((-1, 1, 1), (16, 16), 128, 2, 2),  # exactly MIN_TOKENS_PER_CPU_DEVICE per device
    ((-1, 1, 1), (16, 16), 127, 2, 0),
    ((2, -1, 1), (32, 32), 128, 4, 4),  # data 2 x fsdp 2
    ((3, -1, 1), (32, 32), 128, 4, 0),  # 4 cores do not divide by data=3
    # Malformed fields: one device, and the config validation names the field later.
    ((-1, 1, 1), (32, 32), "128", 2, 0),
    ((-1, None, 1), (32, 32), 128, 2, 0),
    (None, (32, 32), 128, 2, 0),
  ],
)
def test_auto_cpu_devices(mesh, batches, seq_len, cores, expected):
  assert sharding_lib.MIN_TOKENS_PER_CPU_DEVICE == 1024  # the rows above are written for it
  assert sharding_lib.auto_cpu_devices(mesh, batches, seq_len, cores) == expected
