"""``python -m anytime.lm.prepare``: text -> the one dataset format the trainer reads.

    python -m anytime.lm.prepare --input='c4-train.*.json.gz' | --input_dir=DIR --output_dir=OUT ...

runs the prepare pipeline (anytime.lm.beam_prepare; flags there and in docs/data.md) and writes an
ArrayRecord row dataset (anytime.lm.row_files). Every dataset the trainer reads is this format,
whatever its size: C4 through Beam on Dataflow, a directory of text files on the DirectRunner,
the embedded stdlib corpus (anytime.lm.corpus) through the same steps in-process
(``--runner=InProcess``). The flat ``train.bin``/``val.bin`` token files this command wrote before
issue #28 are no longer read; prepare their text again.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> dict:
  """The command line; returns the dataset's meta.json content."""
  from anytime.lm import beam_prepare

  try:
    return beam_prepare.main(argv)
  except ImportError as err:  # pragma: no cover - the trainer-only install without Beam
    raise ValueError(
      f"this runner needs the beam extra: pip install -e '.[beam]', or pass --runner=InProcess "
      f"({err})"
    ) from err


if __name__ == "__main__":
  try:
    main()
  except ValueError as err:
    sys.exit(f"prepare: error: {err}")
