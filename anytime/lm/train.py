"""The training loop: plan, validate, build, (resume), train, evaluate averages, checkpoint.

``run(cfg, workdir)`` trains the config of configs/lm.py; ``run(..., dry_run=True)``
prints the start-up report only. The whole config is validated before anything
is compiled or written (:func:`anytime.lm.plan.validate`). A run is planned in optimizer steps
(:class:`anytime.lm.plan.Plan`): its horizon and the horizon checkpoints, in Chinchilla
multiples or steps, and the log-spaced evaluation steps. At every evaluation
the raw iterate and every average of ``with_averaging`` are scored on the same
validation batches, so one horizon-free run gives the loss at every horizon.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from anytime import averaging, optim
from anytime.lm import checkpoint as checkpoint_lib
from anytime.lm import data as data_lib
from anytime.lm import metrics as metrics_lib
from anytime.lm import model as model_lib
from anytime.lm import sharding as sharding_lib
from anytime.lm import workdir as workdir_lib

# The plan and the config's validation live in anytime.lm.plan; these names stay importable here
# (train.validate, train.make_plan, train.model_config) for the callers that know them so.
from anytime.lm.plan import UNITS as UNITS
from anytime.lm.plan import Plan, loss_chunk, validate
from anytime.lm.plan import make_plan as make_plan
from anytime.lm.plan import model_config as model_config


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or inf."""


def make_functions(
  graphdef,
  tx,
  mcfg: model_lib.ModelConfig,
  seed: int,
  poison: bool = False,
  loss_chunk: int = 0,
):
  """The pure functions (init, train_step, eval_loss) that Trainer jits.

  ``poison`` (the ``debug_nan_step`` hook) makes the loss, hence every gradient, NaN.
  ``loss_chunk`` > 0: the loss head runs that many tokens at a time (``model.loss_fn``).
  """
  loss_of_batch = functools.partial(model_lib.loss_fn, chunk=loss_chunk)

  def init_fn():
    model = model_lib.build(mcfg, seed=seed)
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    return {"params": params, "opt_state": tx.init(params)}

  def step_fn(state, batch):
    params = state["params"]

    def loss_of(p):
      loss = loss_of_batch(graphdef, p, batch)
      return loss * jnp.float32(jnp.nan) if poison else loss  # NaN loss and gradients

    loss, grads = jax.value_and_grad(loss_of)(params)
    updates, opt_state = tx.update(grads, state["opt_state"], params)
    params = optax.apply_updates(params, updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "lr": optim.current_lr(opt_state)}
    skips = optim.nonfinite_skips(opt_state)
    if skips is not None:
      metrics.update(skips)
    return {"params": params, "opt_state": opt_state}, metrics

  def eval_fn(params, batch):
    params = jax.tree.map(lambda x: x.astype(jnp.float32), params)
    return loss_of_batch(graphdef, params, batch)

  return init_fn, step_fn, eval_fn


