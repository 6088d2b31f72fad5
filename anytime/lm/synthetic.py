"""The synthetic LM source: a sparse random first-order Markov chain with a known entropy rate.

anytime.lm.data builds its "synthetic" token splits from :func:`markov_chain` and
:func:`sample_chain` (docs/data.md, "The synthetic source").
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

__all__ = ["MarkovChain", "TokenData", "markov_chain", "sample_chain", "synthetic_data"]


@dataclasses.dataclass(frozen=True)
class MarkovChain:
  """A first-order chain on states 0..S-1: s is followed by successors[s, j] w.p. probs[s, j]."""

  successors: np.ndarray  # int [S, branching]
  probs: np.ndarray  # float64 [S, branching]
  stationary: np.ndarray  # float64 [S]

  @property
  def entropy_rate(self) -> float:
    """Nats per transition: sum_s pi_s H(P(. | s)), the best achievable next-token loss."""
    h = -np.sum(self.probs * np.log(np.maximum(self.probs, 1e-300)), axis=1)
    return float(self.stationary @ h)


def markov_chain(num_states: int, branching: int, seed: int) -> MarkovChain:
  """Each state gets `branching` distinct successors with Dirichlet(1) probabilities.

  One successor of s is always s + 1 (mod num_states) and, with branching >= 2, state 0 may also
  stay: the chain is irreducible and aperiodic, so its stationary distribution is unique and
  power iteration finds it. branching == 1 is the deterministic cycle (uniform, entropy 0).
  """
  rng = np.random.default_rng([seed, 0x5EED])
  successors = np.empty((num_states, branching), dtype=np.int64)
  for s in range(num_states):
    forced = [(s + 1) % num_states] + ([s] if s == 0 and branching >= 2 else [])
    chosen = rng.choice(num_states - len(forced), size=branching - len(forced), replace=False)
    for f in sorted(forced):  # skip the forced states: map [0, n - len(forced)) onto the rest
      chosen = chosen + (chosen >= f)
    successors[s] = np.concatenate([forced, chosen])
  probs = rng.dirichlet(np.ones(branching), size=num_states)
  stationary = np.full(num_states, 1.0 / num_states)
  if branching >= 2:
    flat_successors, flat_probs = successors.reshape(-1), probs.reshape(-1)
    for _ in range(200_000):
      weights = np.repeat(stationary, branching) * flat_probs
      nxt = np.bincount(flat_successors, weights=weights, minlength=num_states)
      converged = np.abs(nxt - stationary).sum() < 1e-13
      stationary = nxt / nxt.sum()
      if converged:
        break
  return MarkovChain(successors, probs, stationary)


def sample_chain(chain: MarkovChain, num_docs: int, doc_len: int, rng) -> np.ndarray:
  """[num_docs, doc_len] states: documents start in the stationary distribution."""
  cdf = np.cumsum(chain.probs, axis=1)
  cdf[:, -1] = 1.0
  out = np.empty((num_docs, doc_len), dtype=np.int64)
  state = rng.choice(len(chain.stationary), size=num_docs, p=chain.stationary)
  for t in range(doc_len):
    out[:, t] = state
    u = rng.random(num_docs)
    choice = (u[:, None] > cdf[state]).sum(axis=1)
    state = chain.successors[state, np.minimum(choice, chain.probs.shape[1] - 1)]
  return out


@dataclasses.dataclass(frozen=True)
class TokenData:
  """Both splits of the synthetic source as 1-D token streams (documents + EOS)."""

  train: np.ndarray
  val: np.ndarray
  vocab_size: int
  eos_id: int
  identity: str  # names the data for iterator-state checks


@functools.lru_cache(maxsize=4)
def synthetic_data(
  vocab: int, branching: int, doc_len: int, train_tokens: int, val_tokens: int, seed: int
) -> TokenData:
  """The two splits: independent samples of whole documents, each followed by EOS (vocab - 1)."""
  chain = markov_chain(vocab - 1, branching, seed)
  eos = vocab - 1
  dtype = np.dtype(np.uint16 if vocab <= 2**16 else np.uint32)
  splits = {}
  for k, (split, tokens) in enumerate((("train", train_tokens), ("val", val_tokens))):
    num_docs = math.ceil(tokens / (doc_len + 1))
    docs = sample_chain(chain, num_docs, doc_len, np.random.default_rng([seed, 1 + k]))
    stream = np.concatenate([docs, np.full((num_docs, 1), eos)], axis=1).reshape(-1)
    splits[split] = stream.astype(dtype)
    splits[split].flags.writeable = False
  identity = f"synthetic:{vocab}:{branching}:{doc_len}:{train_tokens}:{val_tokens}:{seed}"
  return TokenData(splits["train"], splits["val"], vocab, eos, identity)
