"""One tiny text per RefinedWeb line correction, a clean text that passes, and config validation."""
from __future__ import annotations

import pytest

from core.config import ConfigError, from_mapping
from transforms.filters import refinedweb
from transforms.filters.refinedweb import RefinedWebLinesConfig
from transforms.text import TextView

CLEAN = "\n".join(
    f"Paragraph {i} tells how the mill ground wheat for the valley and how floods shaped its long history."
    for i in range(12)
)


def run(text: str, **cfg: object) -> refinedweb.Edit:
    return refinedweb.refinedweb_lines(TextView(text), RefinedWebLinesConfig(**cfg))


def test_clean_text_is_kept_unchanged() -> None:
    edit = run(CLEAN)
    assert edit.verdict.reason is None
    assert edit.text == CLEAN


@pytest.mark.parametrize(
    "line",
    ["SHOP NOW AND SAVE", "2024", "12 likes", "3.4K views", "1,024 followers", "Hi"],
)
def test_removed_lines(line: str) -> None:
    edit = run(f"{CLEAN}\n{line}")
    assert edit.text == CLEAN
    assert edit.verdict.reason is None  # one short line is < 5% of the words


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("You have 3 items in cart now", "You have 3 now"),
        ("A short teaser about the mill. Read more...", "A short teaser about the mill."),
        ("Sign-in to leave a comment below", "to leave a comment below"),
    ],
)
def test_short_line_edits(line: str, expected: str) -> None:
    assert run(f"{CLEAN}\n{line}").text == f"{CLEAN}\n{expected}"


def test_long_lines_are_not_edited() -> None:
    line = "Sign-in is what this long line starts with, but it has far more than ten words in it."
    assert run(f"{CLEAN}\n{line}").text.endswith(line)


def test_blank_lines_survive() -> None:
    assert run("First paragraph about the mill.\n\nSecond paragraph about the mill.").text.count("\n\n") == 1


def test_too_many_words_removed() -> None:
    edit = run("The mill ground wheat for the valley.\nHOME ABOUT CONTACT SHOP\n12 likes")
    assert edit.verdict.reason == refinedweb.TOO_MANY_WORDS_REMOVED
    assert edit.verdict.stats["refinedweb_removed_word_fraction"] == pytest.approx(6 / 13)


def test_stats_keys_are_fixed() -> None:
    for text in ("", CLEAN):
        assert tuple(run(text).verdict.stats) == refinedweb.STEPS[0].stat_names


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(RefinedWebLinesConfig, {"max_uppercase": 0.5}, where="refinedweb_lines")
    with pytest.raises(ConfigError, match=r"max_removed_word_fraction \(5.0\)"):
        from_mapping(RefinedWebLinesConfig, {"max_removed_word_fraction": 5}, where="refinedweb_lines")
    with pytest.raises(ValueError, match="lower-case"):
        RefinedWebLinesConfig(remove_prefixes=("Sign-in",))
