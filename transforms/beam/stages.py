"""DoFns for the per-document stages of the web pipeline: URL filter, extraction, language ID, quality steps.

Each is a thin shell: the decision is a pure function of transforms/, the DoFn counts what goes in and out
(transforms.stats names) and routes drops to the `rejected` output with the stage and reason.
"""
from __future__ import annotations

import logging
import time
from typing import Iterator, Mapping

from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import TaggedOutput

from core.resources import resolve_resource
from transforms import stats
from transforms.beam.metrics import CountingFn, Progress, StageCounters
from transforms.document import Document, Page, Rejected
from transforms.extract import ExtractConfig, ExtractionTimeout, ExtractorCrashed, ExtractorFailed, PageTooLarge
from transforms.extract_sandbox import SandboxedExtractor
from transforms.filters import url
from transforms.filters.base import ConfiguredStep, apply_steps
from transforms.filters.evidence import Evidence, evidence_of
from transforms.filters.registry import edit_totals, evidence_rules
from transforms.filters.url import UrlFilterConfig, check_url, load_url_lists
from transforms.langid import STAT_NAMES, LangIdConfig, check_language, language_evidence, load_identifier
from transforms.page_language import other_language_text
from transforms.text import TextView

REJECTED = "rejected"
DOCS_EDITED, LINES_REMOVED = "docs_edited", "lines_removed"  # edit totals of line editors (as dedup's names)
WET_EXTRACTOR = "wet"  # Document.extractor of text taken as is from a WET conversion record
log = logging.getLogger(__name__)


def read_text(path: str) -> str:
    """Read a list or small file from any Beam filesystem (local, gs://, s3://, hdfs://)."""
    with FileSystems.open(resolve_resource(path)) as fh:
        return fh.read().decode("utf-8")


class StageFn(CountingFn):
    """Counters and rejected routing shared by every stage; each `process` starts the stage's clock and
    `route`/`reject` stop it before yielding, so the stages fused after this one are not timed here."""

    STAGE = ""  # the stage name in counters and the report; set by each subclass

    def __init__(self, cfg, *, emit_rejected: bool) -> None:
        self.stage, self.cfg, self.emit_rejected = self.STAGE, cfg, emit_rejected

    def setup(self) -> None:
        self.counters = self.stage_counters(self.stage)

    def route(self, verdict, element, *, chars: int, text: str = "", words: int | None = None,
              evidence: Evidence | None = None) -> Iterator:
        """Yield the element if the verdict keeps it, else its rejection; count either way."""
        if verdict.keep:
            self.counters.count_out(chars, words=words)
            self.counters.stop_clock()
            yield element
        else:
            yield from self.reject(element.id, element.url, verdict.reason, text, evidence=evidence)

    def reject(self, doc_id: str, url: str, reason: str, text: str = "", *,
               evidence: Evidence | None = None) -> Iterator[TaggedOutput]:
        self.counters.count_dropped(reason)
        self.counters.stop_clock()
        if self.emit_rejected:
            columns = evidence.columns() if evidence is not None else {}
            yield TaggedOutput(REJECTED, Rejected(id=doc_id, url=url, stage=self.stage, reason=reason, text=text,
                                                  **columns))


class UrlFilterFn(StageFn):
    """Drops pages by URL before they cost an extraction."""

    STAGE = "url"
    cfg: UrlFilterConfig

    def setup(self) -> None:
        super().setup()
        self.lists = load_url_lists(self.cfg, read_text=read_text)

    def process(self, page: Page) -> Iterator:
        self.counters.start_clock()
        self.counters.count_in(len(page.html))
        verdict = check_url(page.url, self.lists, self.cfg)
        evidence = None if verdict.keep else evidence_of(verdict.reason, verdict.stats, self.cfg,
                                                         rules=url.EVIDENCE, notes=url.NOTES)
        yield from self.route(verdict, page, chars=len(page.html), evidence=evidence)


