"""MinHash signatures and LSH band keys for near-duplicate documents (FineWeb's layout, issue #3).

FineWeb (data-seeds.md §3.2): word 5-grams of the normalised text, 112 permutations in 14 bands of 8 rows,
seed 1. Every step is whole-array numpy arithmetic on uint64, which wraps at 2^64 on every machine and numpy
version, and all constants come from splitmix64 in pure Python, so signatures are reproducible anywhere:
- words: maximal runs of regex `\\w` characters of NFKC-lower-cased text, i.e. exactly
  `exact.normalize(text).split()`; a word hashes to fmix64 of a polynomial over its code points and length,
  all words of a document at once from one prefix sum.
- shingles: n consecutive word hashes combined with n fixed 64-bit multipliers, then fmix64 (MurmurHash3's
  64-bit finaliser) and its top 32 bits kept as the shingle key. A text of m < n words is one m-word shingle.
- permutations: Dietzfelbinger's multiply-add-shift, h(x) = ((a*x + b) mod 2^64) >> 32 with uniform 64-bit
  a, b and 32-bit keys x. It is strongly universal (Thorup 2015, "High speed hashing for integers and
  strings", §3.3), the guarantee FineWeb's (a*x + b) mod (2^61 - 1) aims for, without the slow modulo.
  The shift is monotone, so the minimum is taken over the 64-bit values and shifted once.
The signature is uint32 (one slot per permutation); the (permutations x shingles) work runs in chunks of
`chunk_shingles` keys, so memory stays bounded on huge documents. A text without words gets the all-ones
signature (EMPTY_SLOT everywhere): it shares band keys only with other texts without words.

Why not datasketch: measured on the same texts (BENCHMARKS.md §7) its MinHash is several times slower than this,
because each document builds a MinHash object and feeds it shingles hashed one by one in Python; datatrove's
signature step is slower still (spaCy tokenisation, a sha1 per shingle). The hashing itself is in
transforms/dedup/hashing.py, shared with paragraph dedup.
"""
from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

import numpy as np

from transforms.dedup.hashing import SpanHasher, char_classes, code_points, fmix64, splitmix64

EMPTY_SLOT = np.uint32(0xFFFFFFFF)  # every slot of the signature of a text without words
HASH_SEED = 0x5EED_0F_5171_C0DE  # fixes word and shingle hashing; the permutations depend on cfg.seed only
_U64_MAX = np.uint64((1 << 64) - 1)
_SHIFT_32 = np.uint64(32)


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
        if self.bands > 256:
            raise ValueError(f"bands ({self.bands}) must be <= 256: a band key starts with one byte of band index")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows


class MinHasher:
    """Signatures and band keys for one config; every constant is fixed at construction, so all workers agree."""

    def __init__(self, cfg: MinHashConfig, *, chunk_shingles: int = 512) -> None:
        if chunk_shingles < 1:
            raise ValueError(f"chunk_shingles ({chunk_shingles}) must be >= 1")
        self.cfg, self.chunk_shingles = cfg, chunk_shingles
        ab = np.array(splitmix64(cfg.seed, 2 * cfg.num_perm), dtype=np.uint64)
        self.a, self.b = ab[: cfg.num_perm, None], ab[cfg.num_perm:, None]  # (num_perm, 1): broadcast over keys
        self.spans = SpanHasher(HASH_SEED)  # words: the first two constants of the seed's stream
        self.multipliers = np.array(splitmix64(HASH_SEED, 2 + cfg.ngram_words)[2:], dtype=np.uint64)
        self.table = char_classes()["word"]

    def word_hashes(self, text: str) -> np.ndarray:
        """One uint64 per word of `exact.normalize(text).split()`, in order; equal words hash equally."""
        points = code_points(unicodedata.normalize("NFKC", text).lower())  # a non-word character at both ends
        in_word = np.take(self.table, points)
        edges = np.flatnonzero(in_word[1:] != in_word[:-1])  # alternately the last non-word / last word position
        return self.spans.hash_spans(points, edges[0::2] + 1, edges[1::2] + 1)

    def shingle_keys(self, text: str) -> np.ndarray:
        """32-bit keys (in uint64) of the word n-grams in text order, repeats kept; one key for a shorter text."""
        words = self.word_hashes(text)
        width = min(self.cfg.ngram_words, len(words))
        count = len(words) - width + 1 if width else 0
        keys = np.zeros(count, dtype=np.uint64)
        for i in range(width):
            keys += words[i: i + count] * self.multipliers[i]
        return fmix64(keys) >> _SHIFT_32

    def signature(self, text: str) -> np.ndarray:
        """The minimum of each permutation over the text's shingle keys: uint32, one slot per permutation."""
        keys = self.shingle_keys(text)
        if keys.size == 0:
            return np.full(self.cfg.num_perm, EMPTY_SLOT, dtype=np.uint32)
        low = np.full(self.cfg.num_perm, _U64_MAX, dtype=np.uint64)
        for start in range(0, keys.size, self.chunk_shingles):
            chunk = np.multiply(self.a, keys[start: start + self.chunk_shingles])  # (num_perm, chunk)
            chunk += self.b
            np.minimum(low, chunk.min(axis=1), out=low)
        return (low >> _SHIFT_32).astype(np.uint32)

    def band_keys(self, sig: np.ndarray) -> list[bytes]:
        """One key per band, band index byte + 8-byte blake2b of its rows; documents sharing a key are candidates."""
        rows = np.asarray(sig, dtype="<u4").reshape(self.cfg.bands, self.cfg.rows)  # little-endian on every machine
        return [bytes([i]) + hashlib.blake2b(r.tobytes(), digest_size=8).digest() for i, r in enumerate(rows)]


def shingle_set(text: str, cfg: MinHashConfig) -> set[int]:
    """The distinct shingle keys a signature summarises, for exact Jaccard in tests and audits."""
    return set(MinHasher(cfg).shingle_keys(text).tolist())


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of equal slots: an unbiased estimate of the shingle sets' Jaccard similarity."""
    if sig_a.shape != sig_b.shape:
        raise ValueError(f"signatures differ in shape ({sig_a.shape} vs {sig_b.shape}); use one MinHashConfig")
    return float(np.mean(sig_a == sig_b))
