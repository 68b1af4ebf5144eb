"""One URL per rule, a clean URL that passes, list loading and config validation."""
from __future__ import annotations

import pytest

from core.config import ConfigError, from_mapping
from transforms.filters import url
from transforms.filters.url import UrlFilterConfig, check_url, load_url_lists, parse_list

LISTS = {
    "domains.txt": "# adult domains\nbad-site.com\nwww.other.org  # www. is ignored\n",
    "hard.txt": "porn\n",
    "soft.txt": "sexy\nnaked\nadult\n",
    "sub.txt": "freeporn\n",
}


def lists_for(cfg: UrlFilterConfig) -> url.UrlLists:
    return load_url_lists(cfg, read_text=LISTS.__getitem__)


CFG = UrlFilterConfig(domain_files=("domains.txt",), hard_banned_word_files=("hard.txt",),
                      soft_banned_word_files=("soft.txt",), banned_subword_files=("sub.txt",))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("https://www.example.com/news/mill-history", None),
        ("https://www.example.com/health/adult-vaccines", None),  # one soft word is not enough
        ("http://bad-site.com/page", url.BANNED_DOMAIN),
        ("http://videos.bad-site.com:8080/page", url.BANNED_DOMAIN),
        ("http://www.other.org/", url.BANNED_DOMAIN),
        ("http://notbad-site.com/", None),
        ("http://example.com/free/porn/clips", url.HARD_BANNED_WORD),
        ("http://example.com/pornography-law", None),  # hard words are whole tokens
        ("http://example.com/sexy_naked", url.SOFT_BANNED_WORDS),
        ("http://example.com/free-porn.videos", url.HARD_BANNED_WORD),
        ("http://free-p.orn-clips.example.com/", url.BANNED_SUBWORD),
    ],
)
def test_rules(address: str, reason: str | None) -> None:
    assert check_url(address, lists_for(CFG), CFG).reason == reason


def test_soft_threshold_and_extra_lists() -> None:
    cfg = UrlFilterConfig(**{**{f: getattr(CFG, f) for f in CFG.__dataclass_fields__},
                             "min_soft_banned_words": 3, "extra_domains": ("mill.example",)})
    lists = lists_for(cfg)
    assert check_url("http://example.com/sexy_naked", lists, cfg).reason is None
    assert check_url("http://shop.mill.example/", lists, cfg).reason == url.BANNED_DOMAIN


def test_stats_and_bad_urls() -> None:
    verdict = check_url("http://[::1/x", lists_for(CFG), CFG)
    assert verdict.keep and tuple(verdict.stats) == url.STAT_NAMES


def test_shipped_lists_load_and_parse() -> None:
    cfg = UrlFilterConfig()
    lists = load_url_lists(cfg)
    assert "porn" in lists.hard_words and len(lists.domains) >= 10
    assert not any(e.startswith("#") for e in lists.soft_words)
    assert check_url("https://en.wikipedia.org/wiki/Watermill", lists, cfg).keep
    assert parse_list("# c\nA  # b\n\nb\n") == ["a", "b"]


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(UrlFilterConfig, {"domain_file": ["x"]}, where="url")
    with pytest.raises(ConfigError, match=r"min_soft_banned_words \(0\)"):
        from_mapping(UrlFilterConfig, {"min_soft_banned_words": 0}, where="url")
    with pytest.raises(ValueError, match="extra_hard_banned_words"):
        UrlFilterConfig(extra_hard_banned_words=("two words",))