class Trainer:
  """Mesh, shardings, optimizer and the jitted init / train / eval functions of a config."""

  def __init__(self, cfg, mcfg: model_lib.ModelConfig, plan: Plan, mesh_shape, devices=None):
    # devices: the mesh's devices (default jax.devices()); anytime.lm.aot passes a TPU
    # topology's abstract devices to compile for it on a CPU host.
    self.cfg, self.mcfg, self.plan = cfg, mcfg, plan
    self.mesh = sharding_lib.make_mesh(mesh_shape, devices)
    self.tx = optim.make_optimizer(cfg.opt, plan.total_steps, cfg.grad_accum, mcfg)
    self.graphdef, abstract_state = model_lib.abstract(mcfg)
    param_sh = sharding_lib.param_shardings(abstract_state, self.mesh)
    chunk = loss_chunk(cfg)
    init_fn, step_fn, eval_fn = (
      sharding_lib.in_mesh(f, self.mesh)  # the model's activation constraints apply inside
      for f in make_functions(self.graphdef, self.tx, mcfg, cfg.seed, loss_chunk=chunk)
    )
    self.abstract = jax.eval_shape(init_fn)
    self.shardings = {
      "params": param_sh,
      "opt_state": sharding_lib.like_params(
        self.abstract["opt_state"], self.abstract["params"], param_sh, self.mesh
      ),
    }
    self.batch_sharding = sharding_lib.batch_sharding(self.mesh)
    rep = sharding_lib.replicated(self.mesh)
    batch_sh = {"inputs": self.batch_sharding, "targets": self.batch_sharding}
    self.init = jax.jit(init_fn, out_shardings=self.shardings)
    self.train_step = jax.jit(
      step_fn,
      in_shardings=(self.shardings, batch_sh),
      out_shardings=(self.shardings, rep),
      donate_argnums=0,
    )
    self.eval_step = jax.jit(eval_fn, in_shardings=(param_sh, batch_sh), out_shardings=rep)
    self.poisoned_step = None  # the debug_nan_step hook's train_step (compiled on first use)
    if cfg.get("debug_nan_step", 0):
      poisoned = make_functions(
        self.graphdef, self.tx, mcfg, cfg.seed, poison=True, loss_chunk=chunk
      )[1]
      poisoned = sharding_lib.in_mesh(poisoned, self.mesh)
      self.poisoned_step = jax.jit(
        poisoned,
        in_shardings=(self.shardings, batch_sh),
        out_shardings=(self.shardings, rep),
        donate_argnums=0,
      )

  def abstract_batch(self, rows: int) -> dict:
    shape = (rows, self.mcfg.seq_len)
    sds = jax.ShapeDtypeStruct(shape, jnp.int32, sharding=self.batch_sharding)
    return {"inputs": sds, "targets": sds}

  def compile_train_step(self):
    abstract = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      self.abstract,
      self.shardings,
    )
    return self.train_step.lower(abstract, self.abstract_batch(self.plan.micro_batch)).compile()

  def evaluate(self, state, eval_batches) -> dict[str, float]:
    """Mean validation loss of the raw params and of every average."""
    kinds = {"raw": state["params"]}
    with contextlib.suppress(ValueError):  # ValueError: no averages configured
      kinds.update(averaging.averaged_params(state["opt_state"]))
    schedule_free = optim.schedule_free_eval_params(state["opt_state"], state["params"])
    if schedule_free is not None:
      kinds["schedule_free"] = schedule_free
    out = {}
    for name, params in kinds.items():
      losses = [self.eval_step(params, b) for b in eval_batches]
      out[name] = float(np.mean(jax.device_get(losses)))
    return out


def _meta(cfg, plan: Plan, step: int) -> dict:
  return {"step": step, "tokens": step * plan.tokens_per_step, "total_steps": plan.total_steps}


def _header(cfg, mcfg, plan: Plan, counts: dict, flops: int) -> dict:
  return {
    "kind": "header",
    "schema": 1,
    "preset": cfg.model.preset,
    "schedule": cfg.opt.schedule,
    "lr": cfg.opt.lr,
    "b2": cfg.opt.b2,
    "averages": list(optim.parse_averages(cfg.opt.averages)),
    "batch_size": cfg.batch_size,
    "seq_len": mcfg.seq_len,
    "vocab_size": mcfg.vocab_size,
    "tokens_per_step": plan.tokens_per_step,
    "steps_per_chinchilla": plan.steps_per_chinchilla,
    "total_steps": plan.total_steps,
    "unit": cfg.unit,
    "horizon": cfg.horizon,
    "horizon_steps": {str(k): v for k, v in plan.horizons.items()},
    "params": counts,
    "flops_per_token": flops,
    "data_source": cfg.data.source,
  }


def _restore(trainer: Trainer, cfg, workdir: str, plan: Plan, log):
  """(state, data_state, step, checkpointer): resume from workdir, else init_from, else fresh."""
  ckpt = checkpoint_lib.Checkpointer(
    os.path.join(workdir, "checkpoints"),
    keep=cfg.keep_checkpoints,
    permanent_steps=list(plan.horizons),
    async_save=cfg.async_checkpoints,
  )
  if ckpt.latest_step() is not None:
    # The newest good checkpoint; damaged ones are skipped with a warning, one of
    # another model shape raises CheckpointMismatchError (docs/reliability.md).
    restored = ckpt.restore_latest(trainer.abstract, trainer.shardings, warn=log)
    if restored is not None:
      state, data_state, meta = restored
      log(f"resumed from {ckpt.directory} at step {meta['step']}")
      return state, data_state, int(meta["step"]), ckpt
    raise checkpoint_lib.CorruptCheckpointError(
      f"every checkpoint in {ckpt.directory} is damaged (moved to {ckpt.directory}.corrupt); "
      "nothing to resume from. Rerun to start afresh, or restore a copy."
    )
  if cfg.init_from:
    source = checkpoint_lib.Checkpointer(
      os.path.join(cfg.init_from, "checkpoints"), read_only=True, async_save=False
    )
    state, data_state, meta = source.restore(
      cfg.init_from_step, trainer.abstract, trainer.shardings
    )
    log(f"initialised from {cfg.init_from} step {meta['step']}")
    return state, data_state, int(meta["step"]), ckpt
  return trainer.init(), None, 0, ckpt


