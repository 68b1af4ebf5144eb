"""MinHash signatures and LSH band keys for near-duplicate documents (FineWeb's defaults, issue #3).

FineWeb: normalised word 5-grams, 112 permutations in 14 bands of 8 rows, (a*x + b) mod (2^61 - 1) with a fixed
seed (data-seeds.md §3.2). Signatures are computed for all permutations at once with numpy instead of
datasketch's per-document objects: one (shingles x permutations) array operation per document.
Arithmetic wraps at 2^64 like datasketch's: the hash family is still fixed by the seed, so results are
reproducible on every machine.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from transforms.dedup.exact import normalize

MERSENNE_PRIME = np.uint64((1 << 61) - 1)
MAX_HASH = np.uint64((1 << 32) - 1)


@dataclass(frozen=True, kw_only=True, slots=True)
class MinHashConfig:
    """Shingling and LSH layout; the defaults are FineWeb's."""

    ngram_words: int = 5  # words per shingle; FineWeb §3.3
    bands: int = 14  # LSH bands; FineWeb
    rows: int = 8  # permutations per band; 14 x 8 = 112 permutations, threshold ~ (1/14)^(1/8) = 0.72
    seed: int = 1  # permutation seed; FineWeb uses 1

    def __post_init__(self) -> None:
        for name in ("ngram_words", "bands", "rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} ({getattr(self, name)}) must be >= 1")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows


def permutations(cfg: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) coefficients of the hash family, fixed by the seed."""
    gen = np.random.RandomState(cfg.seed)
    a = gen.randint(1, int(MERSENNE_PRIME), size=cfg.num_perm, dtype=np.uint64)
    b = gen.randint(0, int(MERSENNE_PRIME), size=cfg.num_perm, dtype=np.uint64)
    return a, b


def shingle_hashes(text: str, cfg: MinHashConfig) -> np.ndarray:
    """32-bit hashes of the distinct word n-grams of the normalised text (one shingle for shorter texts)."""
    words = normalize(text).split()
    n = cfg.ngram_words
    grams = {" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}
    digests = b"".join(hashlib.blake2b(g.encode("utf-8"), digest_size=4).digest() for g in grams)
    return np.frombuffer(digests, dtype="<u4").astype(np.uint64)


def signature(hashes: np.ndarray, perms: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The minimum of every permuted hash: one uint64 per permutation (all MAX_HASH for no shingles)."""
    a, b = perms
    if hashes.size == 0:
        return np.full(a.shape, MAX_HASH, dtype=np.uint64)
    with np.errstate(over="ignore"):
        permuted = (np.outer(hashes, a) + b) % MERSENNE_PRIME & MAX_HASH  # (shingles, num_perm)
    return permuted.min(axis=0)


def band_keys(sig: np.ndarray, cfg: MinHashConfig) -> list[bytes]:
    """One key per band: the band index and a digest of its rows; two documents sharing a key are candidates."""
    rows = sig.reshape(cfg.bands, cfg.rows)
    return [bytes([i]) + hashlib.blake2b(r.tobytes(), digest_size=8).digest() for i, r in enumerate(rows)]


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of equal signature slots: an unbiased estimate of the shingle sets' Jaccard similarity."""
    return float(np.mean(sig_a == sig_b))
