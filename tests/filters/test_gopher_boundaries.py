"""Each Gopher rule at its threshold. Repetition: a page whose measure equals the limit is kept, the same page
with the limit one float below is dropped with the rule's reason (Rae et al. 2021, Table A1: "remove documents
where the fraction ... is above the threshold"). The measures are worked out here by hand from how each page
is built, not read back from the filter; one rule is on at a time, so the reason names the rule. Quality
(App. A.1.1): the same, with the limit moved one step the other way (a count by one, a ratio by one float).

A `>` turned into `>=` (or the wrong measure behind a reason) fails these tests."""
from __future__ import annotations

import itertools
import math
import string

import pytest

from transforms.filters import gopher
from transforms.filters.gopher import GopherQualityConfig, GopherRepetitionConfig
from transforms.text import TextView

OFF = {  # every repetition rule off; a test turns one on (1.0 never fires: a fraction is never above it)
    "max_duplicate_line_fraction": None, "max_duplicate_paragraph_fraction": None,
    "max_duplicate_line_char_fraction": None, "max_duplicate_paragraph_char_fraction": None,
    "max_top_ngram_char_fractions": None, "max_duplicate_ngram_char_fractions": None,
}
WORDS = ["".join(p) for p in itertools.product(string.ascii_lowercase, repeat=2)]  # distinct two-letter words


def unique_lines(n: int) -> list[str]:
    """n distinct lines of distinct lengths (so a char fraction is not a line fraction in disguise)."""
    return [" ".join(WORDS[10 * i:10 * i + 3 + i % 4]) for i in range(n)]


def reason(text: str, **rule: object) -> str | None:
    return gopher.gopher_repetition(TextView(text), GopherRepetitionConfig(**{**OFF, **rule})).reason


def below(x: float) -> float:
    return math.nextafter(x, 0.0)


def assert_boundary(text: str, value: float, expected_reason: str, make_rule) -> None:
    assert 0.0 < value < 1.0, "the page must put the measure strictly inside (0, 1)"
    assert reason(text, **make_rule(value)) is None, "a measure equal to its limit is kept"
    assert reason(text, **make_rule(below(value))) == expected_reason, "a measure above its limit is dropped"


@pytest.mark.parametrize("sep, field, why", [
    ("\n", "max_duplicate_line_fraction", gopher.TOO_MANY_DUPLICATE_LINES),
    ("\n\n", "max_duplicate_paragraph_fraction", gopher.TOO_MANY_DUPLICATE_PARAGRAPHS),
])
def test_duplicate_item_fraction_at_the_limit(sep: str, field: str, why: str) -> None:
    items = unique_lines(7)
    page = items + items[:3]  # 3 of 10 repeat an earlier one (first occurrences do not count)
    assert_boundary(sep.join(page), 3 / 10, why, lambda limit: {field: limit})


@pytest.mark.parametrize("sep, field, why", [
    ("\n", "max_duplicate_line_char_fraction", gopher.TOO_MANY_DUPLICATE_LINE_CHARS),
    ("\n\n", "max_duplicate_paragraph_char_fraction", gopher.TOO_MANY_DUPLICATE_PARAGRAPH_CHARS),
])
def test_duplicate_item_char_fraction_at_the_limit(sep: str, field: str, why: str) -> None:
    items = unique_lines(7)
    text = sep.join(items + [items[1], items[4]])
    value = (len(items[1]) + len(items[4])) / len(text)  # chars in the repeats over all chars of the page
    assert_boundary(text, value, why, lambda limit: {field: limit})


@pytest.mark.parametrize("n", [2, 3, 4])
def test_top_ngram_char_fraction_at_the_limit(n: int) -> None:
    gram, filler = WORDS[:n], WORDS[n:n + 12]
    words = gram + gram + filler  # the n-gram twice; nothing else repeats
    value = 2 * sum(map(len, gram)) / sum(map(len, words))  # count x chars of the n-gram / chars of all words

    def rule(limit: float) -> dict:
        limits = [1.0, 1.0, 1.0]
        limits[n - 2] = limit
        return {"max_top_ngram_char_fractions": tuple(limits)}

    assert_boundary(" ".join(words), value, gopher.TOP_NGRAM_REASONS[n], rule)


@pytest.mark.parametrize("n", range(5, 11))
def test_duplicate_ngram_char_fraction_at_the_limit(n: int) -> None:
    gram, filler = WORDS[:n], WORDS[n:n + 15]
    words = gram + filler[:3] + gram + filler[3:]  # the n-gram twice, apart; every word of both copies is covered
    value = 2 * sum(map(len, gram)) / sum(map(len, words))

    def rule(limit: float) -> dict:
        limits = [1.0] * 6
        limits[n - 5] = limit
        return {"max_duplicate_ngram_char_fractions": tuple(limits)}

    assert_boundary(" ".join(words), value, gopher.DUP_NGRAM_REASONS[n], rule)


