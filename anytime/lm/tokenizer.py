"""A lossless sentencepiece BPE tokenizer for code and prose.

sentencepiece's defaults are made for natural-language sentences: they normalise Unicode, collapse
runs of spaces and treat every input line as one sentence, so indentation and newlines of source
code would be lost. The options below keep every byte: identity normalisation, no whitespace
collapsing, no dummy prefix, whitespace-only pieces allowed (indentation becomes a few tokens) and
byte fallback (any character outside the learned alphabet is spelled in bytes instead of <unk>), so
``decode(encode(text)) == text`` for any text. Training uses one thread and no input sampling, so
the same texts give the same model on every machine.

Token ids: 0 <unk>, 1 <s> (unused), 2 </s> (EOS, the document separator in token files).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence

import sentencepiece as spm

UNK_ID = 0
BOS_ID = 1
EOS_ID = 2

# Sentences handed to the trainer are chunks of whole lines up to this many characters (the
# trainer's own limit, max_sentence_length, is in bytes and set to 4x this).
_CHUNK_CHARS = 2048

TRAINER_OPTIONS = dict(
  model_type="bpe",
  normalization_rule_name="identity",  # keep text byte-for-byte (no NFKC)
  remove_extra_whitespaces=False,  # indentation matters in code
  add_dummy_prefix=False,  # no invented leading space: decode(encode(x)) == x
  allow_whitespace_only_pieces=True,  # "▁▁▁▁" (indentation) may be one piece
  split_by_whitespace=True,
  byte_fallback=True,  # never <unk>: rare characters become byte tokens
  character_coverage=0.9995,
  unk_id=UNK_ID,
  bos_id=BOS_ID,
  eos_id=EOS_ID,
  pad_id=-1,
  num_threads=1,  # determinism across machines
  shuffle_input_sentence=False,  # determinism: no sampling of training sentences
  input_sentence_size=0,  # use every sentence handed over (the caller caps the text)
  max_sentence_length=4 * _CHUNK_CHARS,
  minloglevel=2,
)


def _chunks(texts: Iterable[str], max_chars: int) -> Iterator[str]:
  """Cuts texts into training sentences of whole lines (newlines kept), at most max_chars total."""
  used = 0
  for text in texts:
    buffer = ""
    for line in text.splitlines(keepends=True):
      if buffer and len(buffer) + len(line) > _CHUNK_CHARS:
        yield buffer
        used += len(buffer)
        buffer = ""
        if used >= max_chars:
          return
      buffer += line[: 4 * _CHUNK_CHARS]
    if buffer:
      yield buffer
      used += len(buffer)
    if used >= max_chars:
      return


def train_bpe(texts: Iterable[str], vocab_size: int, *, max_chars: int = 200_000_000) -> bytes:
  """Trains a BPE model on texts (at most max_chars characters, the first ones); returns its bytes.

  Raises ValueError when the texts cannot support vocab_size pieces.
  """
  if vocab_size < 260:
    raise ValueError(
      f"vocab_size={vocab_size} is too small: the tokenizer needs 256 byte tokens + 3 specials"
      " + the alphabet; use >= 260 (e.g. 4096)"
    )
  model = io.BytesIO()
  try:
    spm.SentencePieceTrainer.train(
      sentence_iterator=_chunks(texts, max_chars),
      model_writer=model,
      vocab_size=vocab_size,
      **TRAINER_OPTIONS,
    )
  except RuntimeError as err:
    raise ValueError(
      f"sentencepiece could not train a {vocab_size}-piece BPE on this text ({err}); "
      "use a smaller vocab_size or more text"
    ) from err
  return model.getvalue()


class Tokenizer:
  """A loaded sentencepiece model: encode/decode plus the facts token files record."""

  def __init__(self, model_bytes: bytes):
    self.model_bytes = model_bytes
    self._sp = spm.SentencePieceProcessor(model_proto=model_bytes)

  @classmethod
  def from_file(cls, path: str) -> Tokenizer:
    with open(path, "rb") as f:
      return cls(f.read())

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  @property
  def eos_id(self) -> int:
    return self._sp.eos_id()

  @property
  def sha256(self) -> str:
    return hashlib.sha256(self.model_bytes).hexdigest()

  def encode(self, text: str) -> list[int]:
    return self._sp.encode(text)

  def encode_batch(self, texts: Sequence[str], num_threads: int = 1) -> list[list[int]]:
    """Encodes many texts at once (C++ threads; the result does not depend on num_threads)."""
    return self._sp.encode(list(texts), num_threads=num_threads)

  def decode(self, ids: Sequence[int]) -> str:
    return self._sp.decode([int(i) for i in ids])

  def id_to_piece(self, token_id: int) -> str:
    return self._sp.id_to_piece(int(token_id))


# Names HF tokenizer files give their end-of-document token (GPT-NeoX/OLMo, T5-style, Llama 3).
HF_EOS_TOKENS = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>")


class HFTokenizer:
  """An HF ``tokenizers`` .json file (GPT-NeoX, OLMo, ...) behind the same interface as Tokenizer.

  Imported lazily: the ``tokenizers`` package is part of the ``beam`` extra, not of the trainer.
  Encoding adds no special tokens (documents are separated by EOS when they are packed), and the
  Rust thread pool is kept off (TOKENIZERS_PARALLELISM=false): Beam runs one worker per core and
  threads inside each would only contend.
  """

  def __init__(self, json_bytes: bytes, eos_token: str | None = None):
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tokenizers import Tokenizer as RustTokenizer

    self.model_bytes = json_bytes
    self._tok = RustTokenizer.from_str(json_bytes.decode("utf-8"))
    names = (eos_token,) if eos_token else HF_EOS_TOKENS
    ids = [self._tok.token_to_id(n) for n in names]
    found = [i for i in ids if i is not None]
    if not found:
      raise ValueError(
        f"the tokenizer has no end-of-document token among {list(names)}; name it with --eos_token"
      )
    self._eos = int(found[0])

  @property
  def vocab_size(self) -> int:
    return int(self._tok.get_vocab_size(with_added_tokens=True))

  @property
  def eos_id(self) -> int:
    return self._eos

  @property
  def sha256(self) -> str:
    return hashlib.sha256(self.model_bytes).hexdigest()

  def encode(self, text: str) -> list[int]:
    return self._tok.encode(text, add_special_tokens=False).ids

  def encode_batch(self, texts: Sequence[str], num_threads: int = 1) -> list[list[int]]:
    del num_threads  # the Rust pool is off (see the class docstring)
    return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

  def decode(self, ids: Sequence[int]) -> str:
    return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)


def load(path: str, eos_token: str | None = None) -> Tokenizer | HFTokenizer:
  """A tokenizer file by kind: sentencepiece ``.model`` (T5's) or HF ``tokenizers`` ``.json``."""
  with open(path, "rb") as f:
    raw = f.read()
  if path.endswith(".json"):
    return HFTokenizer(raw, eos_token)
  if eos_token:
    raise ValueError("--eos_token applies to HF .json tokenizers; sentencepiece has its own EOS")
  try:
    return Tokenizer(raw)
  except RuntimeError as err:
    raise ValueError(
      f"{path}: not a sentencepiece model ({err}); HF tokenizers files must end in .json"
    ) from err


def kind_of(tok: Tokenizer | HFTokenizer) -> str:
  return "hf" if isinstance(tok, HFTokenizer) else "sentencepiece"


def from_bytes(raw: bytes, kind: str, eos_token: str | None = None) -> Tokenizer | HFTokenizer:
  """Rebuilds a tokenizer on a Beam worker from the bytes the launcher read (see kind_of)."""
  return HFTokenizer(raw, eos_token) if kind == "hf" else Tokenizer(raw)
