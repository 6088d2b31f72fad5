"""Bad inputs: each invalid config or argument is refused before any compile or write, with a
message naming the field, the value and what is allowed; valid schedules/averaging never give
NaN, negative or non-finite values (hypothesis)."""

import json
import math
import os
import re

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import theory
from anytime import averaging, schedules
from anytime.configs import lm as lm_config
from anytime.lm import train
from tests.lm import util
from tests.lm.test_data import write_rows_dir


def _tokens_dir(root, *, dtype="uint16", vocab=64, ids=None, meta_dtype=None, flat=False):
  """A row dataset (seq_len 16, the tiny preset's) as anytime.lm.prepare writes it; ids /
  meta_dtype make it invalid; flat writes the retired flat token files instead."""
  ids = np.arange(400) % vocab if ids is None else np.asarray(ids)
  if flat:
    os.makedirs(root)
    ids.astype(dtype).tofile(os.path.join(root, "train.bin"))
    with open(os.path.join(root, "meta.json"), "w") as f:
      json.dump({"format": "anytime-tokens", "dtype": dtype}, f)
    return root
  overrides = {"dtype": meta_dtype} if meta_dtype else None
  write_rows_dir(root, ids, ids, vocab=vocab, seq_len=16, dtype=dtype, meta_overrides=overrides)
  return root


# (id, config overrides of util.tiny_config, regex the message must match: field, value, allowed).
# Regexes are matched with re.DOTALL against str(error).
CONFIG_CASES = [
  ("schedule", {"opt.schedule": "cosin"}, r"opt\.schedule='cosin'.*one of.*'cosine'"),
  ("lr-zero", {"opt.lr": 0.0}, r"opt\.lr=0\.0 must be > 0"),
  ("lr-negative", {"opt.lr": -1e-3}, r"opt\.lr=-0\.001 must be > 0"),
  ("b1", {"opt.b1": 1.0}, r"opt\.b1=1\.0 must be in \[0, 1\)"),
  ("b2", {"opt.b2": 1.5}, r"opt\.b2=1\.5 must be in \[0, 1\)"),
  ("eps", {"opt.eps": -1.0}, r"opt\.eps=-1\.0 must be >= 0"),
  ("weight-decay", {"opt.weight_decay": -0.1}, r"opt\.weight_decay=-0\.1 must be >= 0"),
  ("clip", {"opt.clip": -1.0}, r"opt\.clip=-1\.0 must be >= 0"),
  ("warmup-vs-horizon", {"opt.warmup_steps": 100}, r"warmup_steps=100 must be .*8 steps"),
  ("init-lr-fraction", {"opt.init_lr_fraction": 1.5}, r"opt\.init_lr_fraction=1\.5.*\[0, 1\]"),
  (
    "final-lr-fraction",
    {"opt.schedule": "cosine", "opt.final_lr_fraction": -0.1},
    r"opt\.final_lr_fraction=-0\.1.*\[0, 1\]",
  ),
  ("offset", {"opt.schedule": "inverse_sqrt", "opt.offset": 0.0}, r"opt\.offset=0\.0 must be > 0"),
  (
    "wsd-fraction",
    {"opt.schedule": "wsd", "opt.wsd_decay_fraction": 0.0},
    r"opt\.wsd_decay_fraction=0\.0.*\(0, 1\]",
  ),
  ("wsd-shape", {"opt.schedule": "wsd", "opt.wsd_shape": "exp"}, r"opt\.wsd_shape='exp'.*linear"),
  ("averages-pema", {"opt.averages": ("pema",)}, r"opt\.averages has 'pema'; allowed.*polyak"),
  ("averages-ema", {"opt.averages": ("ema1.5",)}, r"opt\.averages has 'ema1\.5'; allowed"),
  ("averages-unknown", {"opt.averages": ("swa",)}, r"opt\.averages has 'swa'; allowed"),
  ("multiplier-form", {"opt.lr_multipliers": ("embed",)}, r"lr_multipliers has 'embed'; expected"),
  ("multiplier-sign", {"opt.lr_multipliers": ("embed=-1",)}, r"'embed=-1'.*multiplier >= 0"),
  ("mesh-too-large", {"mesh": (16, 1, 1)}, r"mesh=\(16, 1, 1\).*8"),
  ("mesh-two-wildcards", {"mesh": (-1, -1, 1)}, r"mesh=.*\(-1, -1, 1\).*one of them may be -1"),
  ("batch-zero", {"batch_size": 0}, r"batch_size=0 is invalid: expected an integer >= 1"),
  ("batch-vs-accum", {"batch_size": 7, "grad_accum": 2}, r"batch_size=7.*divisible.*grad_accum=2"),
  ("batch-vs-mesh", {"batch_size": 6, "mesh": (4, 1, 1)}, r"batch_size / grad_accum=6.*= 4"),
  ("grad-accum", {"grad_accum": 0}, r"grad_accum=0 is invalid: expected an integer >= 1"),
  ("unit", {"unit": "tokens"}, r"unit='tokens' is invalid.*chinchilla"),
  ("horizon-zero", {"horizon": 0.0}, r"horizon=0\.0 is invalid: expected a number > 0"),
  ("horizon-negative", {"horizon": -2.0}, r"horizon=-2\.0 is invalid: expected a number > 0"),
  ("horizons-beyond", {"horizons": (16,)}, r"horizons=\(16,\).*\(0, horizon=8"),
  ("eval-batches", {"eval_batches": 0}, r"eval_batches=0 is invalid: expected an integer >= 1"),
  ("log-every", {"log_every": 0}, r"log_every=0 is invalid: expected an integer >= 1"),
  ("checkpoint-every", {"checkpoint_every": -1}, r"checkpoint_every=-1.*integer >= 0"),
  ("data-source", {"data.source": "c4"}, r"data\.source='c4' is invalid.*synthetic"),
  ("data-path-missing", {"data.source": "tokens", "data.path": ""}, r"data\.path=''.*row dataset"),
  (
    "data-path-absent",
    {"data.source": "tokens", "data.path": "/nonexistent/c4"},
    r"data\.path='/nonexistent/c4'.*not a directory",
  ),
  ("data-sampling", {"data.sampling": "random"}, r"data\.sampling='random'.*one of"),
  ("vocab-too-small", {"model.vocab_size": 3}, r"model\.vocab_size=3.*token ids"),
  ("init-from", {"init_from": "/nonexistent/run"}, r"init_from='/nonexistent/run'.*checkpoints/"),
  ("attention", {"model.attention": "cudnn"}, r"model\.attention='cudnn'.*GPU.*einsum"),
  ("model-dtype", {"model.dtype": "float16"}, r"model\.dtype='float16'.*'bfloat16', 'float32'"),
  ("model-layers", {"model.num_layers": 0}, r"model\.num_layers=0 must be a positive integer"),
]


