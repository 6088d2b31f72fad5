"""experiments/mup/lr_transfer.py --report_only on a directory with no finished point: a clear
error that names the directory and the seeds, and nothing written."""

import pytest

from experiments.mup import lr_transfer as mup_lr_transfer


def test_report_only_without_points_names_the_directory(tmp_path):
  out = tmp_path / "mup"
  with pytest.raises(SystemExit, match=r"has no finished point.*--seeds \[0, 1\]"):
    mup_lr_transfer.main(["--report_only", "--out", str(out)])
  assert sorted(p.name for p in out.iterdir()) == []
