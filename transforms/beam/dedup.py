"""Every dedup stage on bounded memory: documents are parked in Parquet once, only keys and ids are shuffled.

Each stage turns the documents into small decisions keyed by the document's order key — exact: the losers;
MinHash: the losers (with their kept twin); paragraph: the contained n-gram counts per paragraph. Meanwhile the
documents are written to temporary Parquet files partitioned by key (transforms/beam/spill.py) instead of going
through a shuffle, which the local runner keeps in memory (~65 KiB per document). Decisions and file paths
meet per partition in one CoGroupByKey; one worker applies a partition's decisions to its files. Stages are
applied in order (exact, MinHash, paragraph) and counted as separate stages. All decisions are computed from the
same input, so a document dropped by one stage still owns its n-grams and shingles in the next; the earliest
copy is the same in every stage, so this changes no keep.
"""
from __future__ import annotations

from typing import Iterator

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.pvalue import TaggedOutput

from core.runners import IN_MEMORY_SHUFFLE
from transforms import stats
from transforms.beam.metrics import Counted, CountingFn
from transforms.beam.minhash_dedup import MinHashLosers
from transforms.beam.paragraph_dedup import ParagraphContainment
from transforms.beam.spill import SpillPartitioned, read_spilled, row_digest
from transforms.beam.stages import REJECTED
from transforms.beam.write import ToRows
from transforms.dedup.config import DedupConfig
from transforms.dedup.exact import REASON_DUPLICATE as EXACT_DUPLICATE, exact_key
from transforms.dedup.order import OrderBy, OrderKey, order_key
from transforms.dedup.paragraph import REASON_DUPLICATE as PARAGRAPH_DUPLICATE, decide, paragraph_windows
from transforms.document import Rejected
from transforms.filters.evidence import Evidence, compared
from transforms.io.parquet import document_schema
from transforms.text import TextView

EXACT, MINHASH, PARAGRAPH = "dedup_exact", "dedup_minhash", "dedup_paragraph"  # stage names in the report
DUPLICATE = {EXACT: EXACT_DUPLICATE, MINHASH: "minhash.near_duplicate", PARAGRAPH: PARAGRAPH_DUPLICATE}
PARAGRAPHS_REMOVED, DOCS_EDITED = "paragraphs_removed", "docs_edited"
CONTAINED = "paragraph_contained_ngram_fraction"  # n-grams an earlier document owns / the document's n-grams
NOTES = {EXACT: "the same normalised text as an earlier document", MINHASH: "a near-duplicate of an earlier document"}
# Exchanging n-grams through files writes one file per batch and bucket: 256 buckets keep files ~100 KiB while a
# bucket stays small up to ~10^7 documents (beyond that, use the shuffle of a cluster runner).
FILES_BUCKET_BITS = 8


class KeepEarliest(beam.CombineFn):
    """Accumulator (earliest order key, [later ones]); a combine, so lifting shrinks the shuffle."""

    def create_accumulator(self):
        return (None, [])

    def add_input(self, acc, key):
        return self.merge_accumulators([acc, (key, [])])

    def merge_accumulators(self, accs):
        best, losers = None, []
        for cand, others in accs:
            losers.extend(others)
            if cand is None or cand == best:  # the same record twice is not its own duplicate
                continue
            if best is None or cand < best:
                best, cand = cand, best
            if cand is not None:
                losers.append(cand)
        return (best, losers)

    def extract_output(self, acc):
        return acc


class ExactLosers(beam.PTransform):
    """Documents -> (order key, None) for every document whose normalised text an earlier one has."""

    def __init__(self, *, order_by: OrderBy) -> None:
        super().__init__()
        self.order_by = order_by

    def expand(self, docs):
        return (docs
                | "Key" >> beam.Map(lambda d, o: (exact_key(d.text), order_key(d.id, d.warc_date, o)), self.order_by)
                | "KeepEarliest" >> beam.CombinePerKey(KeepEarliest())
                | "Losers" >> beam.FlatMap(lambda kv: ((loser, None) for loser in kv[1][1])))