def test_overlapping_repeats_are_counted_once() -> None:
    """"aa ab aa ab aa ab aa ab": four 5-gram windows repeat (at 0 and 2, at 1 and 3) and overlap; the 8 words
    they cover (16 chars) count once each, not once per window."""
    words = WORDS[:2] * 4 + WORDS[2:8]
    value = 16 / sum(map(len, words))
    assert_boundary(" ".join(words), value, gopher.DUP_NGRAM_REASONS[5],
                    lambda limit: {"max_duplicate_ngram_char_fractions": (limit, 1.0, 1.0, 1.0, 1.0, 1.0)})


# --- the quality rules (App. A.1.1): counts worked out from how each page is built ------------------------

QUALITY_OFF = {
    "min_words": None, "max_words": None, "min_mean_word_length": None, "max_mean_word_length": None,
    "max_hash_ratio": None, "max_ellipsis_ratio": None, "max_bullet_line_fraction": None,
    "max_ellipsis_line_fraction": None, "min_alpha_word_fraction": None, "min_stop_words": None,
}


def quality_reason(text: str, **rule: object) -> str | None:
    return gopher.gopher_quality(TextView(text), GopherQualityConfig(**{**QUALITY_OFF, **rule})).reason


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


def assert_quality_boundary(text: str, field: str, value: float, worse: float, why: str) -> None:
    """Kept with the limit at the page's value; dropped with `why` when the limit moves to `worse`."""
    assert quality_reason(text, **{field: value}) is None, "a page at the limit is kept"
    assert quality_reason(text, **{field: worse}) == why, "a page past the limit is dropped"


def test_word_count_limits_are_inclusive() -> None:
    text = " ".join(WORDS[:60])  # 60 words
    assert_quality_boundary(text, "min_words", 60, 61, gopher.TOO_FEW_WORDS)
    assert_quality_boundary(text, "max_words", 60, 59, gopher.TOO_MANY_WORDS)


def test_mean_word_length_limits_are_inclusive() -> None:
    text = " ".join(w if i % 2 else w * 2 for i, w in enumerate(WORDS[:40]))  # 4- and 2-letter words: mean 3.0
    assert_quality_boundary(text, "min_mean_word_length", 3.0, above(3.0), gopher.WORDS_TOO_SHORT)
    assert_quality_boundary(text, "max_mean_word_length", 3.0, below(3.0), gopher.WORDS_TOO_LONG)


def test_symbol_ratios_per_token() -> None:
    """'#' and '...' per token, '...' being three '.' tokens: 9 words + '#' = 10 tokens; 5 words + 3 dots = 8."""
    assert_quality_boundary(" ".join(WORDS[:9]) + " #", "max_hash_ratio", 0.1, below(0.1), gopher.TOO_MANY_HASHES)
    assert_quality_boundary(" ".join(WORDS[:5]) + " ...", "max_ellipsis_ratio", 1 / 8, below(1 / 8),
                            gopher.TOO_MANY_ELLIPSES)


def test_line_fractions_count_every_line() -> None:
    bullets = "- aa ab\n• ac ad\n- ae af\nag ah"  # 3 of 4 lines start with a bullet
    assert_quality_boundary(bullets, "max_bullet_line_fraction", 0.75, below(0.75), gopher.TOO_MANY_BULLET_LINES)
    ellipses = "aa ab...\nac ad\nae af\nag ah"  # 1 of 4 lines ends with "..."
    assert_quality_boundary(ellipses, "max_ellipsis_line_fraction", 0.25, below(0.25),
                            gopher.TOO_MANY_ELLIPSIS_LINES)


def test_alpha_fraction_and_stop_words() -> None:
    assert_quality_boundary("aa ab 12 34", "min_alpha_word_fraction", 0.5, above(0.5), gopher.TOO_FEW_ALPHA_WORDS)
    text = "the aa and ab The ac"  # two distinct stop words, case-folded ("the" twice)
    assert_quality_boundary(text, "min_stop_words", 2, 3, gopher.TOO_FEW_STOP_WORDS)


def test_a_token_with_any_letter_counts_as_alphabetic() -> None:
    """Gopher's rule is "contains an alphabetic character": mp3, covid19 and e-mail count, 123 does not (3 of 4)."""
    text = "mp3 covid19 e-mail 123"
    assert_quality_boundary(text, "min_alpha_word_fraction", 0.75, above(0.75), gopher.TOO_FEW_ALPHA_WORDS)


def test_the_top_ngram_is_the_most_frequent_not_the_first_repeated() -> None:
    """"aa ab" repeats twice first, "ac ad" three times later: the rule takes "ac ad", 3 x 4 of 24 chars."""
    text = "aa ab aa ab ac ad ac ad ac ad ae af"
    stats = gopher.gopher_repetition(TextView(text), GopherRepetitionConfig(**OFF)).stats
    assert stats["gopher_top_2gram_char_fraction"] == 12 / 24
