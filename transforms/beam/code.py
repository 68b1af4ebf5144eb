"""The per-sample stages of swallowcode: language, syntax and pylint filters, and the final check of rewrites.

Each is a thin shell over transforms/code/: the decision is a pure function; the DoFn counts what goes in and
out and routes drops to `rejected` with the reason. pylint runs in a pool of worker processes (LintPool) fed in
batches, so a Beam worker lints on every core it has without a subprocess per snippet.
"""
from __future__ import annotations

import time
from typing import Iterator

from apache_beam.pvalue import TaggedOutput

from transforms import stats
from transforms.beam.buffered import BufferingFn
from transforms.beam.stages import REJECTED, StageFn
from transforms.code.lint import LintConfig, comment_penalty, final_score, keep
from transforms.code.lint_pool import LintPool
from transforms.code.syntax import SyntaxConfig, check_syntax
from transforms.document import Rejected
from transforms.filters.base import Verdict
from transforms.filters.evidence import Evidence, compared
from transforms.io.samples import Sample

OTHER_LANGUAGE = "language.other"


class LanguageFn(StageFn):
    """Keeps samples whose language column is one of the recipe's (case-insensitive)."""

    STAGE = "language"

    def setup(self) -> None:
        super().setup()
        self.allowed = {lang.lower() for lang in self.cfg}

    def process(self, sample: Sample) -> Iterator:
        self.counters.start_clock()
        chars, words = len(sample.text), stats.word_count(sample.text)
        self.counters.count_in(chars, words=words)
        verdict = Verdict(None if sample.language.lower() in self.allowed else OTHER_LANGUAGE)
        evidence = None if verdict.keep else Evidence(evidence=f"language {sample.language!r} not in {list(self.cfg)}")
        yield from self.route(verdict, sample, chars=chars, words=words, evidence=evidence)


class SyntaxFn(StageFn):
    """compile() without running; the error (and the Python version) is stored with the sample. As the final
    check of rewrites it only records and counts: SwallowCode kept rewrites that do not compile."""

    STAGE = "syntax"
    cfg: SyntaxConfig

    def __init__(self, cfg: SyntaxConfig, *, emit_rejected: bool, final: bool = False) -> None:
        super().__init__(cfg, emit_rejected=emit_rejected)
        self.final = final
        self.stage, self.column = ("final_syntax", "final_syntax_error") if final else ("syntax", "syntax_error")

    def process(self, sample: Sample) -> Iterator:
        self.counters.start_clock()
        chars, words = len(sample.text), stats.word_count(sample.text)
        self.counters.count_in(chars, words=words)
        result = check_syntax(sample.text, cfg=self.cfg)
        sample.extra.update({self.column: result.error, "python": result.python})
        if self.final and not result.ok:
            self.counters.count(f"failing.{result.reason}")
        verdict = Verdict(None if self.final else result.reason)
        evidence = None if verdict.keep else Evidence(evidence=result.error)
        yield from self.route(verdict, sample, chars=chars, words=words, text=sample.text, evidence=evidence)


class LintFn(BufferingFn):
    """Batches of samples through the pylint pool; SwallowCode's penalised score decides (or is only recorded)."""

    def __init__(self, cfg: LintConfig, *, stage: str, column: str, filter: bool, emit_rejected: bool) -> None:
        super().__init__(limit=cfg.batch_size)
        self.cfg, self.stage, self.column, self.filter, self.emit_rejected = cfg, stage, column, filter, emit_rejected

    def setup(self) -> None:
        self.counters = self.stage_counters(self.stage)
        self.pool = LintPool(self.cfg)

    def teardown(self) -> None:
        self.pool.close()

    def process(self, sample: Sample) -> Iterator:
        self.counters.count_in(len(sample.text), words=stats.word_count(sample.text))
        yield from self.buffer(sample, 1)

    def flush(self, samples: list[Sample]) -> Iterator:
        started = time.perf_counter_ns()
        results = self.pool.lint_many([s.text for s in samples])
        self.counters.add_time_ns(time.perf_counter_ns() - started)  # the pool's wall time: the lint work itself
        for sample, result in zip(samples, results):
            score = None if result.reason else final_score(result.score, comment_penalty(sample.text))
            sample.extra[self.column] = score
            if score is not None:
                self.counters.observe(self.column, score)
            reason = result.reason or keep(score, cfg=self.cfg)[1]
            if reason and self.filter:
                self.counters.count_dropped(reason)
                if self.emit_rejected:
                    yield TaggedOutput(REJECTED, Rejected(sample.id, sample.source, self.stage, reason, sample.text,
                                                          **lint_evidence(self.column, score, self.cfg).columns()))
                continue
            if reason:
                self.counters.count(f"failing.{reason}")  # recorded and kept: the final check of rewrites
            self.counters.count_out(len(sample.text), words=stats.word_count(sample.text))
            yield sample


def lint_evidence(column: str, score: float | None, cfg: LintConfig) -> Evidence:
    """A lint drop's evidence: the penalised score under the recipe's minimum (none when pylint gave no score)."""
    if score is None:
        return Evidence()
    return Evidence(column, score, cfg.min_score, compared(column, score, "<", cfg.min_score))
