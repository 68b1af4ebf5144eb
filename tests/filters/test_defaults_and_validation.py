"""Default thresholds at their boundaries, run at the default config, and the validation edges of each config.

The other filter tests pass every threshold explicitly, so a changed default (Gopher's 50 words, C4's 5
sentences, RefinedWeb's 10-word edit limit...) went unnoticed (tests/MUTATION.md). Here each default is
checked on both sides of its boundary with texts whose counts are worked out by hand in the comments, and
each validation check is hit at its edge: the smallest allowed value constructs, one below raises.
"""
from __future__ import annotations

import pytest

from transforms.filters import c4, fineweb, gopher, refinedweb
from transforms.filters.c4 import C4Config
from transforms.filters.fineweb import FineWebQualityConfig
from transforms.filters.gopher import GopherQualityConfig, GopherRepetitionConfig
from transforms.filters.refinedweb import RefinedWebLinesConfig
from transforms.text import TextView


# ---------------------------------------------------------------- Gopher

def prose(n_words: int, stop_words: tuple[str, ...] = ("the", "and")) -> str:
    """`n_words` words: the given stop words, then "word" repeated. No punctuation, mean length ~4, alpha 1.0."""
    return " ".join([*stop_words, *["word"] * (n_words - len(stop_words))])


def quality(text: str) -> str | None:
    return gopher.gopher_quality(TextView(text), GopherQualityConfig()).reason


def test_gopher_default_min_words_is_50_inclusive() -> None:
    """Gopher App. A.1.1: fewer than 50 words is dropped; exactly 50 is kept."""
    assert quality(prose(50)) is None
    assert quality(prose(49)) == gopher.TOO_FEW_WORDS


def test_gopher_default_max_words_is_100_000_inclusive() -> None:
    """Gopher App. A.1.1: more than 100,000 words is dropped; exactly 100,000 is kept."""
    assert quality(prose(100_000)) is None
    assert quality(prose(100_001)) == gopher.TOO_MANY_WORDS


def test_gopher_default_needs_two_distinct_stop_words() -> None:
    """Gopher App. A.1.1: at least two of the eight stop words; repeats of one stop word count once."""
    assert quality(prose(60, ("the", "and"))) is None
    assert quality(prose(60, ("the", "the", "The"))) == gopher.TOO_FEW_STOP_WORDS


def test_gopher_repetition_step_declares_exactly_the_reasons_it_can_give() -> None:
    """Top n-grams for n = 2, 3, 4 and duplicated n-grams for n = 5..10 (Table A1); nothing for 4 or 11."""
    repetition = next(s for s in gopher.STEPS if s.name == "gopher_repetition")
    assert set(repetition.reasons) == {
        "gopher.too_many_duplicate_lines", "gopher.too_many_duplicate_paragraphs",
        "gopher.too_many_duplicate_line_chars", "gopher.too_many_duplicate_paragraph_chars",
        "gopher.top_2gram_too_frequent", "gopher.top_3gram_too_frequent", "gopher.top_4gram_too_frequent",
        "gopher.too_many_duplicate_5grams", "gopher.too_many_duplicate_6grams", "gopher.too_many_duplicate_7grams",
        "gopher.too_many_duplicate_8grams", "gopher.too_many_duplicate_9grams", "gopher.too_many_duplicate_10grams",
    }
    assert len(repetition.reasons) == 13


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_gopher_fraction_thresholds_accept_both_ends_of_0_1(value: float) -> None:
    """A fraction threshold is valid anywhere in the closed interval [0, 1]."""
    assert GopherQualityConfig(max_hash_ratio=value).max_hash_ratio == value
    assert GopherQualityConfig(min_alpha_word_fraction=value).min_alpha_word_fraction == value
    assert GopherRepetitionConfig(max_duplicate_line_fraction=value).max_duplicate_line_fraction == value
    assert GopherRepetitionConfig(max_duplicate_ngram_char_fractions=(value,) * 6).max_duplicate_ngram_char_fractions \
        == (value,) * 6


def test_gopher_counts_of_zero_construct() -> None:
    """Counts must be >= 0: zero is allowed (it turns the rule into a no-op without None)."""
    cfg = GopherQualityConfig(min_words=0, max_words=0, min_stop_words=0)
    assert (cfg.min_words, cfg.max_words, cfg.min_stop_words) == (0, 0, 0)


