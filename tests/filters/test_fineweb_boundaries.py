"""Each FineWeb rule at its threshold, with the paper's comparisons (Penedo et al. 2024, Sec. 3.3): a line
punctuation fraction "<= 0.12", a short-line fraction ">= 0.67" and a duplicate line-char fraction ">= 0.1" drop
the page AT the limit, and one float the other way keeps it; the newline rule (off by default) is strict. The
measures are worked out here from how each page is built; one rule is on at a time."""
from __future__ import annotations

import math

from transforms.filters import fineweb
from transforms.filters.fineweb import FineWebQualityConfig
from transforms.text import TextView

OFF = {"min_punctuated_line_fraction": None, "max_short_line_fraction": None,
       "max_duplicate_line_char_fraction": None, "max_newline_per_word_ratio": None}
LONG = "a line that is long enough not to count as short at all"  # 55 characters, no terminal punctuation


def reason(text: str, **rule: object) -> str | None:
    return fineweb.fineweb_quality(TextView(text), FineWebQualityConfig(**{**OFF, **rule})).reason


def test_punctuated_line_fraction_drops_at_the_limit() -> None:
    text = "\n".join([LONG + "."] + [f"{LONG} {i}" for i in range(3)])  # 1 of 4 lines ends in '.'
    assert reason(text, min_punctuated_line_fraction=0.25) == fineweb.LOW_LINE_PUNCTUATION
    assert reason(text, min_punctuated_line_fraction=math.nextafter(0.25, 0.0)) is None


def test_short_line_fraction_drops_at_the_limit_and_30_chars_is_short() -> None:
    thirty, thirty_one = "x" * 30, "y" * 31
    text = "\n".join([thirty, thirty_one, LONG, LONG + " again"])  # 1 of 4 lines has <= 30 characters
    assert reason(text, max_short_line_fraction=0.25) == fineweb.TOO_MANY_SHORT_LINES
    assert reason(text, max_short_line_fraction=math.nextafter(0.25, 1.0)) is None


def test_duplicate_line_char_fraction_drops_at_the_limit() -> None:
    lines = [LONG, LONG + " two", LONG + " three", LONG]  # the last line repeats the first
    text = "\n".join(lines)
    value = len(LONG) / (len(text) - text.count("\n"))  # repeated chars over the page's non-newline chars
    assert reason(text, max_duplicate_line_char_fraction=value) == fineweb.TOO_MANY_DUPLICATE_LINE_CHARS
    assert reason(text, max_duplicate_line_char_fraction=math.nextafter(value, 1.0)) is None


def test_newline_per_word_ratio_is_strict() -> None:
    text = "aa ab\nac ad\nae af"  # 2 newlines over 6 tokens
    assert reason(text, max_newline_per_word_ratio=2 / 6) is None
    assert reason(text, max_newline_per_word_ratio=math.nextafter(2 / 6, 0.0)) == fineweb.TOO_MANY_NEWLINES
