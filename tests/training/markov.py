"""Token shards from a seeded sparse Markov chain: learnable structure with a known entropy, built in milliseconds."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from core.shards import ShardMeta, pack, shard_name, write_shard


def markov_stream(n: int, *, vocab: int, seed: int) -> np.ndarray:
    """n tokens of a chain whose next-token distributions are peaked (Dirichlet 0.1), so a model can learn it."""
    rng = np.random.default_rng(seed)
    transition = np.random.default_rng(1234).dirichlet(np.full(vocab, 0.1), size=vocab)
    cumulative = transition.cumsum(axis=1)
    u = rng.random(n)
    out = np.empty(n, dtype=np.int32)
    state = 0
    for i in range(n):
        state = min(int(np.searchsorted(cumulative[state], u[i])), vocab - 1)
        out[i] = state
    return out


def unigram_entropy(tokens: np.ndarray, vocab: int) -> float:
    """Entropy in nats of the token frequencies: the loss of the best model that ignores context."""
    p = np.bincount(tokens, minlength=vocab) / len(tokens)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def write_markov_shards(root: Path, *, vocab: int = 64, seq_len: int = 32, train_tokens: int = 40_000,
                        valid_tokens: int = 4_000, shards: int = 4, row_group_rows: int = 16) -> ShardMeta:
    """root/train and root/valid in the tokenize layout; returns the shards' metadata."""
    meta = ShardMeta(seq_len=seq_len, vocab_size=vocab, eos_id=0, tokenizer_sha256="markov")
    for split, total, count, seed in (("train", train_tokens, shards, 1), ("valid", valid_tokens, 1, 2)):
        for i in range(count):
            rows, _ = pack(markov_stream(total // count, vocab=vocab, seed=seed * 100 + i), seq_len)
            write_shard(root / split / shard_name(i, count), rows, dataclasses.replace(meta, split=split),
                        row_group_rows=row_group_rows)
    return meta
