"""Issue #31: a token id >= vocab_size anywhere in a token file is refused when the dataset is
opened, naming the file, not only when it sits where a sample happens to look (before the fix a
bad id in the unsampled middle of a split reached the embedding lookup and gave NaN at step 1)."""

import numpy as np
import pytest

from anytime.lm import data
from tests.lm.test_data import tokens_cfg, write_token_dir


def _unsampled_middle(n: int) -> int:
  """A middle position; the split is large enough that a fixed sample of 65,536 positions plus
  both 4096-token ends leaves most of it unread, so a sampling check misses it."""
  return n // 2 + 12_345


def test_bad_id_anywhere_in_a_split_is_refused_on_open(tmp_path):
  n = 1_000_000
  good = np.arange(n) % 50
  for split in ("train", "val"):
    bad = good.copy()
    bad[_unsampled_middle(n)] = 50  # one id == vocab_size, far from the ends
    train, val = (bad, good) if split == "train" else (good, bad)
    path = tmp_path / split
    write_token_dir(path, train, val, vocab=50, eos_id=0)
    with pytest.raises(ValueError, match=rf"{split}\.bin: token id 50 .*vocab_size=50"):
      data.open_token_dir(str(path))
    with pytest.raises(ValueError, match=rf"{split}\.bin: token id 50"):
      data.make_train_iterator(tokens_cfg(path), seq_len=16, global_batch_size=2, seed=0)
