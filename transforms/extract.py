"""HTML -> plain text, one paragraph per line: jusText (Blu-WERP), trafilatura (FineWeb), Resiliparse (DCLM) or
ours, `lines` (Resiliparse's DOM walk and a small trained line model: transforms/extract_lines.py).

Extractors are pure functions of (html, cfg). A pathological page can hold a parser for minutes (Resiliparse
is quadratic in nesting depth: 20,000 nested <div>s take 30 s here), so `transforms/extract_sandbox.py` runs them
in a reused child process that is killed and replaced when a page overruns its time limit.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Literal

from core.resources import resolve_resource
from transforms.extract_lines import LineModel, extract_lines as keep_lines, load_model


class ExtractionError(RuntimeError):
    """Base of the named extraction failures, so a caller can count them by type."""


class PageTooLarge(ExtractionError):
    """The page exceeds ExtractConfig.max_html_chars."""


class ExtractionTimeout(ExtractionError):
    """The page took longer than ExtractConfig.timeout_s; its child was killed and replaced."""


class ExtractorCrashed(ExtractionError):
    """The child died (segfault, out of memory) while extracting; it was replaced."""


class ExtractorFailed(ExtractionError):
    """The extractor raised inside the child; the message starts with the original exception's type."""


@dataclass(frozen=True, kw_only=True, slots=True)
class JustextConfig:
    """jusText (Pomikalek 2011). Defaults are justext.core's *_DEFAULT constants; Blu-WERP states none."""

    stoplist: str = "English"  # justext.get_stoplist() language; Blu-WERP is English only (data-seeds 1.1)
    length_low: int = 70  # chars; shorter paragraphs are "short"
    length_high: int = 200  # chars; longer paragraphs with enough stopwords are "good"
    stopwords_low: float = 0.30  # stopword density (fraction of words) below which a paragraph is "bad"
    stopwords_high: float = 0.32  # stopword density from which a paragraph can be "good"
    max_link_density: float = 0.2  # fraction of chars inside <a>; above it a paragraph is "bad"
    max_heading_distance: int = 200  # chars; a heading this close before good text is kept
    no_headings: bool = False  # True turns off the heading rule above

    def __post_init__(self) -> None:
        import justext  # light; a misspelt stoplist then fails when the recipe loads, not on a worker

        if self.stoplist not in (names := justext.get_stoplists()):
            raise ValueError(f"stoplist {self.stoplist!r} is not a jusText stoplist; use one of {sorted(names)}")
        if not 0 <= self.length_low <= self.length_high:
            raise ValueError(f"need 0 <= length_low ({self.length_low}) <= length_high ({self.length_high})")
        if not 0.0 <= self.stopwords_low <= self.stopwords_high <= 1.0:
            raise ValueError(f"need 0 <= stopwords_low ({self.stopwords_low}) <= stopwords_high "
                             f"({self.stopwords_high}) <= 1")
        if not 0.0 <= self.max_link_density <= 1.0:
            raise ValueError(f"max_link_density ({self.max_link_density}) must be in [0, 1]")


@dataclass(frozen=True, kw_only=True, slots=True)
class TrafilaturaConfig:
    """trafilatura.extract options as FineWeb's datatrove Trafilatura() sets them (data-seeds 3.2)."""

    favor_precision: bool = True  # FineWeb
    include_comments: bool = False  # FineWeb: reader comments are not main content
    include_tables: bool = True  # trafilatura's default, which FineWeb keeps
    # datatrove's default is True, but trafilatura's cache is process-global: output would depend on which pages
    # a worker saw before. Dedup is its own stage here.
    deduplicate: bool = False
    fast: bool = False  # True skips the fallback extractors: 62 vs 41 docs/s/core (data-anchors 6); FineWeb: off


@dataclass(frozen=True, kw_only=True, slots=True)
class ResiliparseConfig:
    """extract_plain_text options; DCLM ran main_content=True with the library defaults (Li et al. 2024)."""

    main_content: bool = True  # DCLM: drop navigation, sidebars, footers by Resiliparse's rules
    list_bullets: bool = True  # library default: list items start with a bullet
    alt_texts: bool = True  # library default: image alt text is kept
    comments: bool = True  # library default: comment sections count as main content


@dataclass(frozen=True, kw_only=True, slots=True)
class LinesConfig:
    """Our line-model extractor; the weights come from scripts/train_extractor.py (gold pages, fold 0 held out)."""

    weights: str = "models/extract_lines.json"  # a path, or relative to the configs package
    headings: bool = True  # keep a heading right above kept text (the gold of news sets leaves titles out)


