"""MinHash: words as exact.normalize splits them, unbiased Jaccard estimates, FineWeb's LSH S-curve, reproducibility."""
from __future__ import annotations

import hashlib
import math
import random
import re
import subprocess
import sys

import numpy as np
import pytest

from core.config import ConfigError, from_mapping
from tests.conftest import REPO
from transforms.dedup.exact import normalize
from transforms.dedup.hashing import char_classes
from transforms.dedup.minhash import (
    EMPTY_SLOT, MinHashConfig, MinHasher, estimated_jaccard, shingle_set,
)

CFG = MinHashConfig()
HASHER = MinHasher(CFG)
TRICKY = ("Ｆｕｌｌ-width ﬁne ﬂour, café vs cafe\u0301 and CAFÉ; İstanbul\u00a0ΣΊΣΥΦΟΣ\ttab\u2028line "
          "snake_case x²+y₂ ½ 3.14 e-mail: a@b.c 😀 emoji ok ١٢٣ \ud800 lone-surrogate — “quoted” …end")


def words(n: int, rng: random.Random) -> list[str]:
    """n distinct tokens, so every 5-gram of a text is distinct and Jaccard can be planted exactly."""
    return [f"t{rng.getrandbits(48):x}" for _ in range(n)]


def planted_pair(jaccard: float, rng: random.Random, n: int = 300) -> tuple[str, str, float]:
    """Texts sharing their first k words and nothing else; returns them and their exact shingle Jaccard."""
    s = n - CFG.ngram_words + 1  # shingles per text
    shared = round(2 * s * jaccard / (1 + jaccard))  # shared / (2s - shared) = jaccard
    k = shared + CFG.ngram_words - 1
    common = words(k, rng)
    a, b = " ".join(common + words(n - k, rng)), " ".join(common + words(n - k, rng))
    sa, sb = shingle_set(a, CFG), shingle_set(b, CFG)
    return a, b, len(sa & sb) / len(sa | sb)


def test_words_are_exactly_those_of_normalize():
    for text in (TRICKY, TRICKY.upper(), "  lead and trail  ", "one", "", "!!! ,,, ---"):
        expected = normalize(text).split()
        hashes = HASHER.word_hashes(text).tolist()
        assert len(hashes) == len(expected), text
        assert len(set(zip(expected, hashes))) == len(set(expected)) == len(set(hashes)), "a word has one hash"
    assert np.array_equal(HASHER.signature(TRICKY), HASHER.signature(normalize(TRICKY)))


def test_word_table_matches_the_regex_word_class():
    every = "".join(map(chr, range(0x110000)))
    expected = np.zeros(0x110000, dtype=bool)
    expected[[m.start() for m in re.finditer(r"\w", every)]] = True
    assert np.array_equal(char_classes()["word"], expected)


def test_estimates_are_unbiased_and_within_sampling_error():
    rng = random.Random(7)
    errors = []
    for target in np.linspace(0.05, 0.95, 60):
        a, b, true = planted_pair(float(target), rng)
        est = estimated_jaccard(HASHER.signature(a), HASHER.signature(b))
        sigma = math.sqrt(true * (1 - true) / CFG.num_perm)
        assert abs(est - true) <= 4 * sigma + 1e-9, (true, est)
        errors.append(est - true)
    assert abs(np.mean(errors)) < 4 * 0.05 / math.sqrt(len(errors)), np.mean(errors)  # mean of 60 errors
    same = HASHER.signature(" ".join(words(200, rng)))
    assert estimated_jaccard(same, same.copy()) == 1.0


def test_lsh_candidates_follow_the_s_curve():
    rng = random.Random(11)
    pairs = [planted_pair(rng.uniform(0.2, 0.98), rng) for _ in range(500)]
    caught, expected, variance, high, low = 0, 0.0, 0.0, [], []
    for a, b, true in pairs:
        hit = bool(set(HASHER.band_keys(HASHER.signature(a))) & set(HASHER.band_keys(HASHER.signature(b))))
        p = 1 - (1 - true ** CFG.rows) ** CFG.bands  # FineWeb: 1-(1-J^8)^14
        caught, expected, variance = caught + hit, expected + p, variance + p * (1 - p)
        (high if true >= 0.85 else low if true < 0.5 else []).append(hit)
    assert abs(caught - expected) <= 4 * math.sqrt(variance), (caught, expected)
    assert np.mean(high) >= 0.9 and np.mean(low) <= 0.05, (np.mean(high), np.mean(low))


