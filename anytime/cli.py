"""What every command of the project shares at its entry point.

- :func:`run` turns a ``ValueError`` (bad input, named in its message) into one line on stderr
  and exit code 2, instead of a traceback.
- :func:`dispatch` is the ``python -m PACKAGE SUBCOMMAND [flags]`` front of a group of commands:
  ``--help`` lists the subcommands without importing any of them; an unknown subcommand is
  refused in one line.
- :func:`output_dir` / :func:`output_file` check an output path before any compute, so a long
  job never dies at its last step on a path it could never write.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence


def run(main: Callable[[], object]) -> None:
  """Exits with ``main()``'s code (0 when it returns a non-int); a ValueError exits 2 with
  ``error: <message>`` on stderr."""
  try:
    code = main()
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  sys.exit(code if isinstance(code, int) else 0)


def dispatch(
  command: str,
  doc: str,
  subcommands: Mapping[str, tuple[str, str]],
  argv: Sequence[str] | None = None,
) -> None:
  """Runs ``subcommands[argv[0]]`` = (module, one-line help): ``module.main(argv[1:])``."""
  argv = list(sys.argv[1:] if argv is None else argv)
  width = max(map(len, subcommands))
  usage = "\n".join(
    [f"usage: python -m {command} SUBCOMMAND [--help] [flags]", "", doc.strip(), "", "subcommands:"]
    + [f"  {name:<{width}}  {help_}" for name, (_, help_) in subcommands.items()]
  )
  if not argv or argv[0] in ("-h", "--help"):
    print(usage)
    sys.exit(0 if argv else 2)
  name, rest = argv[0], argv[1:]
  if name not in subcommands:
    print(
      f"error: subcommand {name!r} unknown; allowed: {', '.join(subcommands)} "
      f"(python -m {command} --help)",
      file=sys.stderr,
    )
    sys.exit(2)
  module = importlib.import_module(subcommands[name][0])
  sys.argv = [f"python -m {command} {name}", *rest]  # argparse's prog in usage lines
  run(lambda: module.main(rest))


def output_dir(flag: str, path: str) -> str:
  """``path`` as a directory that exists and is writable (made if missing), else ValueError."""
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f"{flag}={path!r} is a file; expected a directory (made if missing).")
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise ValueError(f"{flag}={path!r} cannot be made: {e.strerror}.") from None
  if not os.access(path, os.W_OK | os.X_OK):
    raise ValueError(f"{flag}={path!r} is not writable.")
  return path


def output_file(flag: str, path: str) -> str:
  """``path`` as a file that can be written (its directory made if missing), else ValueError."""
  if os.path.isdir(path):
    raise ValueError(f"{flag}={path!r} is a directory; expected a file path.")
  output_dir(flag, os.path.dirname(path) or ".")
  return path


def print_rows(rows: list[dict], skip: tuple[str, ...] = ()) -> None:
  """One indented ``key=value`` line per row, leaving out the ``skip`` keys."""
  for r in rows:
    print("  " + "  ".join(f"{k}={v}" for k, v in r.items() if k not in skip))


# Checks of parsed flags, each raising one ValueError that names the flag, its value and what
# is allowed (``run`` prints it as one ``error:`` line). Called right after ``parse_args``, so
# a bad flag fails before any compute or write.


def require(flag: str, value, ok: bool, allowed: str):
  """``value`` if ``ok``, else ValueError ``flag=value ...; allowed: ...``."""
  if not ok:
    raise ValueError(f"{flag}={value!r} is invalid; allowed: {allowed}.")
  return value


def at_least(flag: str, value, low):
  """``value`` if it is >= ``low`` (every item, for a list)."""
  for v in value if isinstance(value, list | tuple) else [value]:
    require(flag, value, v >= low, f"a number >= {low:g}")
  return value


def positive(flag: str, value):
  """``value`` if it is > 0 (every item, for a list)."""
  for v in value if isinstance(value, list | tuple) else [value]:
    require(flag, value, v > 0, "a number > 0")
  return value


def one_of(flag: str, value, allowed) -> list:
  """``value`` (a comma-separated string or a list) as a list, every item in ``allowed``."""
  items = [v for v in value.split(",") if v] if isinstance(value, str) else list(value)
  bad = [v for v in items if v not in allowed]
  require(flag, value, items and not bad, f"one or more of {', '.join(map(str, allowed))}")
  return items


def input_file(flag: str, path: str) -> str:
  """``path`` if it is an existing, readable file."""
  return require(flag, path, os.path.isfile(path) and os.access(path, os.R_OK), "a readable file")


def input_dir(flag: str, path: str) -> str:
  """``path`` if it is an existing directory."""
  return require(flag, path, os.path.isdir(path), "an existing directory")
