"""Edges of paragraph dedup and MinHash that the main tests miss (tests/MUTATION.md): the 13-gram default,
empty inputs, paragraph boundaries inside one document, owners that share a date or an id, config
validation edges, the all-ones signature of an empty text, and the signature rule written out per slot.
"""
from __future__ import annotations

import numpy as np
import pytest

from transforms.dedup.minhash import MinHashConfig, MinHasher
from transforms.dedup.paragraph import (
    OCCURRENCE, ParagraphDedupConfig, contained_counts, decide, occurrences, tokenize,
)

CFG = ParagraphDedupConfig()
WORDS = [f"w{i:02d}" for i in range(40)]  # distinct single tokens


def para(n: int, start: int = 0) -> str:
    """A paragraph of exactly n distinct tokens (checked by the reference tokenizer)."""
    text = " ".join(WORDS[start:start + n])
    assert len(tokenize(text)) == n
    return text


def decisions(docs: dict[tuple[int, int], str], cfg: ParagraphDedupConfig = CFG) -> dict:
    """occurrences -> contained_counts -> decide for documents keyed by their (date, digest) order key."""
    table = np.concatenate([occurrences(text, key, cfg.ngram) for key, text in docs.items()])
    contained: dict[tuple[int, int], dict[int, int]] = {}
    for row in contained_counts(table):
        per = contained.setdefault((int(row["date"]), int(row["digest"])), {})
        per[int(row["para"])] = per.get(int(row["para"]), 0) + int(row["count"])
    return {key: decide(text, contained.get(key, {}), cfg) for key, text in docs.items()}


# ---------------------------------------------------------------- paragraph dedup

def test_default_ngram_is_13_a_copied_13_token_paragraph_goes_a_12_token_one_stays() -> None:
    """DCLM's BFF runs 13-grams: a 13-token paragraph has one n-gram (contained: 1/1 > 0.8, removed); a
    12-token one has none and is never removed. The later document keeps its own 13-token paragraph."""
    own = para(13, start=20)  # one n-gram of its own: the document is 1 of 2 contained, 0.5 <= 0.8
    for n, removed in ((13, (1,)), (12, ())):
        copied = para(n)
        out = decisions({(1, 10): copied, (2, 20): f"{own}\n{copied}"})
        assert out[(1, 10)].removed == ()
        assert out[(2, 20)].removed == removed, n
        assert out[(2, 20)].dropped is False
        assert out[(2, 20)].text == (own if removed else f"{own}\n{copied}")


def test_ngram_of_one_constructs_and_zero_raises() -> None:
    assert ParagraphDedupConfig(ngram=1).ngram == 1
    with pytest.raises(ValueError, match="ngram \\(0\\) must be >= 1"):
        ParagraphDedupConfig(ngram=0)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_thresholds_accept_both_ends_of_0_1(value: float) -> None:
    cfg = ParagraphDedupConfig(paragraph_threshold=value, document_threshold=value)
    assert (cfg.paragraph_threshold, cfg.document_threshold) == (value, value)
    with pytest.raises(ValueError):
        ParagraphDedupConfig(paragraph_threshold=1.01)


def test_a_text_without_ngrams_sends_no_occurrences() -> None:
    """Two tokens cannot form a 13-gram: nothing is sent to the shuffle (not one uninitialised record)."""
    assert occurrences("too short", (1, 1), 13).size == 0


def test_no_occurrences_give_no_contained_counts() -> None:
    assert contained_counts(np.empty(0, dtype=OCCURRENCE)).size == 0


def test_an_ngram_repeated_inside_one_paragraph_is_one_record_with_count_two() -> None:
    """26 tokens = the same 13 tokens twice: 14 windows, the first and the last equal, so 13 distinct n-grams,
    one of them counted twice, all in paragraph 0."""
    table = occurrences(f"{para(13)} {para(13)}", (1, 10), 13)
    assert table.size == 13
    assert sorted(table["count"].tolist()) == [1] * 12 + [2]
    assert set(table["para"].tolist()) == {0}


def test_the_same_ngram_in_two_adjacent_paragraphs_is_two_records() -> None:
    """Two identical 13-token paragraphs: one n-gram each, one record per paragraph (not merged across the
    newline), and BFF removes the second copy (1/1 contained) but not the document (1 of 2 = 0.5)."""
    text = f"{para(13)}\n{para(13)}"
    table = occurrences(text, (1, 10), 13)
    assert sorted(zip(table["para"].tolist(), table["count"].tolist())) == [(0, 1), (1, 1)]
    out = decisions({(1, 10): text})[(1, 10)]
    assert out.removed == (1,) and out.dropped is False and out.text == para(13)


def test_an_earlier_date_owns_even_when_the_id_is_the_same() -> None:
    """The same document id crawled twice (same digest, two dates): the later copy is entirely contained."""
    text = f"{para(13)}\n{para(14, start=13)}"
    hits = contained_counts(np.concatenate([occurrences(text, key, 13) for key in ((2, 7), (1, 7))]))
    assert set(hits["date"].tolist()) == {2}
    assert int(hits["count"].sum()) == 3  # 1 + 2 n-grams
    out = decisions({(1, 7): text, (2, 7): text})
    assert out[(1, 7)].dropped is False
    assert out[(2, 7)].dropped is True


