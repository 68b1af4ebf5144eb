"""RefinedWeb's line corrections at their thresholds (Penedo et al. 2023, App. G.2; DCLM's recipe): a line whose
upper-case share equals the limit stays and one upper-case letter more removes it; a line of exactly
`min_words_per_line` words stays; substring edits apply to lines of at most `max_words_for_substring_edits`
words; a page whose removed-word fraction equals the limit is kept and one float below it is dropped."""
from __future__ import annotations

import math

from transforms.filters import refinedweb
from transforms.filters.refinedweb import RefinedWebLinesConfig
from transforms.text import TextView

OFF = {"max_uppercase_fraction": None, "min_words_per_line": None, "max_removed_word_fraction": None,
       "remove_phrases": (), "remove_suffixes": (), "remove_prefixes": ()}


def run(text: str, **rule: object) -> refinedweb.Edit:
    return refinedweb.refinedweb_lines(TextView(text), RefinedWebLinesConfig(**{**OFF, **rule}))


def test_uppercase_fraction_is_a_strict_limit() -> None:
    at = "ABCDE fghi"  # 5 upper-case of 10 characters: exactly half
    over = "ABCDEF ghi"  # 6 of 10
    keep = "a quiet line of lower case words"
    assert run(f"{at}\n{over}\n{keep}", max_uppercase_fraction=0.5).text == f"{at}\n{keep}"


def test_min_words_per_line_is_inclusive() -> None:
    assert run("two words\none\nthree words here", min_words_per_line=2).text == "two words\nthree words here"


def test_substring_edits_apply_up_to_the_word_limit() -> None:
    """"read more..." is cut from a line of 4 white-space words (limit 4) but not from one of 5."""
    four, five = "the news read more...", "see the news read more..."
    edited = run(f"{four}\n{five}", remove_suffixes=("read more...",), max_words_for_substring_edits=4)
    assert edited.text == f"the news\n{five}"


def test_removed_word_fraction_is_a_strict_limit() -> None:
    text = "one two three four five six seven eight nine\nlonely"  # 1 of 10 words removed with its line
    assert run(text, min_words_per_line=2, max_removed_word_fraction=0.1).verdict.reason is None
    dropped = run(text, min_words_per_line=2, max_removed_word_fraction=math.nextafter(0.1, 0.0))
    assert dropped.verdict.reason == refinedweb.TOO_MANY_WORDS_REMOVED


def test_counter_lines_with_a_unit_are_removed_and_one_letter_lines_are_not_counters() -> None:
    """RefinedWeb G.2 removes "N likes"-style counters, "1k" and "3.4K" included; a one-character line is no
    counter (and must not break the check)."""
    text = "a line of real words\n1k likes\n3.4K views\nx"
    assert run(text, drop_counter_lines=True).text == "a line of real words\nx"


def test_removed_line_fraction_counts_removed_and_emptied_lines() -> None:
    """Of four lines, "1k likes" is removed and "read more..." is edited down to nothing: 2/4."""
    text = "a line of real words\n1k likes\nread more...\nanother line of words"
    edit = run(text, drop_counter_lines=True, remove_suffixes=("read more...",))
    assert edit.text == "a line of real words\nanother line of words"
    assert edit.verdict.stats["refinedweb_removed_line_fraction"] == 2 / 4
