"""C4's line and page rules at their thresholds (Raffel et al. 2020, Sec. 2.2; TFDS c4_utils): a line of
exactly `min_words_per_line` words is kept and one word fewer removed; a word of exactly `max_word_length`
characters keeps its line and one more character removes it; a page of exactly `min_sentences` sentences is kept
and one fewer dropped. Counts are worked out from how each page is built."""
from __future__ import annotations

from transforms.filters import c4
from transforms.filters.c4 import C4Config
from transforms.text import TextView


def run(text: str, **cfg: object) -> c4.Edit:
    return c4.c4(TextView(text), C4Config(**{"min_sentences": None, **cfg}))


def test_min_words_per_line_is_inclusive() -> None:
    three, two = "Three words here.", "Two words."
    assert run(f"{three}\n{two}", min_words_per_line=3).text == three
    assert run(f"{three}\n{two}", min_words_per_line=2).text == f"{three}\n{two}"


def test_max_word_length_is_inclusive() -> None:
    at, over = f"A word {'x' * 20} here.", f"A word {'y' * 21} here."
    assert run(f"{at}\n{over}", max_word_length=20).text == at


def test_min_sentences_is_inclusive() -> None:
    text = "One is here. Two is here. Three is here."  # three sentences on one line
    assert run(text, min_sentences=3).verdict.reason is None
    assert run(text, min_sentences=4).verdict.reason == c4.TOO_FEW_SENTENCES


def test_citations_stay_when_their_removal_is_off() -> None:
    line = "A sentence that cites a source [1] and goes on."
    assert run(line, remove_citations=False).text == line
    assert run(line).text == "A sentence that cites a source  and goes on."  # TFDS removes the marker only


def test_removed_line_and_char_fractions() -> None:
    """One of four lines goes (it mentions javascript): 1/4 of the lines, and its characters plus one newline of
    the page's."""
    kept = ["First line of the page.", "Second line of the page.", "Fourth line of the page."]
    text = "\n".join([kept[0], kept[1], "Enable JavaScript to see this.", kept[2]])
    stats = run(text).verdict.stats
    assert stats["c4_removed_line_fraction"] == 1 / 4
    assert stats["c4_removed_char_fraction"] == 1.0 - len("\n".join(kept)) / len(text)
