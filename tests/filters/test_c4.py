"""One tiny text per C4 rule (FineWeb's variant), a clean text that passes, and config validation."""
from __future__ import annotations

import pytest

from core.config import ConfigError, from_mapping
from transforms.filters import c4
from transforms.filters.c4 import C4Config
from transforms.text import TextView

CLEAN = (
    "The mill was built in 1820. It ground wheat for the whole valley.\n"
    "Floods came every spring. The family moved the flour upstairs.\n"
    "Today it is a museum. Children visit it on school trips."
)


def run(text: str, **cfg: object) -> c4.Edit:
    return c4.c4(TextView(text), C4Config(**cfg))


def test_clean_text_is_kept_unchanged() -> None:
    edit = run(CLEAN)
    assert edit.verdict.reason is None
    assert edit.text == CLEAN
    assert edit.verdict.stats["c4_sentence_count"] == 6.0


@pytest.mark.parametrize(
    ("line", "cfg"),
    [
        ("short line", {}),  # fewer than 3 words
        ("Please enable JavaScript to view this page.", {}),
        ("Read our privacy policy before you go.", {}),
        ("This site uses cookies for analytics.", {}),
        ("word " + "x" * 1001 + " end", {}),
        ("A line without final punctuation here", {"require_terminal_punctuation": True}),
        ("A line that trails off into nothing...", {"require_terminal_punctuation": True}),
    ],
)
def test_line_rules_remove_the_line(line: str, cfg: dict) -> None:
    edit = run(f"{CLEAN}\n{line}", **cfg)
    assert edit.verdict.reason is None
    assert edit.text == CLEAN


def test_terminal_punctuation_is_off_by_default() -> None:
    assert run(f"{CLEAN}\nA line without final punctuation here").text.endswith("punctuation here")


def test_citations_are_stripped() -> None:
    edit = run(CLEAN.replace("1820.", "1820.[1]").replace("upstairs.", "upstairs.[citation needed]"))
    assert edit.text == CLEAN


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("Lorem ipsum dolor sit amet.", c4.LOREM_IPSUM),
        ("function f() { return 1; }", c4.CURLY_BRACKET),
    ],
)
def test_page_rules(extra: str, reason: str) -> None:
    assert run(f"{CLEAN}\n{extra}").verdict.reason == reason


def test_too_few_sentences() -> None:
    assert run("One sentence here. Two sentences here.").verdict.reason == c4.TOO_FEW_SENTENCES


def test_count_sentences() -> None:
    assert c4.count_sentences("One. Two! Three? “Four.” Five") == 5
    assert c4.count_sentences("No punctuation at all") == 1
    assert c4.count_sentences("Pi is 3.14 exactly.") == 1


def test_stats_keys_are_fixed() -> None:
    for text in ("", CLEAN, "Lorem ipsum dolor sit amet."):
        stats = run(text).verdict.stats
        assert tuple(stats) == c4.STEPS[0].stat_names


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(C4Config, {"min_sentence": 5}, where="c4")
    with pytest.raises(ConfigError, match=r"min_sentences \(0\)"):
        from_mapping(C4Config, {"min_sentences": 0}, where="c4")
    with pytest.raises(ValueError, match="lower case"):
        C4Config(policy_phrases=("Cookie Policy",))
