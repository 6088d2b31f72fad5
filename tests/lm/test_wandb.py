"""The optional Weights & Biases writer (anytime/lm/metrics.py): off by default without importing
wandb; in offline mode it logs exactly the JSONL records' scalars, at their steps, and the config.

The offline run is read back from its transaction log (``run-<id>.wandb``: W&B's leveldb-style
log of protobuf records), which is what ``wandb sync`` would upload.
"""

import glob
import json
import os
import struct
import subprocess
import sys

import pytest

from anytime.configs import lm as lm_config
from anytime.lm import metrics, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tiny(**overrides):
  cfg = lm_config.get_config("model=tiny,data=synthetic,unit=steps,horizon=4")
  cfg.opt.averages = ("pema25",)
  cfg.eval_points = 2
  cfg.eval_batches = 1
  cfg.log_every = 1
  cfg.checkpoint_every = 0
  cfg.async_checkpoints = False
  cfg.peak_flops = 1e9  # skip the matmul measurement
  return lm_config.override(cfg, overrides)


def _offline_logs(wandb_dir):
  """The offline runs' logs under ``wandb_dir``, once W&B's service has written them out (it
  does on process exit, or on teardown; run.finish() alone leaves the last block buffered)."""
  import wandb

  wandb.teardown()
  return glob.glob(str(wandb_dir / "wandb" / "offline-run-*" / "run-*.wandb"))


def _records(path):
  """The protobuf Records of a .wandb log: 32 KiB blocks of (crc, length, type) chunks."""
  from wandb.proto import wandb_internal_pb2

  with open(path, "rb") as f:
    data = f.read()
  assert data[:4] == b":W&B"
  block, pos, chunk, out = 32768, 7, b"", []
  while pos + 7 <= len(data):
    if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
      pos += block - pos % block
      continue
    _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
    if kind == 0 and length == 0:
      break
    chunk += data[pos + 7 : pos + 7 + length]
    pos += 7 + length
    if kind in (1, 4):  # FULL or LAST: a whole record
      record = wandb_internal_pb2.Record()
      record.ParseFromString(chunk)
      out.append(record)
      chunk = b""
  return out


def test_offline_run_logs_the_jsonl_scalars_and_the_config(tmp_path, monkeypatch):
  pytest.importorskip("wandb")
  monkeypatch.setenv("WANDB_MODE", "offline")
  monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
  monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # discard port: no server there
  monkeypatch.setenv("WANDB_SILENT", "true")
  monkeypatch.setenv("WANDB_CONSOLE", "off")
  monkeypatch.delenv("WANDB_API_KEY", raising=False)
  (tmp_path / "wandb_dir").mkdir()
  cfg = _tiny(**{"wandb.project": "anytime-test", "wandb.name": "tiny-offline"})
  workdir = str(tmp_path / "run")
  train.run(cfg, workdir, log=lambda msg: None)

  runs = _offline_logs(tmp_path / "wandb_dir")
  assert len(runs) == 1, runs
  assert not os.path.exists(os.path.join(workdir, "wandb"))  # $WANDB_DIR, not the workdir
  records = _records(runs[0])
  kinds = [r.WhichOneof("record_type") for r in records]
  assert kinds[-1] == "exit" and records[-1].exit.exit_code == 0  # finished cleanly
  run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
  assert run.project == "anytime-test" and run.display_name == "tiny-offline"
  config = {i.key: json.loads(i.value_json) for i in run.config.update}
  assert config["opt"]["lr"] == cfg.opt.lr and config["model"]["preset"] == "tiny"

  logged = {}  # step -> {name: value}, as W&B merged the rows of one step
  for r in records:
    if r.WhichOneof("record_type") == "history":
      row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
      logged.setdefault(r.history.step.num, {}).update(row)
  train_log = metrics.read_jsonl(os.path.join(workdir, "train.jsonl"))
  evals = [r for r in metrics.read_jsonl(os.path.join(workdir, "eval.jsonl")) if "step" in r]
  assert [r["step"] for r in train_log] == [1, 2, 3, 4]
  assert [r["step"] for r in evals] == [1, 2, 4]  # eval_points 1, 4 and the horizons 1, 2, 4
  assert sorted(logged) == [1, 2, 3, 4]
  for r in train_log:
    assert logged[r["step"]]["train/loss"] == r["loss"]
    assert logged[r["step"]]["train/grad_norm"] == r["grad_norm"]
  for r in evals:
    assert {k: logged[r["step"]][f"eval/loss/{k}"] for k in r["loss"]} == r["loss"]

  # Nothing went to the network: the (unreachable) base URL was never tried.
  logs = ""
  for name in glob.glob(str(tmp_path / "wandb_dir" / "**" / "*.log"), recursive=True):
    with open(name) as f:
      logs += f.read()
  assert "offline" in logs  # the logs were found and read
  assert "127.0.0.1:9" not in logs and "api.wandb.ai" not in logs


