"""One tiny text per Gopher rule, a clean text that passes, and config validation."""
from __future__ import annotations

import pytest

from core.config import ConfigError, from_mapping
from transforms.filters import gopher
from transforms.filters.gopher import GopherQualityConfig, GopherRepetitionConfig
from transforms.text import TextView

CLEAN = (
    "The river runs through the old town and past the mill that my grandfather built with his brothers.\n"
    "In spring the water rises to the level of the lowest windows, so the family moved the flour upstairs.\n\n"
    "Visitors often ask why nobody has rebuilt it; the answer is money, patience and a stubborn council.\n"
    "Still, the children of the village have learned to swim in its cold pond every summer since."
)


def quality(text: str, **cfg: object) -> str | None:
    return gopher.gopher_quality(TextView(text), GopherQualityConfig(**cfg)).reason


def repetition(text: str, **cfg: object) -> str | None:
    return gopher.gopher_repetition(TextView(text), GopherRepetitionConfig(**cfg)).reason


def test_clean_text_passes_both() -> None:
    assert quality(CLEAN) is None
    assert repetition(CLEAN) is None


@pytest.mark.parametrize(
    ("text", "cfg", "reason"),
    [
        ("The cat and the dog.", {}, gopher.TOO_FEW_WORDS),
        ("the and of " * 10, {"min_words": 5, "max_words": 20}, gopher.TOO_MANY_WORDS),
        ("a b c d e f g h i j the of", {"min_words": 5}, gopher.WORDS_TOO_SHORT),
        ("the of extraordinarily incomprehensibilities", {"min_words": 2}, gopher.WORDS_TOO_LONG),
        ("the cat # and the dog #", {"min_words": 2}, gopher.TOO_MANY_HASHES),
        ("the cat … and the dog … yes", {"min_words": 2}, gopher.TOO_MANY_ELLIPSES),
        ("- the cat\n- and dog\n- the end", {"min_words": 2}, gopher.TOO_MANY_BULLET_LINES),
        ("the cat sat down\nand then the dog…\nwith this ending…", {"min_words": 2, "max_ellipsis_ratio": None},
         gopher.TOO_MANY_ELLIPSIS_LINES),
        ("the and 1000 2000 3000 4000 cat", {"min_words": 2}, gopher.TOO_FEW_ALPHA_WORDS),
        ("every cat sits upon some warm soft mat", {"min_words": 2}, gopher.TOO_FEW_STOP_WORDS),
    ],
)
def test_quality_rule(text: str, cfg: dict, reason: str) -> None:
    assert quality(text, **cfg) == reason


def test_stop_words_are_distinct_and_case_folded() -> None:
    assert gopher.gopher_quality(TextView("The the THE cat of"), GopherQualityConfig()).stats[
        "gopher_stop_word_count"] == 2.0


@pytest.mark.parametrize(
    ("text", "cfg", "reason"),
    [
        ("Buy now today\nBuy now today\nBuy now today\nA real sentence about rivers here.", {},
         gopher.TOO_MANY_DUPLICATE_LINES),
        ("Menu home page\n\nMenu home page\n\nSome other words about rivers and mills.",
         {"max_duplicate_line_fraction": None}, gopher.TOO_MANY_DUPLICATE_PARAGRAPHS),
    ],
)
def test_repetition_rule(text: str, cfg: dict, reason: str) -> None:
    assert repetition(text, **cfg) == reason


def test_duplicate_char_fractions() -> None:
    long_line = "A long repeated line that takes up most of the characters of the document."
    text = f"{long_line}\n{long_line}\none\ntwo\nthree\nfour\nfive\nsix"
    assert repetition(text, max_duplicate_line_fraction=None) == gopher.TOO_MANY_DUPLICATE_LINE_CHARS
    para = f"{long_line}\n\n{long_line}\n\none\n\ntwo\n\nthree\n\nfour\n\nfive\n\nsix"
    assert repetition(para, max_duplicate_line_fraction=None, max_duplicate_line_char_fraction=None,
                      max_duplicate_paragraph_fraction=None) == gopher.TOO_MANY_DUPLICATE_PARAGRAPH_CHARS


def test_top_ngram_rules() -> None:
    words = " ".join(["alpha beta"] * 5 + [f"w{i}" for i in range(20)])
    assert repetition(words) == gopher.TOP_NGRAM_REASONS[2]
    three = " ".join(["alpha beta gamma"] * 4 + [f"w{i}" for i in range(30)])
    assert repetition(three, max_top_ngram_char_fractions=(1.0, 0.18, 0.16)) == gopher.TOP_NGRAM_REASONS[3]


def test_duplicate_ngrams_count_every_covered_word() -> None:
    phrase = "one two three four five"
    text = f"{phrase} " + " ".join(f"x{i}" for i in range(10)) + f" {phrase}"
    verdict = gopher.gopher_repetition(TextView(text), GopherRepetitionConfig(max_top_ngram_char_fractions=None))
    # both occurrences count (DCLM semantics): 2 * 19 chars of 19 + 19 + 10 * 2 chars
    assert verdict.stats["gopher_duplicate_5gram_char_fraction"] == pytest.approx(38 / 58)
    assert verdict.stats["gopher_duplicate_6gram_char_fraction"] == 0.0
    assert verdict.reason == gopher.DUP_NGRAM_REASONS[5]


def test_stats_have_fixed_keys_even_when_empty() -> None:
    for spec in gopher.STEPS:
        cfg = spec.config_cls()
        for text in ("", CLEAN):
            stats = spec.fn(TextView(text), cfg).stats
            assert tuple(stats) == spec.stat_names
            assert all(isinstance(v, float) for v in stats.values())


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(GopherQualityConfig, {"min_word": 3}, where="gopher_quality")
    with pytest.raises(ConfigError, match=r"max_hash_ratio \(1.5\)"):
        from_mapping(GopherQualityConfig, {"max_hash_ratio": 1.5}, where="gopher_quality")
    with pytest.raises(ValueError, match="min_words"):
        GopherQualityConfig(min_words=500, max_words=100)
    with pytest.raises(ValueError, match="needs 6"):
        GopherRepetitionConfig(max_duplicate_ngram_char_fractions=(0.1,))
    off = from_mapping(GopherRepetitionConfig, {"max_duplicate_line_fraction": None}, where="r")
    assert off.max_duplicate_line_fraction is None