@pytest.mark.parametrize("name", ["min_words", "max_words", "min_stop_words"])
def test_gopher_negative_counts_raise(name: str) -> None:
    """-1 is rejected by the >= 0 check itself (min_words is turned off so min > max cannot be the cause)."""
    with pytest.raises(ValueError, match=f"{name} \\(-1\\) must be >= 0"):
        GopherQualityConfig(**{"min_words": None, name: -1})


def test_gopher_equal_bounds_construct() -> None:
    """min == max is a valid (one-point) range for words and for mean word length; min > max is not."""
    assert GopherQualityConfig(min_words=10, max_words=10).max_words == 10
    assert GopherQualityConfig(min_mean_word_length=4.0, max_mean_word_length=4.0).min_mean_word_length == 4.0
    with pytest.raises(ValueError):
        GopherQualityConfig(min_words=11, max_words=10)
    with pytest.raises(ValueError):
        GopherQualityConfig(min_mean_word_length=4.5, max_mean_word_length=4.0)


# ---------------------------------------------------------------- C4

def run_c4(text: str) -> c4.Edit:
    return c4.c4(TextView(text), C4Config())


def test_c4_default_max_word_length_is_1000_inclusive() -> None:
    """TFDS c4_utils: a line whose longest word has 1000 characters is kept, 1001 removes the line."""
    at, over = f"A word {'x' * 1000} here.", f"A word {'y' * 1001} here."
    assert run_c4(f"{at}\n{over}").text == at


def test_c4_default_min_words_per_line_is_3_inclusive() -> None:
    """C4 paper 2.2: lines of fewer than 3 words go; a 3-word line stays."""
    three, two = "Three words here.", "Two words."
    assert run_c4(f"{three}\n{two}").text == three


def test_c4_default_min_sentences_is_5_inclusive() -> None:
    """C4 paper 2.2: fewer than 5 sentences drops the page. Each ". " before more text ends one sentence."""
    five = "One is here. Two is here. Three is here. Four is here. Five is here."  # 4 ends + 1 = 5
    four = "One is here. Two is here. Three is here. Four is here."  # 3 ends + 1 = 4
    assert run_c4(five).verdict.reason is None
    assert run_c4(five).verdict.stats["c4_sentence_count"] == 5.0
    assert run_c4(four).verdict.reason == c4.TOO_FEW_SENTENCES
    assert run_c4(four).verdict.stats["c4_sentence_count"] == 4.0


def test_c4_reason_is_the_first_rule_that_failed() -> None:
    """A kept "lorem ipsum" line is found before the page-level sentence count, so it is the reason given."""
    edit = run_c4("Lorem ipsum dolor sit amet.\nA second short line.")  # 2 sentences < 5 as well
    assert edit.verdict.reason == c4.LOREM_IPSUM
    edit = run_c4("Some code { here } now.\nLorem ipsum dolor sit amet.")  # the brace line comes first
    assert edit.verdict.reason == c4.CURLY_BRACKET


def test_c4_counts_every_kind_of_sentence_end_on_a_line_holding_all_of_them() -> None:
    """Seven different marks, each followed by a space and more text: 7 sentence ends + 1 = 8 sentences."""
    line = "Aa bb. Cc dd! Ee ff? Gg hh… Ii jj。 Kk ll！ Mm nn？ Oo pp"
    assert run_c4(line).verdict.stats["c4_sentence_count"] == 8.0


def test_c4_counts_of_one_construct_and_zero_raises() -> None:
    """Counts must be >= 1: one is the smallest allowed value for each, zero is rejected."""
    cfg = C4Config(min_sentences=1, min_words_per_line=1, max_word_length=1)
    assert (cfg.min_sentences, cfg.min_words_per_line, cfg.max_word_length) == (1, 1, 1)
    for name in ("min_sentences", "min_words_per_line", "max_word_length"):
        with pytest.raises(ValueError, match=f"{name} \\(0\\) must be >= 1"):
            C4Config(**{name: 0})


# ---------------------------------------------------------------- FineWeb

FINEWEB_FRACTIONS = ("min_punctuated_line_fraction", "max_short_line_fraction", "max_duplicate_line_char_fraction")


@pytest.mark.parametrize("value", [0.0, 1.0])
@pytest.mark.parametrize("name", FINEWEB_FRACTIONS)
def test_fineweb_fractions_accept_both_ends_of_0_1(name: str, value: float) -> None:
    """Fraction thresholds live in the closed interval [0, 1]."""
    assert getattr(FineWebQualityConfig(**{name: value}), name) == value