def test_a_crash_finishes_the_wandb_run_as_failed(tmp_path, monkeypatch):
  pytest.importorskip("wandb")
  monkeypatch.setenv("WANDB_DIR", str(tmp_path))
  monkeypatch.setenv("WANDB_SILENT", "true")
  monkeypatch.setenv("WANDB_CONSOLE", "off")
  cfg = _tiny(**{"wandb.project": "p", "wandb.mode": "offline"})
  with (
    pytest.raises(RuntimeError, match="boom"),
    metrics.MetricWriter(str(tmp_path / "run"), wandb=cfg.wandb, config={"a": 1}) as writer,
  ):
    writer.write("train", {"step": 1, "loss": 2.5})
    raise RuntimeError("boom")
  (log,) = _offline_logs(tmp_path)
  records = _records(log)
  assert records[-1].WhichOneof("record_type") == "exit" and records[-1].exit.exit_code == 1


@pytest.mark.parametrize(
  "field, value, message",
  [
    ("mode", "bad", "wandb.mode='bad' is invalid: allowed: ('', 'online', 'offline', 'disabled')"),
    ("project", 3, "wandb.project=3 is invalid: expected a string"),
    ("name", "x", "wandb.project='' is invalid: wandb.entity / wandb.name are set"),
  ],
)
def test_bad_wandb_fields_are_refused_by_validate(field, value, message):
  cfg = lm_config.get_config("model=tiny,data=synthetic,unit=steps,horizon=4")
  cfg.wandb[field] = value if field != "project" else "p"
  if field == "project":  # ConfigDict locks a field's type; a dict-like stand-in bypasses it
    cfg.wandb = {"project": 3, "entity": "", "name": "", "mode": ""}
    with pytest.raises(ValueError) as e:
      metrics.validate_wandb_config(_Fields(cfg.wandb))
  else:
    with pytest.raises(ValueError) as e:
      train.validate(cfg, check_data=False)
  assert str(e.value).startswith(message)


class _Fields(dict):
  __getattr__ = dict.__getitem__


def test_without_a_project_wandb_is_never_imported(tmp_path):
  """The default config through everything that touches W&B when it is on: validation, the
  writer (TensorBoard + JSONL records, close); then wandb must not be loaded."""
  code = """
import sys
from anytime.configs import lm as lm_config
from anytime.lm import metrics, train
cfg = lm_config.get_config("model=tiny,data=synthetic,unit=steps,horizon=3")
assert cfg.wandb.project == ""
train.validate(cfg)
with metrics.MetricWriter(sys.argv[1], wandb=cfg.wandb, config=cfg.to_dict()) as writer:
  writer.write("train", {"step": 1, "loss": 2.5})
assert "wandb" not in sys.modules, "wandb imported"
print("wrote, wandb not imported")
"""
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  out = subprocess.run(
    [sys.executable, "-c", code, str(tmp_path / "run")],
    cwd=tmp_path,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert out.returncode == 0, out.stderr
  assert "wrote, wandb not imported" in out.stdout
  assert metrics.read_jsonl(str(tmp_path / "run" / "train.jsonl")) == [{"step": 1, "loss": 2.5}]