class ExtractFn(StageFn):
    """HTML to text in a time-limited sandbox; raw HTML stops here, only text crosses later shuffles.

    With the recipe's language ID (`langid`), an empty extraction of a page in another language goes on with
    the page's visible text, so the langid stage drops it as a language drop (transforms/page_language.py)."""

    STAGE = "extract"
    cfg: ExtractConfig

    def __init__(self, cfg: ExtractConfig, *, emit_rejected: bool, langid: LangIdConfig | None = None) -> None:
        super().__init__(cfg, emit_rejected=emit_rejected)
        self.langid = langid

    def setup(self) -> None:
        super().setup()
        self.extractor = SandboxedExtractor(self.cfg)
        self.progress = Progress(self.stage)
        self.identifier = load_identifier(self.langid) if self.langid is not None else None

    def teardown(self) -> None:
        self.extractor.close()

    def process(self, page: Page) -> Iterator:
        self.counters.start_clock()
        self.counters.count_in(len(page.html))
        self.progress.tick()
        if page.is_text:  # a WET conversion record: Common Crawl extracted it already
            text, reason = page.html, ""
        else:
            text, reason = self._extract(page)
        if not reason and not text.strip():
            text = self._other_language(page)
            reason = "" if text else "extract.empty"
        if reason:
            yield from self.reject(page.id, page.url, reason)
            return
        self.counters.count_out(len(text), words=stats.word_count(text))
        self.counters.stop_clock()
        yield Document(id=page.id, url=page.url, warc_date=page.warc_date, text=text, source=page.source,
                       extractor=WET_EXTRACTOR if page.is_text else self.cfg.extractor)

    def _other_language(self, page: Page) -> str:
        """The visible text of an emptied page that is not in a kept language (counted), else ""."""
        if self.identifier is None or page.is_text:
            return ""
        text = other_language_text(page.html, identifier=self.identifier, languages=self.langid.languages)
        if text:
            self.counters.count("other_language_visible_text")
        return text

    def _extract(self, page: Page) -> tuple[str, str]:
        """(text, "") or ("", the drop reason)."""
        try:
            return self.extractor.extract(page.html), ""
        except ExtractionTimeout:
            log.warning("extraction took over %s s, skipped: %s", self.cfg.timeout_s, page.url)
            return "", "extract.timeout"
        except PageTooLarge:
            return "", "extract.too_large"
        except ExtractorCrashed:
            log.warning("extractor process died on %s; restarted", page.url)
            return "", "extract.crashed"
        except ExtractorFailed as exc:  # the parser's own exception on this page, named by type
            return "", f"extract.error.{exc.exc_type}"


class LangIdFn(StageFn):
    """Keeps the configured languages above the score threshold, storing language and score."""

    STAGE = "langid"
    cfg: LangIdConfig

    def setup(self) -> None:
        super().setup()
        self.identifier = load_identifier(self.cfg)

    def process(self, doc: Document) -> Iterator:
        self.counters.start_clock()
        chars, words = len(doc.text), stats.word_count(doc.text)
        self.counters.count_in(chars, words=words)
        doc.language, doc.language_score = self.identifier.predict(doc.text)
        self.counters.observe(STAT_NAMES[0], doc.language_score)
        verdict = check_language(doc.language, doc.language_score, cfg=self.cfg)
        evidence = None if verdict.keep else language_evidence(doc.language, doc.language_score, cfg=self.cfg)
        yield from self.route(verdict, doc, chars=chars, words=words, text=doc.text, evidence=evidence)


class QualityStepsFn(StageFn):
    """Runs the recipe's filters and line editors in order over one shared split of the text; each step is
    counted and timed under its own name, with its edits totalled (lines removed, PII replaced)."""

    STAGE = "quality"  # each step counts under its own name; the config is the recipe's step list

    def __init__(self, steps: tuple[ConfiguredStep, ...], *, emit_rejected: bool) -> None:
        super().__init__(steps, emit_rejected=emit_rejected)
        self.steps = steps

    def setup(self) -> None:
        super().setup()
        self.step_counters = [self.stage_counters(s.spec.name) for s in self.steps]
        self.rules, self.notes = evidence_rules()
        totals = edit_totals()
        self.totals = [tuple((stat, totals[stat]) for stat in s.spec.stat_names if stat in totals) for s in self.steps]

    def process(self, doc: Document) -> Iterator:
        started = time.perf_counter_ns()
        before = view = TextView(doc.text)
        chars, words = len(doc.text), len(view.whitespace_words)
        steps = zip(apply_steps(view, self.steps), self.step_counters, self.totals)
        for (step, verdict, view), counters, totals in steps:
            counters.count_in(chars, words=words)
            doc.stats.update(verdict.stats)
            if not verdict.keep:
                counters.count_dropped(verdict.reason)
                counters.add_time_ns(time.perf_counter_ns() - started)
                if self.emit_rejected:
                    evidence = evidence_of(verdict.reason, verdict.stats, step.config, rules=self.rules,
                                           notes=self.notes)
                    yield TaggedOutput(REJECTED, Rejected(doc.id, doc.url, step.spec.name, verdict.reason, view.text,
                                                          **evidence.columns()))
                return
            count_edits(counters, verdict.stats, totals, before=before, after=view)
            chars, words, before = len(view.text), len(view.whitespace_words), view
            counters.count_out(chars, words=words)
            now = time.perf_counter_ns()
            counters.add_time_ns(now - started)
            started = now
        doc.text, doc.word_count = view.text, len(view.words)  # words are cached by the filters already
        yield doc


def count_edits(counters: StageCounters, step_stats: Mapping[str, float], totals: tuple[tuple[str, str], ...], *,
                before: TextView, after: TextView) -> None:
    """An editor's edits of a kept document: replacements by kind, non-blank lines removed, documents edited."""
    for stat, name in totals:
        if n := int(step_stats.get(stat, 0)):
            counters.count_edit(name, n)
    if after is before:
        return
    counters.count_edit(DOCS_EDITED)
    if removed := len(before.nonblank_lines) - len(after.nonblank_lines):
        counters.count_edit(LINES_REMOVED, removed)
