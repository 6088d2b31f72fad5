"""A non-editable install works from any directory: the wheel carries the shipped configs and the
sweep report's reference CSV, and nothing reads a path of the source tree.

The wheel is built from a copy of the working tree (the checkout stays clean; pip fetches the
build backend pyproject.toml names, so this needs the package index) and installed
without its dependencies into a fresh venv that sees this environment's packages through a
plain path entry. A path entry (unlike a site directory) does not run the ``.pth`` files there,
so this environment's editable ``anytime`` stays invisible: the test asserts that the package
it runs is the installed one.
"""

import os
import shutil
import site
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(command, cwd, env=None, timeout=600):
  out = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
  assert out.returncode == 0, f"{command}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
  return out


@pytest.mark.slow
def test_wheel_installs_and_its_commands_run_outside_the_repo(tmp_path):
  src = tmp_path / "src"
  src.mkdir()
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(os.path.join(ROOT, name), src / name)
  ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
  for package in ("anytime", "theory"):
    shutil.copytree(os.path.join(ROOT, package), src / package, ignore=ignore)
  wheels = tmp_path / "wheels"
  # Built as pip builds it for a user: in isolation, with pyproject's build-system (from the index).
  _run(
    [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
    cwd=tmp_path,
  )
  (wheel,) = wheels.glob("anytime_schedules-*.whl")
  names = set(zipfile.ZipFile(wheel).namelist())
  for shipped in (
    "anytime/configs/lm.py",
    "anytime/configs/sweeps.py",
    "anytime/sweeps/reference/paper_fig2_losses.csv",
    "anytime/lm/__main__.py",
    "theory/__init__.py",
  ):
    assert shipped in names, shipped

  venv = tmp_path / "venv"
  _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
  python = str(venv / "bin" / "python")
  venv_site = _run(
    [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path
  ).stdout.strip()
  with open(os.path.join(venv_site, "deps.pth"), "w") as f:  # the dependencies, already here
    f.write("\n".join(site.getsitepackages()) + "\n")
  _run(
    [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", str(wheel)],
    cwd=tmp_path,
  )

  work = tmp_path / "elsewhere"
  work.mkdir()
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
  env["JAX_PLATFORMS"] = "cpu"
  where = _run([python, "-c", "import anytime, theory; print(anytime.__file__)"], work, env)
  assert where.stdout.startswith(venv_site), where.stdout  # the installed copy, not the checkout

  train = _run(
    [python, "-m", "anytime.lm",
     "--config=configs/lm.py:model=tiny,data=synthetic,unit=steps,horizon=3", "--workdir=W"],
    work, env,
  )  # fmt: skip
  assert "step       3/3" in train.stdout, train.stdout
  assert (work / "W" / "train.jsonl").exists() and (work / "W" / "config.json").exists()
  prepare = _run([python, "-m", "anytime.lm.prepare", "--help"], work, env)
  assert "--input_dir" in prepare.stdout
  sweep = _run([python, "-m", "anytime.sweeps", "--sweep=demo", "--dry"], work, env)
  assert "accelerator-hours" in sweep.stdout
  assert sorted(os.listdir(work)) == ["W"]  # nothing written beside the run directory
