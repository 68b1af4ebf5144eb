"""Exact dedup that keeps memory flat: texts are spilled to Parquet once, only keys and ids are shuffled.

The copies of a text meet on its 16-byte key; the smallest id survives. Shuffling whole documents would make
the local runner (which keeps shuffle data in memory) grow by ~65 KiB per document, so the documents go to
temporary Parquet shards instead, streamed with bounded row groups, and are read back through a filter that
knows the (few) losing ids.
"""
from __future__ import annotations

from typing import Iterator

import apache_beam as beam
from apache_beam.io.parquetio import ReadAllFromParquet, WriteToParquet
from apache_beam.pvalue import TaggedOutput

from transforms.beam.metrics import StageCounters
from transforms.beam.stages import REJECTED
from transforms.beam.write import ToRows
from transforms.dedup.exact import REASON_DUPLICATE, exact_key, keeps_over
from transforms.document import Document, Rejected
from transforms.io.parquet import document_schema

STAGE = "dedup_exact"
# Row groups of the spill files: reading one back materialises it as Python rows, so keep them small.
SPILL_ROW_GROUP_BYTES = 8 << 20


class KeepSmallestId(beam.CombineFn):
    """Accumulator (survivor, [losers]) of (id, url, chars) tuples; a combine, so lifting shrinks the shuffle."""

    def create_accumulator(self):
        return (None, [])

    def add_input(self, acc, ref):
        return self.merge_accumulators([acc, (ref, [])])

    def merge_accumulators(self, accs):
        best, losers = None, []
        for cand, others in accs:
            losers.extend(others)
            if cand is None:
                continue
            if best is None or keeps_over(cand[0], best[0]):
                if best is not None:
                    losers.append(best)
                best = cand
            else:
                losers.append(cand)
        return (best, losers)

    def extract_output(self, acc):
        return acc


class KeyFn(beam.DoFn):
    """(key, (id, url, chars)) per document: all the shuffle carries."""

    def setup(self) -> None:
        self.counters = StageCounters(STAGE)

    def process(self, doc: Document) -> Iterator:
        self.counters.count_in(len(doc.text))
        yield exact_key(doc.text), (doc.id, doc.url, len(doc.text))


class EmitLosers(beam.DoFn):
    """The ids that lose to an earlier copy, counted, and routed to the audit trail."""

    def __init__(self, *, emit_rejected: bool) -> None:
        self.emit_rejected = emit_rejected

    def setup(self) -> None:
        self.counters = StageCounters(STAGE)

    def process(self, keyed) -> Iterator:
        _, (_, losers) = keyed
        for doc_id, url, _ in losers:
            self.counters.count_dropped(REASON_DUPLICATE)
            if self.emit_rejected:
                yield TaggedOutput(REJECTED, Rejected(id=doc_id, url=url, stage=STAGE, reason=REASON_DUPLICATE))
            yield doc_id


class DropLosers(beam.DoFn):
    """Rows whose id did not lose; the loser ids arrive as a side input, turned into a set once."""

    def setup(self) -> None:
        self.counters = StageCounters(STAGE)
        self._source, self._losers = None, frozenset()

    def process(self, row: dict, losers: list[str]) -> Iterator[dict]:
        if losers is not self._source:
            self._source, self._losers = losers, frozenset(losers)
        if row["id"] not in self._losers:
            self.counters.count_out(row["char_count"])
            yield row


class DedupExact(beam.PTransform):
    """Documents -> rows, one per normalised text; outputs tagged `rows` and `rejected`."""

    def __init__(self, *, spill_prefix: str, stat_names: tuple[str, ...], codec: str, emit_rejected: bool) -> None:
        super().__init__()
        self.spill_prefix, self.stat_names, self.codec, self.emit = spill_prefix, stat_names, codec, emit_rejected

    def expand(self, docs):
        losers = (docs
                  | "Key" >> beam.ParDo(KeyFn())
                  | "KeepSmallestId" >> beam.CombinePerKey(KeepSmallestId())
                  | "Losers" >> beam.ParDo(EmitLosers(emit_rejected=self.emit)).with_outputs(REJECTED, main="ids"))
        spilled = (docs
                   | "ToRows" >> ToRows(self.stat_names)
                   | "Spill" >> WriteToParquet(f"{self.spill_prefix.rstrip('/')}/part", document_schema(self.stat_names),
                                               codec=self.codec, file_name_suffix=".parquet",
                                               row_group_buffer_size=SPILL_ROW_GROUP_BYTES))
        rows = (spilled
                | "ReadSpilled" >> ReadAllFromParquet()
                | "DropLosers" >> beam.ParDo(DropLosers(), losers=beam.pvalue.AsList(losers.ids)))
        return {"rows": rows, REJECTED: losers[REJECTED]}
