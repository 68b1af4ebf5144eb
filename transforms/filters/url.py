"""URL blocklist filter (RefinedWeb, Penedo et al. 2023, App. G.1; FineWeb's datatrove URLFilter).

Runs before extraction, on the URL alone. Lists are read once per worker through a passed-in `read_text`
callable, so the Beam shell can hand in `FileSystems` reads; the default reads local files and resolves
relative paths against the `configs` package (where `lists/*.txt` ship).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from core.resources import resolve_resource
from transforms.filters.base import Verdict
from transforms.filters.evidence import Rule

BANNED_DOMAIN = "url.banned_domain"
HARD_BANNED_WORD = "url.hard_banned_word"
SOFT_BANNED_WORDS = "url.soft_banned_words"
BANNED_SUBWORD = "url.banned_subword"
STAT_NAMES = ("url_banned_domain", "url_hard_banned_words", "url_soft_banned_words", "url_banned_subwords")

# URL tokens are maximal runs of ASCII letters and digits of the lower-cased URL (datatrove URLFilter).
_TOKEN_RE = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, kw_only=True, slots=True)
class UrlFilterConfig:
    """Which lists to read and how many soft words make a drop; every list file is one entry a line."""

    domain_files: tuple[str, ...] = ("lists/url_blocklist_domains.txt",)  # add UT1 adult/domains here
    hard_banned_word_files: tuple[str, ...] = ("lists/url_hard_banned_words.txt",)
    soft_banned_word_files: tuple[str, ...] = ("lists/url_soft_banned_words.txt",)
    banned_subword_files: tuple[str, ...] = ("lists/url_banned_subwords.txt",)
    extra_domains: tuple[str, ...] = ()  # entries added in the recipe itself
    extra_hard_banned_words: tuple[str, ...] = ()
    extra_soft_banned_words: tuple[str, ...] = ()
    extra_banned_subwords: tuple[str, ...] = ()
    # Distinct soft words in the URL that drop it; RefinedWeb App. G.1 and FineWeb use 2.
    min_soft_banned_words: int | None = 2

    def __post_init__(self) -> None:
        if self.min_soft_banned_words is not None and self.min_soft_banned_words < 1:
            raise ValueError(
                f"min_soft_banned_words ({self.min_soft_banned_words}) must be >= 1; RefinedWeb uses 2, None is off"
            )
        for name in ("extra_hard_banned_words", "extra_soft_banned_words"):
            bad = [w for w in getattr(self, name) if not _TOKEN_RE.fullmatch(w)]
            if bad:
                raise ValueError(f"{name} has {bad}: words must be lower-case ASCII letters/digits (URL tokens)")


@dataclass(frozen=True, slots=True)
class UrlLists:
    """The loaded, normalised lists."""

    domains: frozenset[str]
    hard_words: frozenset[str]
    soft_words: frozenset[str]
    subwords: tuple[str, ...]


def read_local_text(path: str) -> str:
    """Read a list file from a local path, resolved like every recipe path (CWD, then the configs package)."""
    return Path(resolve_resource(path)).read_text(encoding="utf-8")


def parse_list(text: str) -> list[str]:
    """Entries of a list file: one a line, lower-cased, '#' starts a comment."""
    return [e for line in text.splitlines() if (e := line.split("#", 1)[0].strip().lower())]


def _normalise_domain(domain: str) -> str:
    """Host without a trailing dot or a leading "www.", as lists and URLs are compared."""
    domain = domain.strip().lower().rstrip(".")
    return domain[4:] if domain.startswith("www.") else domain


def load_url_lists(cfg: UrlFilterConfig, read_text: Callable[[str], str] = read_local_text) -> UrlLists:
    """Read and normalise every configured list once (call it in DoFn.setup)."""

    def gather(files: tuple[str, ...], extra: tuple[str, ...]) -> list[str]:
        return [e for f in files for e in parse_list(read_text(f))] + [e.lower() for e in extra]

    subwords = gather(cfg.banned_subword_files, cfg.extra_banned_subwords)
    return UrlLists(
        domains=frozenset(map(_normalise_domain, gather(cfg.domain_files, cfg.extra_domains))),
        hard_words=frozenset(gather(cfg.hard_banned_word_files, cfg.extra_hard_banned_words)),
        soft_words=frozenset(gather(cfg.soft_banned_word_files, cfg.extra_soft_banned_words)),
        subwords=tuple(sorted({s.replace("-", "").replace(".", "") for s in subwords} - {""})),
    )


def _host(url: str) -> str:
    """The URL's host, normalised; "" when the URL cannot be parsed."""
    try:
        return _normalise_domain(urlsplit(url if "//" in url else "//" + url).hostname or "")
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return ""


def _domain_banned(host: str, domains: frozenset[str]) -> bool:
    """True when the host or any parent domain is listed ("a.b.example.com" matches "example.com")."""
    parts = host.split(".")
    return any(".".join(parts[i:]) in domains for i in range(len(parts)))


def check_url(url: str, lists: UrlLists, cfg: UrlFilterConfig) -> Verdict:
    """Drop adult and spam pages by their address before paying for extraction."""
    lower = url.lower()
    tokens = set(_TOKEN_RE.findall(lower))
    normalised = lower.replace("-", "").replace(".", "")
    stats = {
        "url_banned_domain": float(_domain_banned(_host(url), lists.domains)),
        "url_hard_banned_words": float(len(tokens & lists.hard_words)),
        "url_soft_banned_words": float(len(tokens & lists.soft_words)),
        "url_banned_subwords": float(sum(s in normalised for s in lists.subwords)),
    }
    if stats["url_banned_domain"]:
        reason: str | None = BANNED_DOMAIN
    elif stats["url_hard_banned_words"]:
        reason = HARD_BANNED_WORD
    elif cfg.min_soft_banned_words is not None and stats["url_soft_banned_words"] >= cfg.min_soft_banned_words:
        reason = SOFT_BANNED_WORDS
    elif stats["url_banned_subwords"]:
        reason = BANNED_SUBWORD
    else:
        reason = None
    return Verdict(reason, stats)


EVIDENCE = {SOFT_BANNED_WORDS: Rule("url_soft_banned_words", "min_soft_banned_words", ">=")}
NOTES = {BANNED_DOMAIN: "the host or a parent domain is on the domain blocklist",
         HARD_BANNED_WORD: "a URL word is on the hard banned word list",
         BANNED_SUBWORD: "the URL contains a banned subword"}
