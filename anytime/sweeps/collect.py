"""Collect a sweep's finished runs' logs into a folder that can be committed.

    python -m anytime.sweeps --sweep=fig2 --root=R --set data.path=D --collect=results/fig2/runs

Only the logs of a finished run are copied (``LOG_FILES``: config, run card, train and eval
logs; never checkpoints or TensorBoard files), one folder per run, with the sweep's records
(``bracket.json``, ``headline.json``). The report reads nothing else, so the study can be
rebuilt, and the launcher resumes it, on any machine that unpacks these folders into a root.

The copies are made machine-independent: the root's absolute path is dropped (paths become
relative to the root), and every ``--set FIELD=VALUE`` whose value is an absolute path (a
corpus on this machine, say) is written as ``<FIELD>``. A run that is not finished is left
out (and counted), so collecting in the middle of a sweep never commits a torn log. Each file
is written to a temporary name and renamed.
"""

from __future__ import annotations

import os
import shutil

from anytime.sweeps import common as sc
from anytime.sweeps import runlogs

LOG_FILES = ("config.json", "eval.jsonl", "run.json", "train.jsonl")
SWEEP_RECORDS = ("bracket.json", "headline.json")


def replacements(root: str, sets) -> list[tuple[str, str]]:
  """(old, new) text replacements: machine paths of ``--set`` values, then the root."""
  out = []
  for item in sets:
    field, _, value = item.partition("=")
    if os.path.isabs(value) and len(value) > 1:
      out.append((value.rstrip("/"), f"<{field}>"))
  # Longest first, so that a path inside another is never half replaced.
  out.sort(key=lambda kv: -len(kv[0]))
  return [*out, (os.path.abspath(root).rstrip("/") + "/", "")]


def collect(runs, root: str, dest: str, sets=()) -> dict[str, int]:
  """Copies the logs of every finished run in ``runs`` from ``root`` to ``dest/<name>/``.

  Returns counts: ``runs`` copied, ``unfinished`` left out, ``records`` (sweep records).
  """
  if os.path.abspath(dest) == os.path.abspath(root):
    raise ValueError(f"--collect={dest!r} is the sweep root itself; name another folder.")
  rules = replacements(root, sets)
  counts = {"runs": 0, "unfinished": 0, "records": 0}
  for run in runs:
    if sc.run_state(root, run) != "done":
      counts["unfinished"] += run.supported
      continue
    src, out = sc.workdir(root, run), os.path.join(dest, run.name)
    os.makedirs(out, exist_ok=True)
    for name in LOG_FILES:
      if not os.path.isfile(os.path.join(src, name)):
        continue  # e.g. a run that never logged a training line
      with open(os.path.join(src, name)) as f:
        text = f.read()
      for old, new in rules:
        text = text.replace(old, new)
      runlogs.write_atomic(os.path.join(out, name), text)
    counts["runs"] += 1
  for name in SWEEP_RECORDS:
    if os.path.isfile(os.path.join(root, name)):
      os.makedirs(dest, exist_ok=True)
      shutil.copyfile(os.path.join(root, name), os.path.join(dest, name))
      counts["records"] += 1
  return counts