def test_at_the_same_date_the_smaller_digest_owns() -> None:
    """Two documents with the same date and the same text: the one with the larger id digest is contained."""
    text = f"{para(13)}\n{para(14, start=13)}"
    hits = contained_counts(np.concatenate([occurrences(text, key, 13) for key in ((5, 200), (5, 100))]))
    assert set(hits["digest"].tolist()) == {200}
    assert int(hits["count"].sum()) == 3
    out = decisions({(5, 100): text, (5, 200): text})
    assert out[(5, 100)].dropped is False
    assert out[(5, 200)].dropped is True


# ---------------------------------------------------------------- MinHash

M64 = (1 << 64) - 1


def splitmix64_reference(seed: int, count: int) -> list[int]:
    """SplitMix64 (Steele, Lea and Flood 2014; Vigna's C reference), written out from its published constants."""
    out, state = [], seed % (1 << 64)
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) % (1 << 64)
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % (1 << 64)
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % (1 << 64)
        out.append(z ^ (z >> 31))
    return out


def test_our_splitmix64_matches_the_published_seed_0_outputs() -> None:
    """Checks the test's own oracle against SplitMix64's known first outputs for seed 0."""
    assert splitmix64_reference(0, 3) == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def expected_signature(keys: list[int], cfg: MinHashConfig) -> list[int]:
    """The module docstring's rule per slot i: min over keys x of ((a_i * x + b_i) mod 2^64) >> 32, with
    a = the first num_perm and b = the next num_perm outputs of splitmix64(cfg.seed)."""
    ab = splitmix64_reference(cfg.seed, 2 * cfg.num_perm)
    a, b = ab[: cfg.num_perm], ab[cfg.num_perm:]
    return [min(((a[i] * x + b[i]) & M64) >> 32 for x in keys) for i in range(cfg.num_perm)]


@pytest.mark.parametrize("text", ["", "!!!", " \n\t "])
def test_a_text_without_words_has_the_all_ones_signature(text: str) -> None:
    """Module docstring: no words, every slot 0xFFFFFFFF."""
    sig = MinHasher(MinHashConfig()).signature(text)
    assert sig.dtype == np.uint32
    assert sig.tolist() == [0xFFFFFFFF] * 112


@pytest.mark.parametrize("text", ["one", "two short", "five words make one shingle", "six words make two shingles now"])
def test_short_text_signature_is_the_rule_written_out_per_slot(text: str) -> None:
    """1 or 2 shingles: each slot is the hashed key itself, so about half the slots are >= 2^31 before the shift
    and any cap on the running minimum shows. The shingle keys are the input here, the permutations the check."""
    cfg = MinHashConfig()
    hasher = MinHasher(cfg)
    keys = hasher.shingle_keys(text).tolist()
    assert len(keys) == (2 if text.startswith("six") else 1)
    sig = hasher.signature(text).tolist()
    assert sig == expected_signature(keys, cfg)
    assert max(sig) >= 1 << 31  # a slot in the top half exists, so the test sees the start value of the minimum


def test_chunks_of_one_shingle_give_the_rule_written_out() -> None:
    """chunk_shingles=1 (the smallest allowed) takes the minimum over one-key chunks: same per-slot rule."""
    cfg = MinHashConfig()
    text = " ".join(f"word{i}" for i in range(12))  # 12 words -> 8 five-word shingles
    hasher = MinHasher(cfg, chunk_shingles=1)
    keys = hasher.shingle_keys(text).tolist()
    assert len(keys) == 8
    assert hasher.signature(text).tolist() == expected_signature(keys, cfg)
    assert MinHasher(cfg, chunk_shingles=2).signature(text).tolist() == expected_signature(keys, cfg)


def test_chunk_shingles_of_zero_raises() -> None:
    with pytest.raises(ValueError, match="chunk_shingles \\(0\\) must be >= 1"):
        MinHasher(MinHashConfig(), chunk_shingles=0)


def test_smallest_config_constructs() -> None:
    """ngram_words, bands and rows must be >= 1: one of each is valid and gives a one-slot signature."""
    cfg = MinHashConfig(ngram_words=1, bands=1, rows=1)
    hasher = MinHasher(cfg)
    assert hasher.signature("hello").tolist() == expected_signature(hasher.shingle_keys("hello").tolist(), cfg)
    for name in ("ngram_words", "bands", "rows"):
        with pytest.raises(ValueError, match=f"{name} \\(0\\) must be >= 1"):
            MinHashConfig(**{name: 0})


def test_bands_up_to_256_one_index_byte_each() -> None:
    """A band key starts with one byte of band index, so 256 bands (indices 0..255) is the most allowed."""
    cfg = MinHashConfig(bands=256, rows=1)
    hasher = MinHasher(cfg)
    keys = hasher.band_keys(hasher.signature("some words of text"))
    assert len(keys) == 256
    assert [k[0] for k in keys] == list(range(256))
    with pytest.raises(ValueError, match="bands \\(257\\) must be <= 256"):
        MinHashConfig(bands=257, rows=1)
