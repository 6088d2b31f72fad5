"""Exact and near-duplicate documents: a content hash, and MinHash over word 5-gram shingles + LSH.

Documentation corpora repeat themselves: the same man page under two names, a changelog page
that is a previous release's plus a paragraph, one HTML page per version of an API. A duplicate in
the training text is wasted compute, and one that straddles train and validation makes the
validation loss a memorisation test, so both kinds are removed before the split.

Near-duplicates are pairs with Jaccard similarity >= threshold (0.8) between their sets of word
5-gram shingles. Comparing every pair is quadratic, so the standard MinHash + LSH scheme finds
candidates: NUM_PERM independent hashes of every shingle, the minimum of each is the document's
signature (two signatures agree in a coordinate with probability = Jaccard), and documents whose
signatures agree on a whole band of BAND_ROWS coordinates become candidates. With 16 bands of 4
rows a pair at Jaccard 0.8 becomes a candidate with probability 1 - (1 - 0.8**4)**16 > 0.9998;
a candidate is then accepted only when its estimated Jaccard (the share of agreeing coordinates)
reaches the threshold. Everything is seeded by constants: the same documents in the same order
keep and drop the same ones on every machine (the first of a group is kept).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

import numpy as np

SHINGLE_WORDS = 5
NUM_PERM = 64
BAND_ROWS = 4
THRESHOLD = 0.8
_WORD = re.compile(r"\w+")
_CHUNK = 1 << 15  # shingles hashed at a time (bounds memory at NUM_PERM * _CHUNK * 8 bytes)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_SEEDS = np.array(
  [
    int.from_bytes(hashlib.blake2b(b"minhash-%d" % k, digest_size=8).digest(), "little")
    for k in range(NUM_PERM)
  ],
  dtype=np.uint64,
)[:, None]
_POWERS = np.array(
  [pow(0x100000001B3, SHINGLE_WORDS - 1 - j, 2**64) for j in range(SHINGLE_WORDS)], dtype=np.uint64
)


def words(text: str) -> list[str]:
  """The normalised words: lower case, runs of letters/digits/underscore (punctuation dropped)."""
  return _WORD.findall(text.lower())


def exact_key(text: str) -> bytes:
  """The hash of the normalised text: equal for texts differing only in case/space/punctuation."""
  return hashlib.blake2b(" ".join(words(text)).encode(), digest_size=16).digest()


class _WordHashes:
  """64-bit word hashes from blake2b, cached: Python's hash() is salted per process."""

  def __init__(self):
    self.cache: dict[str, int] = {}

  def __call__(self, ws: Sequence[str]) -> np.ndarray:
    cache = self.cache
    out = np.empty(len(ws), dtype=np.uint64)
    for i, w in enumerate(ws):
      h = cache.get(w)
      if h is None:
        h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
        cache[w] = h
      out[i] = h
    return out


def _mix(x: np.ndarray) -> np.ndarray:
  """splitmix64's finaliser: a bijection of uint64 that spreads every input bit."""
  x = (x ^ (x >> np.uint64(30))) * _M1
  x = (x ^ (x >> np.uint64(27))) * _M2
  return x ^ (x >> np.uint64(31))


def signature(word_hashes: np.ndarray) -> np.ndarray:
  """The NUM_PERM-entry MinHash signature of a document's word 5-gram shingle set."""
  n = len(word_hashes)
  if n == 0:
    return np.full(NUM_PERM, np.iinfo(np.uint64).max, dtype=np.uint64)
  with np.errstate(over="ignore"):
    if n < SHINGLE_WORDS:  # one shingle: the whole (short) document
      shingles = np.array([int(np.sum(word_hashes * _POWERS[-n:]))], dtype=np.uint64)
    else:
      count = n - SHINGLE_WORDS + 1
      shingles = np.zeros(count, dtype=np.uint64)
      for j in range(SHINGLE_WORDS):
        shingles += word_hashes[j : j + count] * _POWERS[j]
    shingles = np.unique(shingles)
    sig = np.full(NUM_PERM, np.iinfo(np.uint64).max, dtype=np.uint64)
    for start in range(0, len(shingles), _CHUNK):
      block = shingles[None, start : start + _CHUNK]
      sig = np.minimum(sig, _mix(block ^ _SEEDS).min(axis=1))
  return sig


class Deduplicator:
  """Feed documents in order; each is kept unless it repeats (exactly or nearly) a kept one."""

  def __init__(self, threshold: float = THRESHOLD, band_rows: int = BAND_ROWS):
    if NUM_PERM % band_rows:
      raise ValueError(f"band_rows={band_rows} must divide NUM_PERM={NUM_PERM}")
    self.threshold, self.band_rows = threshold, band_rows
    self.exact: set[bytes] = set()
    self.bands: list[dict[bytes, list[int]]] = [{} for _ in range(NUM_PERM // band_rows)]
    self.signatures: list[np.ndarray] = []
    self.word_hashes = _WordHashes()

  def add(self, text: str) -> str:
    """'kept', 'exact' (same normalised text as a kept one) or 'near' (Jaccard >= threshold)."""
    ws = words(text)
    key = hashlib.blake2b(" ".join(ws).encode(), digest_size=16).digest()
    if key in self.exact:
      return "exact"
    sig = signature(self.word_hashes(ws))
    r = self.band_rows
    keys = [sig[b * r : (b + 1) * r].tobytes() for b in range(len(self.bands))]
    candidates = {c for band, k in zip(self.bands, keys, strict=True) for c in band.get(k, ())}
    for c in sorted(candidates):
      if np.mean(self.signatures[c] == sig) >= self.threshold:
        return "near"
    self.exact.add(key)
    index = len(self.signatures)
    self.signatures.append(sig)
    for band, k in zip(self.bands, keys, strict=True):
      band.setdefault(k, []).append(index)
    return "kept"


def dedup(texts: Iterable[str], threshold: float = THRESHOLD) -> list[str]:
  """The verdict ('kept', 'exact', 'near') of every text, in order."""
  d = Deduplicator(threshold)
  return [d.add(t) for t in texts]


def jaccard(a: str, b: str) -> float:
  """The exact word 5-gram Jaccard similarity of two texts (tests and spot checks)."""

  def grams(t):
    ws = words(t)
    return {tuple(ws[i : i + SHINGLE_WORDS]) for i in range(max(1, len(ws) - SHINGLE_WORDS + 1))}

  ga, gb = grams(a), grams(b)
  return len(ga & gb) / max(1, len(ga | gb))


__all__ = ["Deduplicator", "dedup", "exact_key", "jaccard", "signature", "words"]