@pytest.fixture
def no_compile(monkeypatch):
  """Building the Trainer (the first step that compiles) fails the test."""

  def trainer(*args, **kwargs):
    raise AssertionError("config passed validation and reached the compile step")

  monkeypatch.setattr(train, "Trainer", trainer)


def _assert_refused(cfg, workdir, pattern):
  with pytest.raises(ValueError) as info:
    train.run(cfg, workdir, log=lambda _: None)
  assert re.search(pattern, str(info.value), re.DOTALL), str(info.value)
  assert not os.path.exists(workdir)  # nothing written


@pytest.mark.parametrize(
  "overrides,pattern", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES]
)
def test_bad_config_refused_before_compile_or_write(overrides, pattern, tmp_path, no_compile):
  cfg = util.tiny_config(**{"mesh": (1, 1, 1), **overrides})
  _assert_refused(cfg, str(tmp_path / "workdir"), pattern)


TOKEN_CASES = [
  # ids >= vocab (the wrong tokenizer); ids of a uint32 file read as uint16 (wrong dtype); the
  # retired flat token files (#28).
  ("ids-out-of-range", dict(ids=np.arange(400) % 100, vocab=64), r"token id 99 >= vocab_size=64"),
  (
    "wrong-dtype",
    dict(dtype="uint32", meta_dtype="uint16"),
    r"row 0 holds 34 tokens, expected seq_len \+ 1 = 17",
  ),
  ("dtype-unknown", dict(meta_dtype="int8"), r"dtype='int8', allowed: 'uint16', 'uint32'"),
  ("flat-token-files", dict(flat=True), r"flat token files \(train\.bin\) are no longer read"),
]


@pytest.mark.parametrize(
  "kwargs,pattern", [c[1:] for c in TOKEN_CASES], ids=[c[0] for c in TOKEN_CASES]
)
def test_bad_token_files_refused(kwargs, pattern, tmp_path, no_compile):
  path = _tokens_dir(str(tmp_path / "tokens"), **kwargs)
  cfg = util.tiny_config(mesh=(1, 1, 1), **{"data.source": "tokens", "data.path": path})
  _assert_refused(cfg, str(tmp_path / "workdir"), pattern)


def test_good_token_dir_passes_validation(tmp_path, no_compile):
  # The same helper with valid arguments gets through validation: the cases above fail for
  # their fault, not for the helper's.
  path = _tokens_dir(str(tmp_path / "tokens"))
  cfg = util.tiny_config(mesh=(1, 1, 1), **{"data.source": "tokens", "data.path": path})
  cfg.eval_batches = 1
  with pytest.raises(AssertionError, match="reached the compile step"):
    train.run(cfg, str(tmp_path / "workdir"), log=lambda _: None)


