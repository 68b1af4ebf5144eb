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
"""
from __future__ import annotations

import functools
import hashlib
import unicodedata
from dataclasses import dataclass

import numpy as np

MASK64 = (1 << 64) - 1
EMPTY_SLOT = np.uint32(0xFFFFFFFF)  # every slot of the signature of a text without words
HASH_SEED = 0x5EED_0F_5171_C0DE  # fixes word and shingle hashing; the permutations depend on cfg.seed only
_U64_MAX = np.uint64(MASK64)
_SHIFT_32 = np.uint64(32)
MAX_CACHED_CHARS = 1 << 20  # powers kept for texts up to 1 Mi characters (16 MiB); longer ones compute their own


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


def splitmix64(seed: int, count: int) -> list[int]:
    """`count` 64-bit constants from `seed` (Steele et al. 2014), in pure Python so no library version changes them."""
    state, out = seed & MASK64, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        out.append(z ^ (z >> 31))
    return out


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser, in place: every input bit flips each output bit with probability ~1/2."""
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


@functools.cache
def word_char_table() -> np.ndarray:
    """Per code point, whether regex `\\w` matches it (str.isalnum() or "_", as in CPython's sre); built once."""
    table = np.fromiter((chr(c).isalnum() for c in range(0x110000)), dtype=bool, count=0x110000)
    table[ord("_")] = True
    return table


class MinHasher:
    """Signatures and band keys for one config; every constant is fixed at construction, so all workers agree."""

    def __init__(self, cfg: MinHashConfig, *, chunk_shingles: int = 512) -> None:
        if chunk_shingles < 1:
            raise ValueError(f"chunk_shingles ({chunk_shingles}) must be >= 1")
        self.cfg, self.chunk_shingles = cfg, chunk_shingles
        ab = np.array(splitmix64(cfg.seed, 2 * cfg.num_perm), dtype=np.uint64)
        self.a, self.b = ab[: cfg.num_perm, None], ab[cfg.num_perm:, None]  # (num_perm, 1): broadcast over keys
        base, self.length_mult, *multipliers = splitmix64(HASH_SEED, 2 + cfg.ngram_words)
        self.base = base | 1  # odd, so it has an inverse mod 2^64
        self.base_inv = pow(self.base, -1, 1 << 64)
        self.multipliers = np.array(multipliers, dtype=np.uint64)
        self.table = word_char_table()
        self._powers = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))

    def powers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """base^i and base^-i mod 2^64 for i < n; kept (grown by doubling) up to MAX_CACHED_CHARS."""
        if len(self._powers[0]) >= n:
            return self._powers[0][:n], self._powers[1][:n]
        size = max(n, min(2 * len(self._powers[0]), MAX_CACHED_CHARS))
        pows = tuple(np.full(size, k, dtype=np.uint64) for k in (self.base, self.base_inv))
        for p in pows:
            p[0] = 1
            np.cumprod(p, out=p)
        if size <= MAX_CACHED_CHARS:
            self._powers = pows
        return pows[0][:n], pows[1][:n]

    def word_hashes(self, text: str) -> np.ndarray:
        """One uint64 per word of `exact.normalize(text).split()`, in order; equal words hash equally."""
        padded = f" {unicodedata.normalize('NFKC', text).lower()} "  # a non-word character at both ends
        points = np.frombuffer(padded.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        in_word = np.take(self.table, points)
        edges = np.flatnonzero(in_word[1:] != in_word[:-1])  # alternately the last non-word / last word position
        before, last = edges[0::2], edges[1::2]
        pows, inv = self.powers(len(points))
        prefix = points.astype(np.uint64)
        prefix *= pows
        np.cumsum(prefix, out=prefix)  # sum of code point * base^position; word code points are never 0
        words = (prefix[last] - prefix[before]) * inv[before + 1]  # each word's polynomial from its own start
        words += (last - before).astype(np.uint64) * np.uint64(self.length_mult)
        return fmix64(words)

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
