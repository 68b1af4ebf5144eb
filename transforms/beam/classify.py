"""The quality classifier as Beam stages: score every document, keep by threshold or by a top fraction of tokens.

Threshold mode is one DoFn. Top-fraction mode (BETR keeps the best-scored 10% of tokens) needs the score
distribution of the whole corpus before the first document can be judged: scores go to a fixed-size histogram
(one CombineGlobally), while the scored rows wait in Parquet files (transforms/beam/spill.py) — not in the
runner's memory — and are read back through the threshold it yields. Tokens are counted as words, the unit
every other stage reports.
"""
from __future__ import annotations

import os
import tempfile
from typing import Iterator

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsSingleton

from transforms import stats
from transforms.beam.metrics import Counted
from transforms.beam.spill import SpillPartitioned, read_spilled, row_digest
from transforms.beam.stages import REJECTED, StageFn
from transforms.beam.write import ToRows
from transforms.document import Document
from transforms.filters.base import Verdict
from transforms.filters.evidence import Evidence, compared
from transforms.io.parquet import document_schema
from transforms.quality.classifier import SCORE, ClassifierConfig, ScoreHistogram, load_model, score
from transforms.text import TextView

STAGE = "classifier"
BELOW_THRESHOLD, BELOW_TOP_FRACTION = "classifier.below_threshold", "classifier.below_top_fraction"
SPILL_PARTITIONS = 16  # files per flush while the threshold is computed; only parallelism of the read-back


def local_model(path: str) -> str:
    """A local path to the model: remote files (gs://, s3://) are copied once per worker process."""
    if os.path.exists(path):
        return path
    target = os.path.join(tempfile.gettempdir(), "refinery-models", os.path.basename(path))
    if not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with FileSystems.open(path) as src, open(f"{target}.part", "wb") as dst:
            dst.write(src.read())
        os.replace(f"{target}.part", target)
    return target


class ScoreFn(StageFn):
    """Stores the positive-label probability; in threshold mode also drops what falls below it."""

    STAGE = STAGE
    cfg: ClassifierConfig

    def setup(self) -> None:
        super().setup()
        self.model = load_model(local_model(self.cfg.model_path))
        labels = self.model.get_labels()
        if self.cfg.label not in labels:  # fail on the first worker, not on every document
            raise ValueError(f"classifier.label {self.cfg.label!r} is not a label of {self.cfg.model_path}; "
                             f"its labels are {', '.join(labels)}")

    def process(self, doc: Document) -> Iterator:
        self.counters.start_clock()
        chars, words = len(doc.text), stats.word_count(doc.text)
        self.counters.count_in(chars, words=words)
        value = doc.stats[SCORE] = score(self.model, doc.text, self.cfg.label)
        self.counters.observe(SCORE, value)
        if self.cfg.mode == "top_fraction":
            self.counters.stop_clock()
            yield doc  # judged (and counted out) once the corpus-wide threshold is known
            return
        keep = value >= self.cfg.threshold
        evidence = None if keep else below(value, self.cfg.threshold)
        yield from self.route(Verdict(None if keep else BELOW_THRESHOLD), doc, chars=chars, words=words,
                              text=doc.text, evidence=evidence)


def below(value: float, threshold: float) -> Evidence:
    """A classifier drop's evidence: the score under the threshold (the recipe's, or the corpus-wide one)."""
    return Evidence(SCORE, value, threshold, compared(SCORE, value, "<", threshold))


class TokenHistogram(beam.CombineFn):
    """(score, tokens) -> the lowest score kept so that the kept documents hold the top fraction of tokens."""

    def __init__(self, top_fraction: float) -> None:
        self.top_fraction = top_fraction

    def create_accumulator(self) -> ScoreHistogram:
        return ScoreHistogram()

    def add_input(self, acc: ScoreHistogram, score_tokens: tuple[float, int]) -> ScoreHistogram:
        acc.add(*score_tokens)
        return acc

    def merge_accumulators(self, accs) -> ScoreHistogram:
        first, *rest = accs
        return first.merge(rest)

    def extract_output(self, acc: ScoreHistogram) -> float:
        return acc.threshold(self.top_fraction) if acc.total else 0.0


class KeepTopFn(StageFn):
    """Reads a spilled file back and keeps the rows at or above the corpus-wide threshold."""

    STAGE = STAGE

    def process(self, part_path: tuple[int, str], threshold: float) -> Iterator:
        self.counters.start_clock()
        for row in read_spilled(part_path[1]):
            value = row["filter_stats"][SCORE]
            if value >= threshold:
                self.counters.count_out(row["char_count"], words=stats.word_count(row["text"]))
                self.counters.stop_clock()
                yield row
            else:
                yield from self.reject(row["id"], row["url"], BELOW_TOP_FRACTION, row["text"],
                                       evidence=below(value, threshold))
            self.counters.start_clock()
        self.counters.stop_clock()


def words_of(doc: Document) -> int:
    return doc.word_count if doc.word_count is not None else len(TextView(doc.text).words)


class Classify(beam.PTransform):
    """Documents -> rows the classifier keeps (tagged `rows`) and the ones it drops (tagged `rejected`)."""

    def __init__(self, cfg: ClassifierConfig, *, stat_names: tuple[str, ...], spill_prefix: str, codec: str,
                 emit_rejected: bool) -> None:
        super().__init__()
        self.cfg, self.stat_names, self.spill_prefix, self.codec = cfg, stat_names, spill_prefix, codec
        self.emit = emit_rejected

    def expand(self, docs):
        scored, rejected = docs | "Score" >> Counted(ScoreFn(self.cfg, emit_rejected=self.emit), tags=(REJECTED,))
        rows = scored | "ToRows" >> ToRows(self.stat_names)
        if self.cfg.mode == "threshold":
            return {"rows": rows, REJECTED: rejected}
        threshold = (scored
                     | "ScoreTokens" >> beam.Map(lambda d: (d.stats[SCORE], words_of(d)))
                     | "Histogram" >> beam.CombineGlobally(TokenHistogram(self.cfg.top_token_fraction)))
        files = rows | "Spill" >> beam.ParDo(SpillPartitioned(
            self.spill_prefix, document_schema(self.stat_names), partitions=SPILL_PARTITIONS,
            partition_of=row_digest, codec=self.codec))
        kept, dropped = (files
                         | "Reshuffle" >> beam.Reshuffle()
                         | "KeepTop" >> Counted(KeepTopFn(self.cfg, emit_rejected=self.emit), AsSingleton(threshold),
                                                tags=(REJECTED,)))
        return {"rows": kept, REJECTED: (rejected, dropped) | "AllRejected" >> beam.Flatten()}
