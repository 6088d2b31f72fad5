"""experiments/mup: lr_transfer.py --report_only on a directory with no finished point (a clear
error that names the directory and the seeds, and nothing written); the --replot of
coord_check, growth and module_lr from small synthetic data, and their refusals."""

import itertools
import json
import math
import sys

import numpy as np
import pytest

from anytime import cli
from experiments.mup import __main__ as mup_main
from experiments.mup import coord_check as mup_coord_check
from experiments.mup import growth as mup_growth
from experiments.mup import lr_transfer as mup_lr_transfer
from experiments.mup import module_lr as mup_module_lr


def test_report_only_without_points_names_the_directory(tmp_path):
  out = tmp_path / "mup"
  with pytest.raises(SystemExit, match=r"has no finished point.*--seeds \[0, 1\]"):
    mup_lr_transfer.main(["--report_only", "--out", str(out)])
  assert sorted(p.name for p in out.iterdir()) == []


# ------------------------------------------------------------------------------------------
# --replot of coord_check, growth and module_lr: the figure from the committed data alone.


def _record_plot(monkeypatch, module) -> list:
  """Calls to ``module.plot`` (still drawn), as their arguments."""
  calls, real = [], module.plot
  monkeypatch.setattr(module, "plot", lambda *a: (calls.append(a), real(*a)))
  return calls


def _is_png(path) -> bool:
  return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_coord_check_replot_refits_the_csv(tmp_path, monkeypatch):
  widths, exponents = (64, 128, 256), {"embed": 0.0, "logits": 1.0}
  rows = ["lr,variant,when,layer,width,mean_abs"]
  for variant, scale in (("standard", 2.0), ("mup", 1.0)):
    for when in ("init", "trained"):
      for layer, p in exponents.items():
        value = scale * (10.0 if when == "trained" else 1.0)
        rows += [f"0.001,{variant},{when},{layer},{w},{value * (w / 64) ** p!r}" for w in widths]
  (tmp_path / "coord_check.csv").write_text("\n".join(rows) + "\n")
  calls = _record_plot(monkeypatch, mup_coord_check)
  mup_coord_check.main(["--replot", "--out", str(tmp_path)])
  got_widths, results, path = calls[0]
  assert got_widths == list(widths) and list(results) == [0.001]
  assert list(results[0.001]) == ["standard", "mup"]
  std = results[0.001]["standard"]
  np.testing.assert_allclose(std["sizes"]["logits"], [20.0, 40.0, 80.0])  # trained rows only
  assert std["slopes"] == pytest.approx(exponents, abs=1e-9)
  assert path == str(tmp_path / "coord_check.png") and _is_png(tmp_path / "coord_check.png")


def test_growth_replot_reads_the_losses_as_float32(tmp_path, monkeypatch):
  rows = ["parameterization,step,small,exact,naive,noise"]
  for par, step in itertools.product(("standard", "mup"), (1, 2, 3)):
    rows.append(f"{par},{step},4.2148895,4.2148895,{4.2 + step / 100:.7f},4.2148933")
  (tmp_path / "growth.csv").write_text("\n".join(rows) + "\n")
  calls = _record_plot(monkeypatch, mup_growth)
  mup_growth.main(["--replot", "--out", str(tmp_path)])
  results, _ = calls[0]
  assert list(results) == ["standard", "mup"]
  assert results["mup"]["small"].tolist() == [float(np.float32(4.2148895))] * 3  # as logged
  assert results["mup"]["naive"][2] == float(np.float32(4.23))
  assert _is_png(tmp_path / "growth.png")
  (tmp_path / "growth.csv").write_text("\n".join(rows[:2] + rows[3:]) + "\n")  # step 2 lost
  with pytest.raises(ValueError, match=r"growth.csv: standard step 3 is out of order"):
    mup_growth.main(["--replot", "--out", str(tmp_path)])


def test_module_lr_replot_picks_the_points_of_the_run(tmp_path, monkeypatch):
  """mlp best at multiplier 2, readout at 1: the combined point is the mlp=2 one."""
  curves = {"mlp": lambda x: 4.0 + 0.1 * (x - 1) ** 2, "readout": lambda x: 4.1 + 0.05 * x**2}
  records = []
  for seed, lr in itertools.product((0, 1), (0.008, 0.004)):  # 0.004: another run, ignored
    for group, mult in itertools.product(curves, mup_module_lr.MULTIPLIERS):
      loss = curves[group](math.log2(mult)) + 0.01 * seed + (lr == 0.004)
      key = mup_module_lr._key({group: mult})
      records.append({"setting": key, "seed": seed, "width": 64, "lr": lr, "val_loss": loss})
  (tmp_path / "module_lr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  calls = _record_plot(monkeypatch, mup_module_lr)
  flags = ["--replot", "--out", str(tmp_path), "--width", "64", "--lr", "0.008"]
  mup_module_lr.main([*flags, "--groups", "mlp", "readout"])
  per_group, base, combined, _ = calls[0]
  assert base == pytest.approx(4.105) and combined == pytest.approx(4.005)
  assert per_group["readout"][4.0] == pytest.approx(4.305)
  assert _is_png(tmp_path / "module_lr.png")
  with pytest.raises(ValueError, match=r"no point 'embedding=0.25' for seed\(s\) \[0, 1\]"):
    mup_module_lr.main(flags)  # every group by default: embedding never ran


@pytest.mark.parametrize(
  "sub, flags, name",
  [
    ("coord_check", [], "coord_check.csv"),
    ("growth", [], "growth.csv"),
    ("module_lr", ["--lr", "0.008"], "module_lr.jsonl"),
  ],
)
def test_replot_without_its_input_is_one_error_line(
  sub, flags, name, tmp_path, monkeypatch, capsys
):
  monkeypatch.setattr(sys, "argv", list(sys.argv))  # dispatch rewrites it
  (tmp_path / "mup").mkdir()
  (tmp_path / "mup" / "coord_check.json").write_text("{}")  # a summary alone is not the data
  argv = [sub, "--replot", "--out", str(tmp_path / "mup"), *flags]
  with pytest.raises(SystemExit) as e:
    cli.dispatch("experiments.mup", "", mup_main.SUBCOMMANDS, argv)
  err = capsys.readouterr().err
  assert e.value.code == 2 and err.count("\n") == 1
  assert err.startswith(f"error: {tmp_path / 'mup' / name}: no such file")
  assert sorted(p.name for p in (tmp_path / "mup").iterdir()) == ["coord_check.json"]


def test_replot_refuses_a_malformed_record(tmp_path):
  (tmp_path / "coord_check.csv").write_text("lr,variant,when,layer,width\n0.001,mup,init,x,64\n")
  with pytest.raises(ValueError, match=r"coord_check.csv: record 1 has no mean_abs"):
    mup_coord_check.main(["--replot", "--out", str(tmp_path)])
  (tmp_path / "module_lr.jsonl").write_text('{"setting": "base"}\n{"torn\n')
  with pytest.raises(ValueError, match=r"module_lr.jsonl: line 2 is not a JSON object"):
    mup_module_lr.main(["--replot", "--out", str(tmp_path), "--lr", "0.008"])
  assert sorted(p.name for p in tmp_path.iterdir()) == ["coord_check.csv", "module_lr.jsonl"]
