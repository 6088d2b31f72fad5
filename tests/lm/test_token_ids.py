"""Issue #31: a token id >= vocab_size anywhere in a split never reaches the model. In the row
format meta.json records each file's max_id, checked when the dataset is opened (naming the
file); the reader checks every batch it reads too, so a file whose meta.json does not tell (one
replaced after prepare) is refused at the first batch holding the id, wherever the row sits."""

import json

import numpy as np
import pytest

from anytime.lm import data
from tests.lm.test_data import tokens_cfg, write_rows_dir


def test_bad_id_anywhere_in_a_split_is_refused(tmp_path):
  n, seq_len = 100_001, 100
  good = np.arange(n) % 50
  for split in ("train", "val"):
    bad = good.copy()
    bad[n // 2 + 1_234] = 50  # one id == vocab_size, in the middle of a file
    train, val = (bad, good) if split == "train" else (good, bad)
    path = tmp_path / split
    write_rows_dir(path, train, val, vocab=50, eos_id=0, seq_len=seq_len, files=3)
    # On open, from meta.json's per-file max_id, naming the file.
    with pytest.raises(ValueError, match=rf"{split}-0000\d.array_record: holds token id 50 >= "):
      data.make_train_iterator(tokens_cfg(path), seq_len=seq_len, global_batch_size=2, seed=0)
    # meta.json silent about it: refused by the reader's per-batch check, naming file and row.
    meta = json.loads((path / "meta.json").read_text())
    for entry in meta["splits"][split]["files"]:
      entry["max_id"] = 49
    (path / "meta.json").write_text(json.dumps(meta))
    row = (n // 2 + 1_234) // seq_len  # the stored row holding it (not at a row boundary)
    file = "train-00001" if split == "train" else "val-00000"  # train: 3 files of ~333 rows
    with pytest.raises(ValueError, match=rf"{file}.array_record: row {row} holds token id 50 >= "):
      if split == "train":  # one batch is the whole epoch
        it = data.make_train_iterator(
          tokens_cfg(path), seq_len=seq_len, global_batch_size=1000, seed=0
        )
        next(it)
      else:
        data.make_eval_batches(tokens_cfg(path), seq_len=seq_len, batch_size=100, num_batches=10)
