"""Paragraph n-gram dedup as a Beam computation: n-gram occurrences grouped by hash, owners found per bucket.

One record per (n-gram, paragraph) is the largest exchange of the pipeline (~ one per token), so records are
packed: each worker buffers the 32-byte occurrence rows of a batch, splits them by hash bucket and sends one
bytes blob per bucket. The runner groups blobs by bucket; a reducer sorts its bucket with numpy and finds each
n-gram's owner without a Python loop per n-gram. Grouping per bucket instead of per n-gram keeps the keys few and
the per-record overhead at 32 bytes. What comes out is tiny: per document, the contained n-gram counts of the
paragraphs an earlier document owns.

Beam's local runner holds a shuffle in memory (about three copies of its bytes while grouping), which for this
exchange is ~50 KiB per document. With `exchange_prefix` the blobs go to files instead and only their paths are
shuffled: memory stays flat, at the price of one small file per batch and bucket — right for a laptop, while
cluster runners, whose shuffle lives on disk, exchange through the shuffle (DedupConfig.ngram_exchange).
"""
from __future__ import annotations

import uuid
from typing import Iterator

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from transforms.beam.buffered import BufferingFn
from transforms.dedup.order import OrderBy, order_key
from transforms.dedup.paragraph import OCCURRENCE, ParagraphDedupConfig, contained_counts, occurrences
from transforms.document import Document

FLUSH_RECORDS = 1 << 20  # 32 MiB of occurrence rows buffered per worker before they are sent on


class EmitOccurrences(BufferingFn):
    """Documents -> (bucket, packed occurrence rows), or (bucket, path of a file holding them) when `exchange_prefix`
    is set: a batch's n-grams, split by the top bits of the hash."""

    def __init__(self, cfg: ParagraphDedupConfig, *, order_by: OrderBy, bucket_bits: int,
                 exchange_prefix: str | None) -> None:
        super().__init__(limit=FLUSH_RECORDS)
        self.cfg, self.order_by, self.shift = cfg, order_by, np.uint64(64 - bucket_bits)
        self.exchange_prefix = exchange_prefix

    def process(self, doc: Document) -> Iterator[tuple[int, bytes]]:
        table = occurrences(doc.text, order_key(doc.id, doc.warc_date, self.order_by), self.cfg.ngram)
        if table.size:
            yield from self.buffer(table, table.size)

    def flush(self, tables: list[np.ndarray]) -> Iterator[tuple[int, bytes]]:
        table = np.concatenate(tables)
        buckets = table["hash"] >> self.shift
        order = np.argsort(buckets, kind="stable")
        table, buckets = table[order], buckets[order]
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        for lo, hi in zip(starts, np.r_[starts[1:], table.size]):
            bucket, blob = int(buckets[lo]), table[lo:hi].tobytes()
            if self.exchange_prefix is None:
                yield bucket, blob
                continue
            path = f"{self.exchange_prefix}/p{bucket:05d}/{uuid.uuid4().hex}.bin"
            with FileSystems.create(path) as fh:
                fh.write(blob)
            yield bucket, path


def load_blob(value: bytes | str) -> np.ndarray:
    """Occurrence rows sent through the shuffle, or read back from the exchange file they were written to."""
    if isinstance(value, str):
        with FileSystems.open(value) as fh:
            value = fh.read()
    return np.frombuffer(value, dtype=OCCURRENCE)


def contained_per_document(kv: tuple[int, list[bytes]]) -> Iterator[tuple[tuple[int, int], tuple[tuple[int, int], ...]]]:
    """One bucket's occurrences -> per document, ((paragraph, contained n-grams), ...) for the n-grams of this bucket."""
    _, blobs = kv
    table = np.concatenate([load_blob(b) for b in blobs])
    hits = contained_counts(table)
    if hits.size == 0:
        return
    order = np.lexsort((hits["para"], hits["digest"], hits["date"]))
    hits = hits[order]
    pos = np.stack([hits["date"], hits["digest"].view(np.int64), hits["para"].astype(np.int64)], axis=1)
    starts = np.flatnonzero(np.r_[True, np.any(pos[1:] != pos[:-1], axis=1)])
    sums = np.add.reduceat(hits["count"].astype(np.int64), starts)
    per_doc: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, total in zip(starts.tolist(), sums.tolist()):
        key = (int(hits["date"][i]), int(hits["digest"][i]))
        per_doc.setdefault(key, []).append((int(hits["para"][i]), total))
    for key, paras in per_doc.items():
        yield key, tuple(paras)


class SumPerParagraph(beam.CombineFn):
    """Merges the per-bucket counts of one document into {paragraph: contained n-grams}."""

    def create_accumulator(self) -> dict[int, int]:
        return {}

    def add_input(self, acc: dict[int, int], paras: tuple[tuple[int, int], ...]) -> dict[int, int]:
        for j, count in paras:
            acc[j] = acc.get(j, 0) + count
        return acc

    def merge_accumulators(self, accs) -> dict[int, int]:
        out: dict[int, int] = {}
        for acc in accs:
            for j, count in acc.items():
                out[j] = out.get(j, 0) + count
        return out

    def extract_output(self, acc: dict[int, int]) -> dict[int, int]:
        return acc


class ParagraphContainment(beam.PTransform):
    """Documents -> (order key, {paragraph: contained n-grams}) for every document an earlier one overlaps."""

    def __init__(self, cfg: ParagraphDedupConfig, *, order_by: OrderBy, bucket_bits: int,
                 exchange_prefix: str | None = None) -> None:
        super().__init__()
        self.cfg, self.order_by, self.bucket_bits, self.exchange_prefix = cfg, order_by, bucket_bits, exchange_prefix

    def expand(self, docs):
        return (docs
                | "Occurrences" >> beam.ParDo(EmitOccurrences(self.cfg, order_by=self.order_by,
                                                              bucket_bits=self.bucket_bits,
                                                              exchange_prefix=self.exchange_prefix))
                | "GroupByBucket" >> beam.GroupByKey()
                | "Owners" >> beam.FlatMap(contained_per_document)
                | "SumPerParagraph" >> beam.CombinePerKey(SumPerParagraph()))
