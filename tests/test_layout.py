"""The repository's shape, as invariants: module size, layering, no import circle, entry points,
self-containment and the size of results/ (docs/design.md)."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("anytime", "theory", "experiments")


def _modules() -> dict[str, Path]:
  out = {}
  for package in PACKAGES:
    for path in sorted((ROOT / package).rglob("*.py")):
      parts = path.relative_to(ROOT).with_suffix("").parts
      name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
      out[name] = path
  return out


MODULES = _modules()


def _imports(name: str, path: Path, top_level_only: bool) -> set[str]:
  """Our modules that ``name`` imports (module level only, or anywhere)."""
  tree = ast.parse(path.read_text())
  nodes = tree.body if top_level_only else list(ast.walk(tree))
  found = set()
  for node in nodes:
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      found.add(node.module)
      found |= {f"{node.module}.{a.name}" for a in node.names}
  return {m for m in found if m in MODULES and m != name}


def test_no_module_past_500_lines():
  tests = {str(p.relative_to(ROOT)): p for p in (ROOT / "tests").rglob("*.py")}
  long = {n: len(p.read_text().splitlines()) for n, p in {**MODULES, **tests}.items()}
  assert {n: k for n, k in long.items() if k > 500} == {}


def test_no_import_circle():
  graph = {n: _imports(n, p, top_level_only=True) for n, p in MODULES.items()}
  # A package's __init__ importing its own submodules is not a circle of the code.
  graph = {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in graph.items()}
  state: dict[str, int] = {}

  def visit(node: str, stack: list[str]) -> list[str] | None:
    state[node] = 1
    for dep in sorted(graph[node]):
      if state.get(dep) == 1:
        return [*stack[stack.index(dep) :], dep] if dep in stack else [node, dep]
      if dep not in state and (cycle := visit(dep, [*stack, dep])):
        return cycle
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state and (cycle := visit(node, [node])):
      pytest.fail(f"import circle: {' -> '.join(cycle)}")


@pytest.mark.parametrize(
  "importer, forbidden",
  [
    (("anytime.schedules", "anytime.averaging"), ("anytime.", "theory", "experiments")),
    (("theory",), ("anytime.lm", "anytime.sweeps", "anytime.laws", "experiments")),
    (("anytime",), ("experiments",)),
  ],
)
def test_layering(importer, forbidden):
  """The Optax core imports nothing of ours; theory needs no trainer; the library never
  imports experiments/ (anywhere in the module, not only at its top)."""
  bad = []
  for name, path in MODULES.items():
    if not any(name == i or name.startswith(i + ".") for i in importer):
      continue
    for dep in _imports(name, path, top_level_only=False):
      if any(
        dep == f or dep.startswith(f if f.endswith(".") else f + ".") or dep == f.rstrip(".")
        for f in forbidden
      ) and not (name.startswith("anytime.") and dep == "anytime"):
        bad.append(f"{name} imports {dep}")
  assert bad == []


def test_at_most_15_entry_points_under_experiments():
  entry = [
    n
    for n, p in MODULES.items()
    if n.startswith("experiments") and 'if __name__ == "__main__":' in p.read_text()
  ]
  assert 1 <= len(entry) <= 15, entry


def _tracked() -> list[str]:
  try:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
  except (OSError, subprocess.CalledProcessError):
    pytest.skip("not a git checkout")
  return out.stdout.split()


def test_nothing_refers_outside_the_repository():
  # The sibling directory beside the checkout and this machine's absolute path to it.
  needles = (os.path.join(os.pardir, "shared"), str(ROOT.parent) + os.sep)
  bad = []
  for name in _tracked():
    path = ROOT / name
    if path.suffix in (".png", ".xz") or not path.is_file():
      continue
    text = path.read_text(errors="replace")
    bad += [f"{name}: {n}" for n in needles if n in text]
  assert bad == []


def test_results_stay_small():
  files = [ROOT / n for n in _tracked() if n.startswith("results/")]
  assert len(files) <= 150
  assert sum(f.stat().st_size for f in files if f.exists()) <= 12 * 2**20
