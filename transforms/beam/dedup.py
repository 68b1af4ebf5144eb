"""Exact dedup as a combine: copies meet on one key, the smallest id survives, the rest are counted."""
from __future__ import annotations

from typing import Iterator

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from transforms.beam.metrics import StageCounters
from transforms.beam.stages import REJECTED
from transforms.dedup.exact import REASON_DUPLICATE, exact_key, keeps_over
from transforms.document import Document, Rejected

STAGE = "dedup_exact"


class KeepSmallestId(beam.CombineFn):
    """Accumulator (survivor, [(id, url, chars) of the others]); a combine, so lifting shrinks the shuffle."""

    def create_accumulator(self):
        return (None, [])

    def add_input(self, acc, doc: Document):
        return self.merge_accumulators([acc, (doc, [])])

    def merge_accumulators(self, accs):
        best, dropped = None, []
        for cand, others in accs:
            dropped.extend(others)
            if cand is None:
                continue
            if best is None or keeps_over(cand.id, best.id):
                if best is not None:
                    dropped.append((best.id, best.url, len(best.text)))
                best = cand
            else:
                dropped.append((cand.id, cand.url, len(cand.text)))
        return (best, dropped)

    def extract_output(self, acc):
        return acc


class EmitSurvivor(beam.DoFn):
    """Counts the group and routes the duplicates to the rejected output."""

    def __init__(self, *, emit_rejected: bool) -> None:
        self.emit_rejected = emit_rejected

    def setup(self) -> None:
        self.counters = StageCounters(STAGE)

    def process(self, keyed) -> Iterator:
        _, (best, dropped) = keyed
        for doc_id, url, chars in dropped:
            self.counters.count_in(chars)
            self.counters.count_dropped(REASON_DUPLICATE)
            if self.emit_rejected:
                yield TaggedOutput(REJECTED, Rejected(id=doc_id, url=url, stage=STAGE, reason=REASON_DUPLICATE))
        self.counters.count_in(len(best.text))
        self.counters.count_out(len(best.text))
        yield best


class DedupExact(beam.PTransform):
    """Documents -> one per normalised text; outputs tagged `docs` and `rejected`."""

    def __init__(self, *, emit_rejected: bool) -> None:
        super().__init__()
        self.emit_rejected = emit_rejected

    def expand(self, docs):
        return (
            docs
            | "KeyByText" >> beam.Map(lambda d: (exact_key(d.text), d))
            | "KeepSmallestId" >> beam.CombinePerKey(KeepSmallestId())
            | "EmitSurvivor" >> beam.ParDo(EmitSurvivor(emit_rejected=self.emit_rejected)).with_outputs(REJECTED, main="docs")
        )
