"""transforms/dedup/hashing.py against its rules written out here in pure Python (issue 16 mutation survivors).

The oracle is independent of the module: splitmix64 and MurmurHash3's fmix64 are the published algorithms, checked
against published outputs (splitmix64) or written from the published constants (fmix64); a span's hash is fmix64(sum cp[start + i] * B^i + length * M) mod 2^64 with
B = splitmix64(seed)[0] | 1 and M = splitmix64(seed)[1]; an n-gram's hash is
fmix64(sum h[j + k] * 0x9E3779B97F4A7C15^(n - 1 - k)) mod 2^64.
"""
from __future__ import annotations

import numpy as np
import pytest

from transforms.dedup import minhash, paragraph
from transforms.dedup.hashing import SpanHasher, code_points, window_hashes

M64 = (1 << 64) - 1
GOLDEN_MULT = 0x9E3779B97F4A7C15  # the n-gram base documented in hashing.py (splitmix64's golden-ratio increment)


def splitmix64_ref(seed: int, count: int) -> list[int]:
    """Steele, Lea and Flood (2014), as in Vigna's splitmix64.c."""
    state, out = seed & M64, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        out.append(z ^ (z >> 31))
    return out


def fmix64_ref(k: int) -> int:
    """MurmurHash3's 64-bit finaliser (Appleby, MurmurHash3.cpp)."""
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & M64
    k ^= k >> 33
    return k


def test_the_reference_algorithms_match_published_outputs() -> None:
    assert splitmix64_ref(0, 3) == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    assert fmix64_ref(0) == 0  # the finaliser fixes zero


def span_rule(points: list[int], start: int, end: int, seed: int) -> int:
    base, length_mult = splitmix64_ref(seed, 2)
    base |= 1
    poly = sum(cp * pow(base, i, 1 << 64) for i, cp in enumerate(points[start:end]))
    return fmix64_ref((poly + (end - start) * length_mult) & M64)


SEEDS = [0, 1, 2, 3, 4, 5, minhash.HASH_SEED, paragraph.HASH_SEED]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_span_of_a_padded_text_hashes_by_the_written_rule(seed: int) -> None:
    """All spans, odd and even starts: the hash is position-free (the inverse powers are exact mod 2^64)."""
    points = code_points("ab cde  ab\tfghij ab")
    cps = [int(c) for c in points]
    starts, ends = zip(*[(s, e) for s in range(1, len(cps)) for e in range(s + 1, len(cps) + 1)])
    got = SpanHasher(seed).hash_spans(points, np.array(starts), np.array(ends))
    assert got.dtype == np.uint64
    assert [int(h) for h in got] == [span_rule(cps, s, e, seed) for s, e in zip(starts, ends)]


@pytest.mark.parametrize("seed", SEEDS)
def test_equal_strings_hash_equally_at_every_offset(seed: int) -> None:
    points = code_points("ab ab  ab   ab")  # "ab" starts at offsets 1, 4, 8 and 13: both parities
    hashes = SpanHasher(seed).hash_spans(points, np.array([1, 4, 8, 13]), np.array([3, 6, 10, 15]))
    assert len(set(hashes.tolist())) == 1


@pytest.mark.parametrize("seed", [1, minhash.HASH_SEED])
def test_a_first_call_on_a_two_point_array_is_exact(seed: int) -> None:
    """A fresh hasher's first array is one space and one letter: the one-letter span still follows the rule."""
    got = SpanHasher(seed).hash_spans(np.array([32, 97], dtype="<u4"), np.array([1]), np.array([2]))
    assert int(got[0]) == span_rule([32, 97], 1, 2, seed)


@pytest.mark.parametrize("seed", [1, minhash.HASH_SEED])
def test_a_span_that_ends_at_the_last_point_of_a_fresh_hasher_is_exact(seed: int) -> None:
    """No trailing padding: the span [1, 4) uses the highest power computed on this first call."""
    cps = [32, 97, 98, 99]
    got = SpanHasher(seed).hash_spans(np.array(cps, dtype="<u4"), np.array([1, 2]), np.array([4, 4]))
    assert [int(h) for h in got] == [span_rule(cps, 1, 4, seed), span_rule(cps, 2, 4, seed)]


def window_rule(hashes: list[int], n: int) -> list[int]:
    out = []
    for j in range(len(hashes) - n + 1):
        acc = 0
        for k in range(n):
            acc = (acc * GOLDEN_MULT + hashes[j + k]) & M64
        out.append(fmix64_ref(acc))
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_window_hashes_follow_the_written_rule_for_every_length(n: int) -> None:
    values = splitmix64_ref(42, 9)
    for length in range(0, 10):  # fewer than n - 1, exactly n - 1, exactly n, more
        got = window_hashes(np.array(values[:length], dtype=np.uint64), n)
        assert got.dtype == np.uint64
        assert len(got) == max(0, length - n + 1), (length, n)
        assert [int(h) for h in got] == window_rule(values[:length], n), (length, n)


def test_window_hashes_by_hand_for_two_tokens() -> None:
    # n = 2 over [1, 2, 3]: fmix64(1 * MULT + 2) and fmix64(2 * MULT + 3)
    got = window_hashes(np.array([1, 2, 3], dtype=np.uint64), 2)
    assert [int(h) for h in got] == [fmix64_ref((GOLDEN_MULT + 2) & M64), fmix64_ref((2 * GOLDEN_MULT + 3) & M64)]
