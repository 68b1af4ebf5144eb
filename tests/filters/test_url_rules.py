"""URL filter rules at their edges (issue 16 mutation survivors): the soft-word threshold of 1, "www." list entries,
scheme-less URLs, and the frozen/keyword-only/slotted contract of UrlFilterConfig and UrlLists."""
from __future__ import annotations

import dataclasses

import pytest

from transforms.filters import url
from transforms.filters.url import UrlFilterConfig, UrlLists, check_url, load_url_lists

LISTS = {"domains.txt": "www.other.org\nbad-site.com\n", "hard.txt": "porn\n", "soft.txt": "sexy\nnaked\n",
         "sub.txt": "freeporn\n"}


def cfg_with(**changes) -> UrlFilterConfig:
    return UrlFilterConfig(domain_files=("domains.txt",), hard_banned_word_files=("hard.txt",),
                           soft_banned_word_files=("soft.txt",), banned_subword_files=("sub.txt",), **changes)


def reason(address: str, cfg: UrlFilterConfig) -> str | None:
    return check_url(address, load_url_lists(cfg, read_text=LISTS.__getitem__), cfg).reason


def test_a_soft_threshold_of_one_is_valid_and_one_soft_word_then_drops() -> None:
    cfg = cfg_with(min_soft_banned_words=1)
    assert reason("http://example.com/sexy-shoes", cfg) == url.SOFT_BANNED_WORDS
    assert reason("http://example.com/red-shoes", cfg) is None
    assert reason("http://example.com/sexy-shoes", cfg_with()) is None  # the default needs 2
    with pytest.raises(ValueError, match="min_soft_banned_words"):
        cfg_with(min_soft_banned_words=0)


@pytest.mark.parametrize("address", ["http://other.org/", "https://other.org/page", "http://shop.other.org/",
                                     "http://www.other.org/"])
def test_a_www_list_entry_bans_the_bare_domain_and_its_subdomains(address: str) -> None:
    # the list says "www.other.org"; "www." is dropped from list entries and hosts alike
    assert reason(address, cfg_with()) == url.BANNED_DOMAIN


@pytest.mark.parametrize("address", ["http://ther.org/", "http://brother.org/"])
def test_only_the_four_characters_of_www_dot_are_dropped(address: str) -> None:
    assert reason(address, cfg_with()) is None


@pytest.mark.parametrize("address", ["bad-site.com/page", "www.bad-site.com", "other.org"])
def test_a_url_without_a_scheme_still_has_its_host_checked(address: str) -> None:
    assert reason(address, cfg_with()) == url.BANNED_DOMAIN


def test_url_filter_config_is_frozen_hashable_keyword_only_and_slotted() -> None:
    cfg = UrlFilterConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.min_soft_banned_words = 3  # type: ignore[misc]
    assert cfg.min_soft_banned_words == 2
    assert hash(cfg) == hash(UrlFilterConfig()) and {cfg: 1}[UrlFilterConfig()] == 1
    with pytest.raises(TypeError, match="positional"):
        UrlFilterConfig(cfg.domain_files)  # type: ignore[misc]
    assert not hasattr(cfg, "__dict__")
    with pytest.raises((AttributeError, TypeError)):
        object.__setattr__(cfg, "min_soft_banned_word", 1)  # misspelt: no slot, no __dict__


def test_loaded_lists_are_frozen_and_slotted() -> None:
    lists = load_url_lists(cfg_with(), read_text=LISTS.__getitem__)
    assert isinstance(lists, UrlLists)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lists.domains = frozenset()  # type: ignore[misc]
    assert "other.org" in lists.domains
    assert not hasattr(lists, "__dict__")
    assert hash(lists) == hash(load_url_lists(cfg_with(), read_text=LISTS.__getitem__))