class ApplyPartition(CountingFn):
    """One partition: its decisions in a dict, its spilled rows streamed through every stage in order."""

    def __init__(self, cfg: DedupConfig, *, emit_rejected: bool) -> None:
        self.cfg, self.emit_rejected = cfg, emit_rejected

    def setup(self) -> None:
        self.counters = {stage: self.stage_counters(stage) for stage in self.cfg.stages}

    def process(self, kv) -> Iterator:
        _, grouped = kv
        decisions: dict[OrderKey, dict[str, object]] = {}
        for key, stage, value in grouped["decisions"]:
            decisions.setdefault(key, {})[stage] = value
        first = self.counters[self.cfg.stages[0]]  # reading the spilled rows is timed as the first stage's work
        for path in sorted(grouped["files"]):
            first.start_clock()
            for row in read_spilled(path):
                first.stop_clock()
                yield from self._apply(row, decisions.get(order_key(row["id"], row["warc_date"], self.cfg.order_by), {}))
                first.start_clock()
            first.stop_clock()

    def _apply(self, row: dict, decided: dict[str, object]) -> Iterator:
        """One row through every stage in order, each stage timed apart; the clock stops before a yield."""
        words = stats.word_count(row["text"])
        for stage in self.cfg.stages:
            counters = self.counters[stage]
            counters.start_clock()
            counters.count_in(row["char_count"], words=words)
            if stage in decided:
                if stage != PARAGRAPH:
                    yield from self._reject(stage, row, DUPLICATE[stage])
                    return
                decision = decide(row["text"], decided[stage], self.cfg.paragraph)
                if decision.dropped:
                    evidence = self._paragraph_evidence(row["text"], decided[stage]) if self.emit_rejected else None
                    yield from self._reject(stage, row, DUPLICATE[stage], evidence=evidence)
                    return
                if decision.removed_paragraphs:
                    counters.count_edit(PARAGRAPHS_REMOVED, decision.removed_paragraphs)
                    counters.count_edit(DOCS_EDITED)
                    row = dict(row, text=decision.text, char_count=len(decision.text),
                               word_count=len(TextView(decision.text).words))
                    words = stats.word_count(row["text"])
            counters.count_out(row["char_count"], words=words)
            counters.stop_clock()
        yield row

    def _reject(self, stage: str, row: dict, reason: str, *, evidence: Evidence | None = None) -> Iterator[TaggedOutput]:
        self.counters[stage].count_dropped(reason)
        self.counters[stage].stop_clock()
        if self.emit_rejected:
            columns = (evidence or Evidence(evidence=NOTES.get(stage))).columns()
            yield TaggedOutput(REJECTED, Rejected(id=row["id"], url=row["url"], stage=stage, reason=reason,
                                                  text=row["text"], **columns))

    def _paragraph_evidence(self, text: str, contained: dict[int, int]) -> Evidence:
        """The document test that dropped it: the fraction of its n-grams an earlier document owns (BFF)."""
        grams, _, _ = paragraph_windows(text, self.cfg.paragraph.ngram)
        value, limit = sum(contained.values()) / grams.size, self.cfg.paragraph.document_threshold
        return Evidence(CONTAINED, value, limit, compared(CONTAINED, value, ">", limit))


def exchanges_through_files(ngram_exchange: str, options: PipelineOptions) -> bool:
    """ngram_exchange "auto": through files on a runner that holds its shuffle in memory (paragraph n-gram rows,
    ~1 per token, would not fit), else through the shuffle."""
    if ngram_exchange == "auto":
        return options.view_as(StandardOptions).runner in IN_MEMORY_SHUFFLE
    return ngram_exchange == "files"


class Dedup(beam.PTransform):
    """Documents -> deduplicated rows (tagged `rows`) and the dropped documents (tagged `rejected`)."""

    def __init__(self, cfg: DedupConfig, *, spill_prefix: str, stat_names: tuple[str, ...], codec: str,
                 emit_rejected: bool) -> None:
        super().__init__()
        self.cfg, self.spill_prefix, self.stat_names, self.codec = cfg, spill_prefix, stat_names, codec
        self.emit = emit_rejected

    def expand(self, docs):
        cfg, decisions = self.cfg, []
        if cfg.exact:
            decisions.append(docs | "ExactLosers" >> ExactLosers(order_by=cfg.order_by)
                             | "TagExact" >> beam.Map(lambda kv: (kv[0], EXACT, None)))
        if cfg.minhash is not None:
            decisions.append(docs | "MinHashLosers" >> MinHashLosers(cfg.minhash, order_by=cfg.order_by,
                                                                     rounds=cfg.minhash_rounds,
                                                                     verify=cfg.minhash_verify)
                             | "TagMinHash" >> beam.Map(lambda kv: (kv[0], MINHASH, kv[1])))
        if cfg.paragraph is not None:
            files = exchanges_through_files(cfg.ngram_exchange, docs.pipeline.options)
            decisions.append(docs | "ParagraphContainment" >> ParagraphContainment(
                cfg.paragraph, order_by=cfg.order_by,
                bucket_bits=min(cfg.bucket_bits, FILES_BUCKET_BITS) if files else cfg.bucket_bits,
                exchange_prefix=f"{self.spill_prefix.rstrip('/')}/ngrams" if files else None)
                             | "TagParagraph" >> beam.Map(lambda kv: (kv[0], PARAGRAPH, kv[1])))
        parts = cfg.join_partitions
        by_partition = (decisions | "Decisions" >> beam.Flatten()
                        | "DecisionPartition" >> beam.Map(lambda d, n: (d[0][1] % n, d), parts))
        files = (docs
                 | "ToRows" >> ToRows(self.stat_names)
                 | "Spill" >> beam.ParDo(SpillPartitioned(self.spill_prefix, document_schema(self.stat_names),
                                                          partitions=parts, partition_of=row_digest, codec=self.codec)))
        applied = ({"files": files, "decisions": by_partition}
                   | "JoinByPartition" >> beam.CoGroupByKey()
                   | "Apply" >> Counted(ApplyPartition(cfg, emit_rejected=self.emit), tags=(REJECTED,)))
        rows, rejected = applied
        return {"rows": rows, REJECTED: rejected}