@dataclass(frozen=True, kw_only=True, slots=True)
class ExtractConfig:
    """Which extractor runs, its options, and the sandbox limits."""

    extractor: ExtractorName = "justext"  # a name in EXTRACTORS; Blu-WERP's choice (data-seeds 1.3)
    timeout_s: float | None = None  # wall seconds per document in the sandbox; None runs in-process, no limit
    # Documents one sandbox child extracts before it is replaced: lxml's heap fragments and grows over
    # long runs (NeMo Curator #1533). A restart from the fork server costs a few ms.
    max_docs_per_child: int = 1000
    # Pages above this many chars raise PageTooLarge. Common Crawl truncates payloads at 1 MiB, so this
    # only fires on other sources.
    max_html_chars: int | None = 2_000_000
    justext: JustextConfig = field(default_factory=JustextConfig)
    trafilatura: TrafilaturaConfig = field(default_factory=TrafilaturaConfig)
    resiliparse: ResiliparseConfig = field(default_factory=ResiliparseConfig)
    lines: LinesConfig = field(default_factory=LinesConfig)

    def __post_init__(self) -> None:
        if self.extractor not in EXTRACTORS:
            raise ValueError(f"extractor {self.extractor!r} is unknown; use one of {', '.join(EXTRACTORS)}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"timeout_s ({self.timeout_s}) must be > 0; use null for no limit")
        if self.max_docs_per_child < 1:
            raise ValueError(f"max_docs_per_child ({self.max_docs_per_child}) must be >= 1")
        if self.max_html_chars is not None and self.max_html_chars < 1:
            raise ValueError(f"max_html_chars ({self.max_html_chars}) must be >= 1; use null for no limit")
        if self.extractor == "lines":  # a missing or stale weights file fails when the recipe loads, not on a worker
            try:
                lines_model(self.lines.weights)
            except (OSError, ValueError, KeyError) as exc:
                raise ValueError(f"lines.weights {self.lines.weights!r}: {exc}; give the JSON that "
                                 "`python -m scripts.train_extractor` writes") from exc


def extract_text(html: str, cfg: ExtractConfig) -> str:
    """The page's main text, one paragraph per line; "" when nothing survives."""
    if cfg.max_html_chars is not None and len(html) > cfg.max_html_chars:
        raise PageTooLarge(f"page has {len(html)} chars > max_html_chars ({cfg.max_html_chars}); "
                           "raise extract.max_html_chars or drop such pages upstream")
    return EXTRACTORS[cfg.extractor](html, cfg)


def _lines(text: str | None) -> str:
    """One paragraph per line with no blank lines, so the three extractors' outputs split the same way."""
    return "\n".join(s for line in (text or "").split("\n") if (s := line.strip()))


@functools.cache
def _stoplist(language: str) -> frozenset[str]:
    """justext.get_stoplist reads a file on every call; load each language once per process."""
    import justext

    return frozenset(justext.get_stoplist(language))


def extract_justext(html: str, cfg: ExtractConfig) -> str:
    """jusText's good paragraphs (headings next to good text included) in page order."""
    import justext
    import lxml.etree

    j = cfg.justext
    try:
        paragraphs = justext.justext(
            html, _stoplist(j.stoplist), length_low=j.length_low, length_high=j.length_high,
            stopwords_low=j.stopwords_low, stopwords_high=j.stopwords_high, max_link_density=j.max_link_density,
            max_heading_distance=j.max_heading_distance, no_headings=j.no_headings)
    except lxml.etree.ParserError:  # lxml's "Document is empty": the page has no element at all
        return ""
    return _lines("\n".join(p.text for p in paragraphs if not p.is_boilerplate))


def extract_trafilatura(html: str, cfg: ExtractConfig) -> str:
    """trafilatura's main text as plain text (its txt output already puts one block per line)."""
    import trafilatura

    t = cfg.trafilatura
    return _lines(trafilatura.extract(
        html, output_format="txt", favor_precision=t.favor_precision, include_comments=t.include_comments,
        include_tables=t.include_tables, deduplicate=t.deduplicate, fast=t.fast))


def extract_resiliparse(html: str, cfg: ExtractConfig) -> str:
    """Resiliparse's main-content text; its blank lines between blocks are folded to one newline."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    r = cfg.resiliparse
    return _lines(extract_plain_text(
        HTMLTree.parse(html), preserve_formatting=True, main_content=r.main_content,
        list_bullets=r.list_bullets, alt_texts=r.alt_texts, comments=r.comments))


@functools.lru_cache(maxsize=4)
def lines_model(weights: str) -> LineModel:
    """The weights a recipe names, resolved and read once per process (not a file lookup per page)."""
    return load_model(resolve_resource(weights))


def extract_lines(html: str, cfg: ExtractConfig) -> str:
    """Our line model's kept lines (already one paragraph per line, white space collapsed)."""
    return keep_lines(html, lines_model(cfg.lines.weights), headings=cfg.lines.headings)


# The extractors by name: the one list that the config's type, werp's --extractor and extract_text read.
EXTRACTORS: dict[str, Callable[[str, ExtractConfig], str]] = {
    "justext": extract_justext, "trafilatura": extract_trafilatura, "resiliparse": extract_resiliparse,
    "lines": extract_lines}
ExtractorName = Literal[tuple(EXTRACTORS)]  # type: ignore[valid-type]  # resolved when a recipe is loaded