def run(cfg, workdir: str, *, dry_run: bool = False, log=None) -> dict:
  """Trains ``cfg`` in ``workdir`` (resuming from it); returns the final summary.

  With ``dry_run`` only the start-up report is printed: no data is read, no
  parameter allocated, nothing written.
  """
  primary = jax.process_index() == 0
  log = log or (lambda msg: print(msg, flush=True) if primary else None)
  if dry_run:
    return _run(cfg, workdir, dry_run=True, log=log)
  validate(cfg)  # a bad config is refused before the workdir is made or locked
  os.makedirs(workdir, exist_ok=True)
  # One trainer per workdir (process 0 holds the lock for its hosts), taken before any compute;
  # a resume must use the config the checkpoints were written with (anytime/lm/workdir.py).
  with workdir_lib.WorkdirLock(workdir) if primary else contextlib.nullcontext() as lock:
    if lock is not None and lock.stale_holder:
      log(f"note: took over the lock of a trainer that is gone ({lock.stale_holder})")
    if _has_checkpoint(workdir):
      for note in workdir_lib.check_resume_config(workdir, cfg.to_dict()):
        log(f"note: {note}")
    return _run(cfg, workdir, dry_run=False, log=log)


def _has_checkpoint(workdir: str) -> bool:
  path = os.path.join(workdir, "checkpoints")
  return os.path.isdir(path) and any(n.isdigit() for n in os.listdir(path))


def _run(cfg, workdir: str, *, dry_run: bool, log) -> dict:
  data_error = None
  if dry_run:
    try:
      data_lib.validate_data_config(cfg.data)
    except ValueError as e:
      data_error = str(e)
  mcfg, plan, mesh_shape = validate(cfg, check_data=not dry_run)
  trainer = Trainer(cfg, mcfg, plan, mesh_shape)
  counts = model_lib.param_counts(mcfg)
  flops = model_lib.flops_per_token(mcfg)
  compiled = trainer.compile_train_step()
  peak = metrics_lib.peak_flops(cfg.peak_flops, mcfg.dtype)
  log(metrics_lib.startup(cfg, mcfg, plan, trainer, counts, flops, compiled, peak))
  if data_error:
    log(f"data: {data_error} (a training run would stop here)")
  if dry_run:
    return {"counts": counts, "flops_per_token": flops, "plan": plan}

  # W&B gets the config that config.json holds; the writer finishes its run on any exit.
  config = json.loads(json.dumps(cfg.to_dict(), default=str))
  with metrics_lib.MetricWriter(workdir, wandb=cfg.get("wandb"), config=config) as writer:
    return _train(cfg, workdir, trainer, (mcfg, plan, counts, flops, compiled, peak), writer, log)


