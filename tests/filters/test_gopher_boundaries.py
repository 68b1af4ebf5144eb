"""Each Gopher repetition rule at its threshold: a page whose measure equals the limit is kept, the same page
with the limit one float below is dropped with the rule's reason (Rae et al. 2021, Table A1: "remove documents
where the fraction ... is above the threshold"). The measures are worked out here by hand from how each page
is built, not read back from the filter; one rule is on at a time, so the reason names the rule.

A `>` turned into `>=` (or the wrong measure behind a reason) fails these tests."""
from __future__ import annotations

import itertools
import math
import string

import pytest

from transforms.filters import gopher
from transforms.filters.gopher import GopherRepetitionConfig
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
