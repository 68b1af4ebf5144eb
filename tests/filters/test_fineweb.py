"""One tiny text per FineWeb rule, a clean text that passes, and config validation."""
from __future__ import annotations

import pytest

from core.config import ConfigError, from_mapping
from transforms.filters import fineweb
from transforms.filters.fineweb import FineWebQualityConfig
from transforms.text import TextView

CLEAN = (
    "The mill was built in 1820 and ground wheat for the whole valley for a century.\n"
    "Floods came every spring, so the family moved the flour to the upper floors.\n"
    "Today it is a museum, and children visit it on school trips most weeks."
)


def reason(text: str, **cfg: object) -> str | None:
    return fineweb.fineweb_quality(TextView(text), FineWebQualityConfig(**cfg)).reason


def test_clean_text_passes() -> None:
    assert reason(CLEAN) is None


@pytest.mark.parametrize(
    ("text", "cfg", "expected"),
    [
        ("", {}, fineweb.EMPTY),
        ("\n  \n", {}, fineweb.EMPTY),
        (CLEAN.replace(".", ""), {}, fineweb.LOW_LINE_PUNCTUATION),
        ("Home\nAbout\nShop\nCart\nHelp\nFAQ\nLogin\n" + CLEAN, {}, fineweb.TOO_MANY_SHORT_LINES),
        (CLEAN + "\n" + CLEAN.split("\n")[0], {}, fineweb.TOO_MANY_DUPLICATE_LINE_CHARS),
        ("Yes.\nNo.\nMaybe.\nSo.", {"max_short_line_fraction": None, "max_newline_per_word_ratio": 0.3},
         fineweb.TOO_MANY_NEWLINES),
    ],
)
def test_rule(text: str, cfg: dict, expected: str) -> None:
    assert reason(text, **cfg) == expected


def test_punctuation_boundary_is_inclusive() -> None:
    # 1 of 8 lines punctuated would pass 0.12 strictly; 3 of 25 = 0.12 exactly drops under the paper's <=.
    lines = ["A long enough line that ends without any mark at all here"] * 22
    ends = [f"Line {i} of the set that ends well." for i in range(3)]
    text = "\n".join([f"{line} {i}" for i, line in enumerate(lines)] + ends)
    verdict = fineweb.fineweb_quality(TextView(text), FineWebQualityConfig())
    assert verdict.stats["fineweb_punctuated_line_fraction"] == 0.12
    assert verdict.reason == fineweb.LOW_LINE_PUNCTUATION


def test_trailing_space_means_unpunctuated_like_datatrove() -> None:
    stats = fineweb.fineweb_quality(TextView("Ends well. \nEnds well."), FineWebQualityConfig()).stats
    assert stats["fineweb_punctuated_line_fraction"] == 0.5


def test_stats_keys_are_fixed() -> None:
    for text in ("", CLEAN):
        assert tuple(fineweb.fineweb_quality(TextView(text), FineWebQualityConfig()).stats) == fineweb.STAT_NAMES


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(FineWebQualityConfig, {"line_punct_thr": 0.1}, where="fineweb")
    with pytest.raises(ConfigError, match=r"max_short_line_fraction \(67.0\)"):
        from_mapping(FineWebQualityConfig, {"max_short_line_fraction": 67}, where="fineweb")
    with pytest.raises(ValueError, match="max_newline_per_word_ratio"):
        FineWebQualityConfig(max_newline_per_word_ratio=0.0)
