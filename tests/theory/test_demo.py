"""The theory demo writes its table and figure (slow: ~15 s of CPU)."""

import pytest


@pytest.mark.slow
def test_theory_demo_writes_table_and_png(tmp_path):
  from experiments.linreg import demo as theory_demo

  path = theory_demo.main(out_dir=str(tmp_path))
  with open(path) as f:
    text = f.read()
  assert (tmp_path / "theory_demo.png").stat().st_size > 10_000
  ratios = [float(line.split("|")[6]) for line in text.splitlines() if line.startswith("| t^-")]
  assert len(ratios) == 12 and all(0 < r < 100 for r in ratios)
