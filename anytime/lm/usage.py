"""The trainer's command line, checked before anything starts (``python -m anytime.lm``).

absl and ``ml_collections.config_flags`` report a mistyped config field as a 40-line
``AttributeError`` traceback, a missing config file only when the config is first read (after
start-up), and ``--help`` with exit code 1. These checks run on the raw arguments first, so
each mistake is one line naming the flag, its value and what is allowed (exit code 2 in
``anytime.lm.__main__``), and nothing has been compiled or written when it is reported:

- :func:`wants_help`: ``-h``/``--help``/``--helpshort``/``--helpfull`` anywhere before ``--``;
- :func:`check_config`: the ``--config`` file exists, its ``get_config(ARGS)`` accepts ARGS, and
  every ``--config.a.b=v`` override names a field of that config (else the nearest ones);
- :func:`check_workdir`: ``--workdir`` is, or can be made as, a writable directory.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from collections.abc import Sequence

HELP_FLAGS = ("-h", "-help", "--help", "-helpshort", "--helpshort", "-helpfull", "--helpfull")


def _args(argv: Sequence[str]) -> list[str]:
  """The flag arguments (argv[0], the program, and everything after ``--`` left out)."""
  args = list(argv[1:])
  return args[: args.index("--")] if "--" in args else args


def wants_help(argv: Sequence[str]) -> str | None:
  """The help flag asked for (``--help`` etc.), else None."""
  for a in _args(argv):
    if a in HELP_FLAGS:
      return a
  return None


def flag_value(argv: Sequence[str], name: str) -> str | None:
  """The value of ``--name=V`` / ``--name V`` (the last one given), else None."""
  args = _args(argv)
  value = None
  for i, a in enumerate(args):
    for dashes in ("--", "-"):
      if a.startswith(f"{dashes}{name}="):
        value = a[len(dashes) + len(name) + 1 :]
      elif a == f"{dashes}{name}" and i + 1 < len(args):
        value = args[i + 1]
  return value


def load_config(spec: str):
  """``get_config(ARGS)`` of ``FILE.py[:ARGS]`` (a shipped config found by its name, as
  :func:`anytime.configs.resolve` does); ValueError (one line) when that fails."""
  from anytime import configs

  flag = f"--config={spec}"
  path, sep, arg = configs.resolve(spec).partition(":")
  if not path:
    raise ValueError(f"{flag}: no file given; expected FILE.py[:ARGS], e.g. configs/lm.py:model=1m")
  if not os.path.isfile(path):
    raise ValueError(
      f"{flag}: config file {path!r} not found (from {os.getcwd()}); use configs/lm.py "
      "(the shipped config, found from any directory) or the path of a config .py file"
    )
  module_spec = importlib.util.spec_from_file_location("_anytime_checked_config", path)
  if module_spec is None or module_spec.loader is None:
    raise ValueError(f"{flag}: {path!r} is not a Python file; expected a config .py file")
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except (SyntaxError, ImportError) as e:
    raise ValueError(f"{flag}: {path!r} cannot be loaded: {type(e).__name__}: {e}") from None
  get_config = getattr(module, "get_config", None)
  if get_config is None:
    raise ValueError(f"{flag}: {path!r} defines no get_config(); a config file must")
  try:
    return get_config(arg) if sep else get_config()
  except (ValueError, TypeError, KeyError) as e:
    raise ValueError(f"{flag}: {e}") from None


def _override(arg: str) -> tuple[str, str] | None:
  """(dotted field, flag as given) of a ``--config.a.b=v`` / ``--noconfig.a.b`` argument."""
  for prefix in ("--config.", "-config.", "--noconfig.", "-noconfig."):
    if arg.startswith(prefix):
      return arg[len(prefix) :].split("=", 1)[0], arg
  return None


def check_override(cfg, field: str, flag: str) -> None:
  """ValueError unless ``field`` (``a.b.c``) names a field of ``cfg``."""
  node, where = cfg, "config"
  keys = field.split(".")
  for i, key in enumerate(keys):
    fields = sorted(node.keys()) if hasattr(node, "keys") and callable(node.keys) else None
    if fields is None:
      raise ValueError(
        f"{flag}: {where} is a value ({node!r}), not a group; it has no field {key!r}"
      )
    if key not in fields:
      near = difflib.get_close_matches(key, fields, n=3, cutoff=0.5)
      hint = f"did you mean {', '.join(map(repr, near))}? " if near else ""
      raise ValueError(
        f"{flag}: {where} has no field {key!r}; {hint}fields of {where}: {', '.join(fields)}"
      )
    node, where = node[key], f"{where}.{key}"
    if i == len(keys) - 1 and hasattr(node, "keys") and callable(node.keys):
      raise ValueError(
        f"{flag}: {where} is a group, not a value; set one of its fields: "
        f"{', '.join(sorted(node.keys()))}"
      )


def check_config(argv: Sequence[str]) -> None:
  """ValueError (one line) for a missing/unloadable --config or an unknown override field."""
  spec = flag_value(argv, "config")
  if spec is None:
    if any(_override(a) for a in _args(argv)):
      raise ValueError("--config.FIELD=VALUE given without --config=configs/lm.py:ARGS")
    raise ValueError("--config=configs/lm.py:ARGS is required (python -m anytime.lm --help)")
  cfg = load_config(spec)
  for a in _args(argv):
    parsed = _override(a)
    if parsed is not None:
      check_override(cfg, *parsed)


def check_workdir(path: str) -> None:
  """ValueError unless ``path`` is a writable directory or can be made as one; makes nothing."""
  flag = f"--workdir={path}"
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f"{flag}: it is a file; expected a directory (made if missing)")
  probe = os.path.abspath(path)
  while not os.path.exists(probe):  # the nearest existing ancestor must let us make the rest
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise ValueError(f"{flag}: {probe!r} is a file, so the directory cannot be made")
  if not os.access(probe, os.W_OK | os.X_OK):
    what = "the directory" if probe == os.path.abspath(path) else f"its parent {probe!r}"
    raise ValueError(f"{flag}: {what} is not writable")
