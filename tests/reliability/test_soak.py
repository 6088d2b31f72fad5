"""The kill-and-resume soak (experiments/soak.py), 3 random kills: bitwise equal at the end."""

import pytest

from experiments import soak


@pytest.mark.slow
def test_soak_random_kills_then_resume_is_bitwise_identical(tmp_path):
  summary = soak.soak(kills=3, steps=16, seed=1, workdir=str(tmp_path))
  assert summary["killed"] >= 1 and summary["resumes"] == summary["trials"]
  assert summary["bitwise_equal"]
