"""64-bit hashes of tokens and token n-grams for a whole text at once, in numpy.

Hashing tokens one Python call at a time dominates dedup on CPU. Here a text becomes an array of code points;
token boundaries come from per-code-point class tables; every token's hash is a polynomial over its code points,
read off one prefix sum; n-gram hashes combine n consecutive token hashes. All arithmetic wraps at 2^64 and every
constant is fixed, so each worker, run and machine computes the same hashes.
"""
from __future__ import annotations

import functools

import numpy as np

MASK64 = (1 << 64) - 1
MAX_CACHED_POINTS = 1 << 20  # powers kept for texts up to 1 Mi code points (16 MiB); longer ones compute their own
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd: the n-gram polynomial's base (golden-ratio constant, as in splitmix64)


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
def char_classes() -> dict[str, np.ndarray]:
    """Per code point: regex `\\w` (isalnum or "_", as CPython's sre), `\\d` (isdecimal), `\\s` (isspace); built once."""
    chars = [chr(c) for c in range(0x110000)]
    word = np.fromiter((c.isalnum() for c in chars), dtype=bool, count=len(chars))
    word[ord("_")] = True
    digit = np.fromiter((c.isdecimal() for c in chars), dtype=bool, count=len(chars))
    space = np.fromiter((c.isspace() for c in chars), dtype=bool, count=len(chars))
    return {"word": word, "digit": digit, "space": space}


def code_points(text: str) -> np.ndarray:
    """The text's code points as uint32, padded with a space at both ends so every token has a neighbour."""
    return np.frombuffer(f" {text} ".encode("utf-32-le", "surrogatepass"), dtype="<u4")


class SpanHasher:
    """Hashes many spans of one code-point array at once; the constants are fixed by the seed."""

    def __init__(self, seed: int) -> None:
        base, self.length_mult = splitmix64(seed, 2)
        self.base = base | 1  # odd, so it has an inverse mod 2^64
        self.base_inv = pow(self.base, -1, 1 << 64)
        self._powers = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))

    def powers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """base^i and base^-i mod 2^64 for i < n; kept (grown by doubling) up to MAX_CACHED_POINTS."""
        if len(self._powers[0]) >= n:
            return self._powers[0][:n], self._powers[1][:n]
        size = max(n, min(2 * len(self._powers[0]), MAX_CACHED_POINTS))
        pows = tuple(np.full(size, k, dtype=np.uint64) for k in (self.base, self.base_inv))
        for p in pows:
            p[0] = 1
            np.cumprod(p, out=p)
        if size <= MAX_CACHED_POINTS:
            self._powers = pows
        return pows[0][:n], pows[1][:n]

    def hash_spans(self, points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """fmix64 of each span's polynomial (code points from its own start) plus its length; spans are [start,
        end) with start >= 1, which the padding of code_points guarantees. Equal strings hash equally."""
        pows, inv = self.powers(len(points))
        prefix = points.astype(np.uint64)
        prefix *= pows
        np.cumsum(prefix, out=prefix)
        spans = (prefix[ends - 1] - prefix[starts - 1]) * inv[starts]
        spans += (ends - starts).astype(np.uint64) * np.uint64(self.length_mult)
        return fmix64(spans)


def window_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """The hash of every run of n consecutive tokens (len - n + 1 of them; none when there are fewer than n)."""
    m = len(hashes) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    acc = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            acc = acc * _MULT + hashes[k:k + m]
    return fmix64(acc)