def test_empty_and_short_texts():
    empty = HASHER.signature("")
    assert empty.shape == (CFG.num_perm,) and empty.dtype == np.uint32 and (empty == EMPTY_SLOT).all()
    assert np.array_equal(HASHER.signature(" ... !!! "), empty), "no words: the same signature as the empty text"
    assert len(shingle_set("two words", CFG)) == 1 and shingle_set("two words", CFG) != shingle_set("two", CFG)
    short = HASHER.band_keys(HASHER.signature("two words"))
    assert len(short) == CFG.bands and not set(short) & set(HASHER.band_keys(empty))


def test_long_documents_and_chunking():
    text = " ".join(words(100_000, random.Random(3)))
    sig = HASHER.signature(text)
    assert sig.shape == (CFG.num_perm,) and not (sig == EMPTY_SLOT).any()
    assert np.array_equal(MinHasher(CFG, chunk_shingles=7919).signature(text), sig), "chunking changes nothing"
    assert len(shingle_set(text, CFG)) == 100_000 - CFG.ngram_words + 1


def test_normalisation_and_seed():
    a = HASHER.signature("The Cat, sat on the mat; it was happy there.")
    assert np.array_equal(a, HASHER.signature("the cat sat on the   mat it was happy there"))
    assert np.array_equal(a, MinHasher(MinHashConfig()).signature("the cat sat on the mat it was happy there"))
    assert estimated_jaccard(a, MinHasher(MinHashConfig(seed=2)).signature("the cat sat on the mat")) < 0.2


GOLDEN = "the quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat"
# blake2b-128 of the little-endian signature: a change here orphans every stored signature and band key
GOLDEN_DIGEST = "349091f0bf8ffbe637a891fdd859ddef"


def signature_digest(text: str) -> str:
    return hashlib.blake2b(HASHER.signature(text).astype("<u4").tobytes(), digest_size=16).hexdigest()


def test_signature_is_the_same_in_another_process_and_pinned():
    code = ("from transforms.dedup.minhash import MinHashConfig, MinHasher; import sys; "
            "sys.stdout.write(MinHasher(MinHashConfig()).signature(sys.argv[1]).astype('<u4').tobytes().hex())")
    out = subprocess.run([sys.executable, "-c", code, TRICKY.replace("\ud800", "")], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    assert out == HASHER.signature(TRICKY.replace("\ud800", "")).astype("<u4").tobytes().hex()
    assert signature_digest(GOLDEN) == GOLDEN_DIGEST


def test_config_validation():
    with pytest.raises(ConfigError, match=r"bands \(0\) must be >= 1"):
        from_mapping(MinHashConfig, {"bands": 0}, where="minhash")
    with pytest.raises(ValueError, match=r"bands \(300\) must be <= 256"):
        MinHashConfig(bands=300)
    assert MinHashConfig(bands=20, rows=13).num_perm == 260
    with pytest.raises(ValueError, match=r"signatures differ in shape"):
        estimated_jaccard(np.zeros(3, np.uint32), np.zeros(4, np.uint32))


def test_band_keys_follow_the_written_rule_over_every_row() -> None:
    """Band i's key is the byte i then an 8-byte blake2b of its `rows` slots as little-endian uint32, written out
    here with struct; and changing any one slot changes exactly the key of its band (a key that hashes 7 of its
    8 rows would miss every change in the 8th)."""
    import struct

    rng = np.random.default_rng(3)
    sig = rng.integers(0, 2**32, CFG.num_perm, dtype=np.uint64).astype(np.uint32)
    bands = [sig[i * CFG.rows:(i + 1) * CFG.rows] for i in range(CFG.bands)]
    expected = [bytes([i]) + hashlib.blake2b(struct.pack(f"<{CFG.rows}I", *map(int, band)), digest_size=8).digest()
                for i, band in enumerate(bands)]
    keys = HASHER.band_keys(sig)
    assert keys == expected
    for slot in range(CFG.num_perm):
        changed = sig.copy()
        changed[slot] ^= 1
        differs = [i for i, (a, b) in enumerate(zip(keys, HASHER.band_keys(changed))) if a != b]
        assert differs == [slot // CFG.rows], slot