API_CASES = [
  ("preset", lambda: lm_config.get_config("model=huge"), r"model='huge' is not a preset.*nano"),
  ("config-key", lambda: lm_config.get_config("foo=1"), r"\['foo'\] unknown; allowed"),
  ("cosine-total", lambda: schedules.cosine(1e-3, 0, final_value=0.0), r"total_steps.*0"),
  ("constant-peak", lambda: schedules.constant(-1.0), r"peak_value.*-1\.0"),
  ("inverse-sqrt-offset", lambda: schedules.inverse_sqrt(1e-3, offset=-5.0), r"offset.*-5\.0"),
  ("ema-decay", lambda: averaging.ema(1.5), r"decay.*1\.5"),
  ("pema-gamma", lambda: averaging.proportional_ema(-1.0), r"gamma.*-1\.0"),
  ("theory-capacity", lambda: theory.Problem(1.0, 2.0, 10, 0.0), r"capacity=1\.0 must be in \(1"),
  ("theory-source", lambda: theory.Problem(2.0, 0.0, 10, 0.0), r"source=0\.0 must be in \(0"),
  ("theory-dim", lambda: theory.Problem(2.0, 2.0, 0, 0.0), r"dim=0"),
  ("theory-noise", lambda: theory.Problem(2.0, 2.0, 10, -1.0), r"noise_variance=-1\.0.*\[0"),
  ("theory-kurtosis", lambda: theory.Problem(2.0, 2.0, 10, 0.0, kurtosis=0.5), r"kurtosis=0\.5"),
  ("theory-batch", lambda: theory.Problem(2.0, 2.0, 10, 0.0, batch_size=0), r"batch_size=0"),
  (
    "theory-inf-source",
    lambda: theory.Problem(2.0, 0.5, math.inf, 0.0),
    r"source=0\.5.*(> 1|\(1)",
  ),
]


@pytest.mark.parametrize("make,pattern", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_api_argument_refused(make, pattern):
  with pytest.raises(ValueError) as info:
    make()
  assert re.search(pattern, str(info.value), re.DOTALL), str(info.value)


def test_case_count():
  assert len(CONFIG_CASES) + len(TOKEN_CASES) + len(API_CASES) >= 30


# --- property tests: valid arguments never give NaN, negative or non-finite values -----------

_counts = st.integers(min_value=0, max_value=2**31 - 1)
_peak = st.floats(min_value=1e-6, max_value=10.0)
_frac = st.floats(min_value=0.0, max_value=1.0)


@st.composite
def _schedule(draw):
  peak = draw(_peak)
  warmup = draw(st.integers(0, 10_000))
  init = draw(_frac) * peak
  total = draw(st.integers(warmup + 1, 10**7))
  final = draw(_frac) * peak
  kind = draw(st.sampled_from(["constant", "inverse_sqrt", "poly", "cosine", "wsd", "linear"]))
  common = dict(warmup_steps=warmup, init_value=init)
  if kind == "constant":
    return schedules.constant(peak, **common)
  if kind == "inverse_sqrt":
    return schedules.inverse_sqrt(peak, offset=draw(st.floats(1e-3, 1e6)), **common)
  if kind == "poly":
    exponent = draw(st.floats(0.0, 4.0))
    return schedules.polynomial_decay(peak, exponent, offset=draw(st.floats(1e-3, 1e6)), **common)
  if kind == "cosine":
    return schedules.cosine(peak, total, final_value=final, **common)
  if kind == "linear":
    return schedules.linear_decay(peak, total, final_value=final, **common)
  decay = draw(st.integers(1, total - warmup))
  shape = draw(st.sampled_from(schedules.WSD_SHAPES))
  return schedules.wsd(peak, total, decay_steps=decay, shape=shape, final_value=final, **common)


@settings(max_examples=60, deadline=None)
@given(_schedule(), st.lists(_counts, min_size=1, max_size=8))
def test_valid_schedules_are_finite_and_nonnegative(schedule, counts):
  values = np.asarray(schedule(jnp.asarray(counts, jnp.int32)))
  assert np.all(np.isfinite(values)) and np.all(values >= 0), (counts, values)


@st.composite
def _rule(draw):
  kind = draw(st.sampled_from(["polyak", "ema", "pema"]))
  if kind == "polyak":
    return averaging.polyak()
  if kind == "ema":
    return averaging.ema(draw(st.floats(0.0, 1.0, exclude_max=True)))
  return averaging.proportional_ema(draw(st.floats(1e-3, 1e4)))


@settings(max_examples=60, deadline=None)
@given(_rule(), st.lists(st.integers(1, 2**31 - 1), min_size=1, max_size=8))
def test_valid_averaging_weights_are_in_unit_interval(rule, ks):
  c = np.asarray(rule(jnp.asarray(ks, jnp.float32)))
  assert np.all(np.isfinite(c)) and np.all(c >= 0) and np.all(c <= 1), (ks, c)
