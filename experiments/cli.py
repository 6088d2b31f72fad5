"""What every experiments command shares at its entry point."""

from __future__ import annotations

import sys
from collections.abc import Callable


def run(main: Callable[[], int]) -> None:
  """Exits with ``main()``'s code; a ValueError (bad input, named in its message) exits 2 with
  the message on stderr instead of a traceback."""
  try:
    sys.exit(main())
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def print_rows(rows: list[dict], skip: tuple[str, ...] = ()) -> None:
  """One indented ``key=value`` line per row, leaving out the ``skip`` keys."""
  for r in rows:
    print("  " + "  ".join(f"{k}={v}" for k, v in r.items() if k not in skip))