@pytest.mark.parametrize("value", [-0.01, 1.01])
@pytest.mark.parametrize("name", FINEWEB_FRACTIONS)
def test_fineweb_fractions_outside_0_1_raise(name: str, value: float) -> None:
    with pytest.raises(ValueError, match="must be within \\[0, 1\\]"):
        FineWebQualityConfig(**{name: value})


def test_fineweb_short_line_max_chars_of_one_constructs_and_zero_raises() -> None:
    """A short line is at most `short_line_max_chars` characters, so 1 is the smallest meaningful value."""
    assert FineWebQualityConfig(short_line_max_chars=1).short_line_max_chars == 1
    with pytest.raises(ValueError, match="short_line_max_chars \\(0\\) must be >= 1"):
        FineWebQualityConfig(short_line_max_chars=0)


@pytest.mark.parametrize("marks", [(), ("", "."), (".", "")])
def test_fineweb_terminal_punctuation_must_be_non_empty_strings(marks: tuple[str, ...]) -> None:
    """No marks at all, or an empty mark (every line "ends" with ""), would make the rule meaningless."""
    with pytest.raises(ValueError, match="terminal_punctuation"):
        FineWebQualityConfig(terminal_punctuation=marks)


def test_fineweb_a_single_mark_constructs() -> None:
    assert FineWebQualityConfig(terminal_punctuation=(".",)).terminal_punctuation == (".",)


# ---------------------------------------------------------------- RefinedWeb

def run_rw(text: str, **cfg: object) -> refinedweb.Edit:
    return refinedweb.refinedweb_lines(TextView(text), RefinedWebLinesConfig(**cfg))


def test_refinedweb_drops_numeric_lines_by_default_even_without_the_word_count_rule() -> None:
    """RefinedWeb G.2: a digits-only line goes. With min_words_per_line off, only that default removes it."""
    text = "some words on this line\n12345\nmore words here now"
    assert run_rw(text, min_words_per_line=None).text == "some words on this line\nmore words here now"
    assert run_rw(text, min_words_per_line=None, drop_numeric_lines=False).text == text


def test_refinedweb_default_min_words_per_line_is_2_inclusive() -> None:
    """DCLM line_length_modifier: a 2-word line is kept, a 1-word line removed."""
    assert run_rw("first line of words\ntwo words\nalone\nlast line of words").text == (
        "first line of words\ntwo words\nlast line of words")


def test_refinedweb_default_substring_edits_apply_up_to_10_words() -> None:
    """DCLM: "read more..." is cut from a line of at most 10 white-space words ("read more..." is two of them)."""
    ten = "one two three four five six seven eight read more..."  # 8 + 2 = 10 words
    eleven = "one two three four five six seven eight nine read more..."  # 9 + 2 = 11 words
    assert run_rw(ten).text == "one two three four five six seven eight"
    assert run_rw(eleven).text == eleven


def test_refinedweb_removed_line_fraction_counts_rule_removals_and_emptied_lines() -> None:
    """5 lines: one removed by a rule (a bare number), one emptied by an edit, one blank (kept, not counted):
    2 of 5 lines removed = 0.4."""
    text = "first kept line here\n12345\nitems in cart\n\nlast kept line here"
    edit = run_rw(text)
    assert edit.text == "first kept line here\n\nlast kept line here"
    assert edit.verdict.stats["refinedweb_removed_line_fraction"] == pytest.approx(2 / 5)
    assert run_rw("one kept line\nitems in cart").verdict.stats["refinedweb_removed_line_fraction"] == 0.5
    assert run_rw("one kept line\nanother kept line").verdict.stats["refinedweb_removed_line_fraction"] == 0.0


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_refinedweb_fractions_accept_both_ends_of_0_1(value: float) -> None:
    cfg = RefinedWebLinesConfig(max_uppercase_fraction=value, max_removed_word_fraction=value)
    assert (cfg.max_uppercase_fraction, cfg.max_removed_word_fraction) == (value, value)


def test_refinedweb_counts_of_one_construct_and_zero_raises() -> None:
    """min_words_per_line and max_words_for_substring_edits must be >= 1."""
    cfg = RefinedWebLinesConfig(min_words_per_line=1, max_words_for_substring_edits=1)
    assert (cfg.min_words_per_line, cfg.max_words_for_substring_edits) == (1, 1)
    with pytest.raises(ValueError, match="min_words_per_line \\(0\\) must be >= 1"):
        RefinedWebLinesConfig(min_words_per_line=0)
    with pytest.raises(ValueError, match="max_words_for_substring_edits \\(0\\) must be >= 1"):
        RefinedWebLinesConfig(max_words_for_substring_edits=0)
