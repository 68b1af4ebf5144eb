"""DoFns for the per-document stages of the web pipeline: URL filter, extraction, language ID, quality steps.

Each is a thin shell: the decision is a pure function of transforms/, the DoFn counts what goes in and out
(transforms.stats names) and routes drops to the `rejected` output with the stage and reason.
"""
from __future__ import annotations

import logging
from typing import Iterator

from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import TaggedOutput

from core.resources import resolve_resource
from transforms.beam.metrics import CountingFn, Progress
from transforms.document import Document, Page, Rejected
from transforms.extract import ExtractConfig, ExtractionTimeout, ExtractorCrashed, ExtractorFailed, PageTooLarge
from transforms.extract_sandbox import SandboxedExtractor
from transforms.filters.base import ConfiguredStep, apply_steps
from transforms.filters.url import UrlFilterConfig, check_url, load_url_lists
from transforms.langid import LangIdConfig, check_language, load_identifier
from transforms.text import TextView

REJECTED = "rejected"
WET_EXTRACTOR = "wet"  # Document.extractor of text taken as is from a WET conversion record
log = logging.getLogger(__name__)


def read_text(path: str) -> str:
    """Read a list or small file from any Beam filesystem (local, gs://, s3://, hdfs://)."""
    with FileSystems.open(resolve_resource(path)) as fh:
        return fh.read().decode("utf-8")


class StageFn(CountingFn):
    """Counters and rejected routing shared by every stage."""

    STAGE = ""  # the stage name in counters and the report; set by each subclass

    def __init__(self, cfg, *, emit_rejected: bool) -> None:
        self.stage, self.cfg, self.emit_rejected = self.STAGE, cfg, emit_rejected

    def setup(self) -> None:
        self.counters = self.stage_counters(self.stage)

    def route(self, verdict, element, *, chars: int, text: str = "") -> Iterator:
        """Yield the element if the verdict keeps it, else its rejection; count either way."""
        if verdict.keep:
            self.counters.count_out(chars)
            yield element
        else:
            yield from self.reject(element.id, element.url, verdict.reason, text)

    def reject(self, doc_id: str, url: str, reason: str, text: str = "") -> Iterator[TaggedOutput]:
        self.counters.count_dropped(reason)
        if self.emit_rejected:
            yield TaggedOutput(REJECTED, Rejected(id=doc_id, url=url, stage=self.stage, reason=reason, text=text))


class UrlFilterFn(StageFn):
    """Drops pages by URL before they cost an extraction."""

    STAGE = "url"
    cfg: UrlFilterConfig

    def setup(self) -> None:
        super().setup()
        self.lists = load_url_lists(self.cfg, read_text=read_text)

    def process(self, page: Page) -> Iterator:
        self.counters.count_in(len(page.html))
        yield from self.route(check_url(page.url, self.lists, self.cfg), page, chars=len(page.html))


class ExtractFn(StageFn):
    """HTML to text in a time-limited sandbox; raw HTML stops here, only text crosses later shuffles."""

    STAGE = "extract"
    cfg: ExtractConfig

    def setup(self) -> None:
        super().setup()
        self.extractor = SandboxedExtractor(self.cfg)
        self.progress = Progress(self.stage)

    def teardown(self) -> None:
        self.extractor.close()

    def process(self, page: Page) -> Iterator:
        self.counters.count_in(len(page.html))
        self.progress.tick()
        if page.is_text:  # a WET conversion record: Common Crawl extracted it already
            text, reason = page.html, ""
        else:
            text, reason = self._extract(page)
        if not reason and not text.strip():
            reason = "extract.empty"
        if reason:
            yield from self.reject(page.id, page.url, reason)
            return
        self.counters.count_out(len(text))
        yield Document(id=page.id, url=page.url, warc_date=page.warc_date, text=text, source=page.source,
                       extractor=WET_EXTRACTOR if page.is_text else self.cfg.extractor)

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
        self.counters.count_in(len(doc.text))
        doc.language, doc.language_score = self.identifier.predict(doc.text)
        verdict = check_language(doc.language, doc.language_score, cfg=self.cfg)
        yield from self.route(verdict, doc, chars=len(doc.text), text=doc.text)


class QualityStepsFn(StageFn):
    """Runs the recipe's filters and line editors in order over one shared split of the text."""

    STAGE = "quality"  # each step counts under its own name; the config is the recipe's step list

    def __init__(self, steps: tuple[ConfiguredStep, ...], *, emit_rejected: bool) -> None:
        super().__init__(steps, emit_rejected=emit_rejected)
        self.steps = steps

    def setup(self) -> None:
        super().setup()
        self.step_counters = [self.stage_counters(s.spec.name) for s in self.steps]

    def process(self, doc: Document) -> Iterator:
        chars_in, view = len(doc.text), TextView(doc.text)
        for (step, verdict, view), counters in zip(apply_steps(view, self.steps), self.step_counters):
            counters.count_in(chars_in)
            doc.stats.update(verdict.stats)
            if not verdict.keep:
                counters.count_dropped(verdict.reason)
                if self.emit_rejected:
                    yield TaggedOutput(REJECTED, Rejected(doc.id, doc.url, step.spec.name, verdict.reason, view.text))
                return
            counters.count_out(chars_in := len(view.text))
        doc.text, doc.word_count = view.text, len(view.words)  # words are cached by the filters already
        yield doc