def _train(cfg, workdir: str, trainer: Trainer, built: tuple, writer, log) -> dict:
  """The loop of :func:`run`: restore, then train / evaluate / checkpoint to the horizon."""
  mcfg, plan, counts, flops, compiled, peak = built
  primary = jax.process_index() == 0
  state, data_state, step, ckpt = _restore(trainer, cfg, workdir, plan, log)
  for note in writer.truncate_after(step):
    log(f"WARNING: {note}")
  if primary:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump(cfg.to_dict(), f, indent=1, default=str)
  writer.write("eval", _header(cfg, mcfg, plan, counts, flops))
  pk = dict(process_index=jax.process_index(), process_count=jax.process_count())
  data_iter = data_lib.make_train_iterator(
    cfg.data, seq_len=mcfg.seq_len, global_batch_size=plan.micro_batch, seed=cfg.seed, **pk
  )
  if data_state is not None:
    data_iter.set_state(data_state)
  eval_batches = [
    sharding_lib.global_batch(b, trainer.mesh)
    for b in data_lib.make_eval_batches(
      cfg.data,
      seq_len=mcfg.seq_len,
      batch_size=plan.eval_batch_size,
      num_batches=cfg.eval_batches,
      **pk,
    )
  ]
  run_id = {
    "preset": cfg.model.preset,
    "schedule": cfg.opt.schedule,
    "lr": cfg.opt.lr,
    "b2": cfg.opt.b2,
    "seed": cfg.seed,
    "total_steps": plan.total_steps,
  }
  meter = metrics_lib.Meter(
    plan, flops, metrics_lib.total_peak_flops(peak, trainer.mesh.devices.flat), step
  )
  pending: list[tuple[int, dict]] = []
  last = {}
  last_saved = ckpt.latest_step()

  def check_finite():
    nonlocal pending, last
    fetched = jax.device_get(pending)
    pending = []
    for s, m in fetched:
      if m.get("skipped", False):  # opt.skip_nonfinite_updates: params and averages untouched
        log(
          f"WARNING: skipped the non-finite update of step {s} (loss {m['loss']}, grad norm "
          f"{m['grad_norm']:.3g}); {int(m['skips'])} skipped so far"
        )
        writer.write("train", {"kind": "skip", "step": s, "skips": int(m["skips"])})
        continue
      if not (np.isfinite(m["loss"]) and np.isfinite(m["grad_norm"])):
        ckpt.close()
        raise NonFiniteLossError(
          f"training loss is {m['loss']} at step {s} (lr {m['lr']:.3g}, grad norm "
          f"{m['grad_norm']:.3g}); stopped. The last good checkpoint is step {last_saved} in "
          f"{ckpt.directory}. Lower opt.lr, raise opt.warmup_steps or use model.dtype=float32."
        )
      last = m

  try:
    while step < plan.total_steps:
      step_fn = compiled
      if trainer.poisoned_step is not None and step + 1 == cfg.debug_nan_step:
        step_fn = trainer.poisoned_step  # the debug hook: a NaN loss and gradients
      for _ in range(cfg.grad_accum):
        batch = sharding_lib.global_batch(next(data_iter), trainer.mesh)
        state, metrics = step_fn(state, batch)
      step += 1
      pending.append((step, metrics))
      is_eval = step in plan.eval_steps
      is_save = (
        step in plan.horizons
        or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
        or step == plan.total_steps
      )
      is_log = step % cfg.log_every == 0 or step == plan.total_steps or step == meter.start_step + 1
      if is_log or is_eval or is_save:
        check_finite()
      if is_log and last:  # last: the latest applied (finite) update's metrics
        line, record = meter.update(step, last)
        log(line)
        writer.write("train", record)
      io_start = time.time()
      if is_eval:
        losses = trainer.evaluate(state, eval_batches)
        record = {
          "kind": "eval",
          "step": step,
          "tokens": step * plan.tokens_per_step,
          "chinchilla": step / plan.steps_per_chinchilla,
          "is_horizon": step in plan.horizons,
          "horizon": plan.horizons.get(step),
          "unit": cfg.unit,
          "eval_tokens": plan.eval_batch_size * cfg.eval_batches * mcfg.seq_len,
          "loss": losses,
          "run": run_id,
        }
        bad = sorted(k for k, v in losses.items() if not np.isfinite(v))
        if bad:  # flagged, never a silent number; the run's NaN policy decides what follows
          record["nonfinite"] = bad
        writer.write("eval", record)
        log(f"eval step {step}: " + " ".join(f"{k} {v:.4f}" for k, v in losses.items()))
        if bad:
          message = (
            f"eval loss not finite at step {step} for {', '.join(bad)} (flagged in eval.jsonl)"
          )
          if not cfg.opt.skip_nonfinite_updates:  # the stop policy: no checkpoint of it
            ckpt.close()
            raise NonFiniteLossError(
              f"{message}; stopped. The last good checkpoint is step {last_saved} in "
              f"{ckpt.directory}."
            )
          log(f"WARNING: {message}; continuing (opt.skip_nonfinite_updates > 0)")
      if is_save:
        ckpt.save(step, state, data_iter.get_state(), _meta(cfg, plan, step))
        last_saved = step
      if is_eval or is_save:
        meter.exclude(time.time() - io_start)
  finally:
    data_iter.close()
  ckpt.close()
  return {"step": step, "state": state, "last": jax.device_get(last), "meter": meter.summary()}
