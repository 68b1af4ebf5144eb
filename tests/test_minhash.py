"""MinHash: signatures estimate Jaccard similarity, are reproducible, and LSH bands catch close pairs."""
from __future__ import annotations

import random

import numpy as np
import pytest

from transforms.config import ConfigError, from_mapping
from transforms.dedup.minhash import (
    MinHashConfig, band_keys, estimated_jaccard, permutations, shingle_hashes, signature,
)

CFG = MinHashConfig()
PERMS = permutations(CFG)
VOCAB = [f"w{i}" for i in range(5000)]


def text_of(words: list[str]) -> str:
    return " ".join(words)


def true_jaccard(a: str, b: str) -> float:
    sa, sb = set(shingle_hashes(a, CFG).tolist()), set(shingle_hashes(b, CFG).tolist())
    return len(sa & sb) / len(sa | sb)


def variant(words: list[str], rng: random.Random, changed: float) -> list[str]:
    """A copy with a fraction of its words replaced by unrelated ones."""
    out = list(words)
    for i in rng.sample(range(len(out)), int(changed * len(out))):
        out[i] = rng.choice(VOCAB)
    return out


def test_signature_estimates_jaccard_within_sampling_error():
    rng = random.Random(7)
    errors = []
    for changed in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4):
        base = [rng.choice(VOCAB) for _ in range(400)]
        a, b = text_of(base), text_of(variant(base, rng, changed))
        est = estimated_jaccard(signature(shingle_hashes(a, CFG), PERMS), signature(shingle_hashes(b, CFG), PERMS))
        errors.append(abs(est - true_jaccard(a, b)))
    assert max(errors) < 0.15, errors  # 112 permutations: standard error <= 0.05


def test_normalisation_and_reproducibility():
    a = signature(shingle_hashes("The Cat, sat on the mat; it was happy there.", CFG), PERMS)
    b = signature(shingle_hashes("the cat sat on the   mat it was happy there", CFG), PERMS)
    assert np.array_equal(a, b)
    again = signature(shingle_hashes("the cat sat on the mat it was happy there", CFG), permutations(MinHashConfig()))
    assert np.array_equal(a, again), "the seed fixes the hash family"
    assert signature(np.array([], dtype=np.uint64), PERMS).shape == (CFG.num_perm,)


def test_bands_catch_near_duplicates_and_rarely_unrelated_pairs():
    rng = random.Random(11)
    caught_close = caught_far = 0
    for _ in range(40):
        base = [rng.choice(VOCAB) for _ in range(300)]
        close = text_of(variant(base, rng, 0.01))  # Jaccard ~0.95
        far = text_of([rng.choice(VOCAB) for _ in range(300)])
        keys = set(band_keys(signature(shingle_hashes(text_of(base), CFG), PERMS), CFG))
        caught_close += bool(keys & set(band_keys(signature(shingle_hashes(close, CFG), PERMS), CFG)))
        caught_far += bool(keys & set(band_keys(signature(shingle_hashes(far, CFG), PERMS), CFG)))
    assert caught_close >= 38 and caught_far == 0
    assert len(band_keys(signature(shingle_hashes("x", CFG), PERMS), CFG)) == CFG.bands


def test_config_validation():
    with pytest.raises(ConfigError, match=r"bands \(0\) must be >= 1"):
        from_mapping(MinHashConfig, {"bands": 0}, where="minhash")
    assert MinHashConfig(bands=20, rows=13).num_perm == 260
