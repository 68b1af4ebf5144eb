"""HTML -> plain text, one paragraph per line: jusText (Blu-WERP), trafilatura (FineWeb) or Resiliparse (DCLM).

Extractors are pure functions of (html, cfg). A pathological page can hold a parser for minutes (Resiliparse
is quadratic in nesting depth: 20,000 nested <div>s take 30 s here), so `SandboxedExtractor` runs them in a
reused child process that is killed and replaced when a page overruns its time limit.
"""
from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.connection
import signal
from dataclasses import dataclass, field
from typing import Callable, Literal, NoReturn

# Modules the fork server imports once, so a (re)started child is ready in milliseconds instead of seconds.
_PRELOAD = ("transforms.extract", "justext", "trafilatura", "resiliparse.extract.html2text")
_STARTUP_TIMEOUT_S = 120.0  # a child that has not imported its libraries by then is reported as crashed
_OK, _FAILED = b"o", b"e"  # first byte of a child's reply
_UTF8 = ("utf-8", "surrogatepass")  # how text crosses the pipe; a decoded page may hold lone surrogates


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
class ExtractConfig:
    """Which extractor runs, its options, and the sandbox limits."""

    extractor: Literal["justext", "trafilatura", "resiliparse"] = "justext"  # Blu-WERP's choice (data-seeds 1.3)
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

    def __post_init__(self) -> None:
        if self.extractor not in _EXTRACTORS:
            raise ValueError(f"extractor {self.extractor!r} is unknown; use one of {', '.join(_EXTRACTORS)}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"timeout_s ({self.timeout_s}) must be > 0; use null for no limit")
        if self.max_docs_per_child < 1:
            raise ValueError(f"max_docs_per_child ({self.max_docs_per_child}) must be >= 1")
        if self.max_html_chars is not None and self.max_html_chars < 1:
            raise ValueError(f"max_html_chars ({self.max_html_chars}) must be >= 1; use null for no limit")


def extract_text(html: str, cfg: ExtractConfig) -> str:
    """The page's main text, one paragraph per line; "" when nothing survives."""
    if cfg.max_html_chars is not None and len(html) > cfg.max_html_chars:
        raise PageTooLarge(f"page has {len(html)} chars > max_html_chars ({cfg.max_html_chars}); "
                           "raise extract.max_html_chars or drop such pages upstream")
    return _EXTRACTORS[cfg.extractor](html, cfg)


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


_EXTRACTORS: dict[str, Callable[[str, ExtractConfig], str]] = {
    "justext": extract_justext, "trafilatura": extract_trafilatura, "resiliparse": extract_resiliparse}


def _serve(conn: multiprocessing.connection.Connection, cfg: ExtractConfig) -> None:
    """Child loop: receive UTF-8 HTML, reply with a status byte and the text (or the error)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    extract_text("<html><body><p>warm up</p></body></html>", cfg)  # imports and stoplist before "ready"
    conn.send_bytes(_OK)
    while True:
        try:
            html = conn.recv_bytes().decode(*_UTF8)
        except (EOFError, ConnectionResetError):  # the parent closed its end (recycle, shutdown) or died
            return
        try:
            reply = _OK + extract_text(html, cfg).encode(*_UTF8)
        except Exception as exc:  # process boundary: forward any extractor error to the parent by type name
            reply = _FAILED + f"{type(exc).__name__}: {exc}".encode(*_UTF8)
        conn.send_bytes(reply)


def _preload_modules() -> list[str]:
    """Our libraries, and the main module, which each child re-runs as __mp_main__ (cheap once Beam is loaded).

    Only "__main__" names it: preloading its module name too (e.g. pipelines.werp) would import it twice and
    make runpy warn that the module is already in sys.modules."""
    return ["__main__", *_PRELOAD]


class SandboxedExtractor:
    """extract_text with a per-document time limit, in one reused child process (not thread-safe).

    signal.alarm cannot do this: signals reach only the main thread, Beam runs DoFns in worker threads, and a
    thread cannot be killed. So the parser runs in a "forkserver" child (fork would copy the locks of Beam's
    other threads), pages cross a Pipe as UTF-8 bytes, and a page that overruns gets the child replaced."""

    def __init__(self, cfg: ExtractConfig) -> None:
        self.cfg = cfg
        self.docs_in_child, self._ready = 0, False
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None

    def extract(self, html: str) -> str:
        """The page's text; raises ExtractionTimeout, ExtractorCrashed, ExtractorFailed or PageTooLarge."""
        too_large = self.cfg.max_html_chars is not None and len(html) > self.cfg.max_html_chars
        if self.cfg.timeout_s is None or too_large:  # in-process; a page too large raises without being shipped
            return extract_text(html, self.cfg)
        if self._proc is not None and self.docs_in_child >= self.cfg.max_docs_per_child:
            self._stop()
        conn = self._ready_child()
        self.docs_in_child += 1
        try:
            conn.send_bytes(html.encode(*_UTF8))
        except (BrokenPipeError, ConnectionResetError):  # the child died since the last document
            self._crashed("between documents")
        if not conn.poll(self.cfg.timeout_s):
            self._stop()
            self._start()  # now, so that its start-up overlaps the caller's other work
            raise ExtractionTimeout(f"extraction took longer than timeout_s ({self.cfg.timeout_s} s); "
                                    "the child was replaced. Raise extract.timeout_s to allow slower pages")
        reply = self._receive("while extracting")
        text = reply[1:].decode(*_UTF8)
        if reply[:1] == _FAILED:
            raise ExtractorFailed(text)
        return text

    def close(self) -> None:
        self._stop()  # a later extract() starts a new child

    def __enter__(self) -> SandboxedExtractor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The current child's process id, for tests and logs."""
        return None if self._proc is None else self._proc.pid

    def _start(self) -> None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_preload_modules())  # has effect only before the fork server's first start
        self._conn, child_conn = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_serve, args=(child_conn, self.cfg), daemon=True, name="extractor")
        try:
            proc.start()
        finally:
            child_conn.close()  # so that the child's death reads as EOF here
        self._proc, self.docs_in_child, self._ready = proc, 0, False

    def _ready_child(self) -> multiprocessing.connection.Connection:
        """Start a child if needed and wait for its warm-up, which does not count against timeout_s."""
        if self._proc is None:
            self._start()
        if not self._ready and not self._conn.poll(_STARTUP_TIMEOUT_S):
            self._stop()
            raise ExtractorCrashed(f"extractor child not ready after {_STARTUP_TIMEOUT_S} s; see its stderr")
        if not self._ready:
            self._ready = self._receive("while starting") == _OK
        return self._conn

    def _receive(self, when: str) -> bytes:
        try:
            return self._conn.recv_bytes()
        except (EOFError, ConnectionResetError):  # the child died; its end of the socket pair is gone
            self._crashed(when)

    def _crashed(self, when: str) -> NoReturn:
        self._proc.join(timeout=5)
        code = self._proc.exitcode
        self._stop()
        self._start()
        raise ExtractorCrashed(f"extractor child died {when} (exit code {code}); it was replaced")

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
            self._proc.close()
        self._proc, self._conn, self._ready = None, None, False
