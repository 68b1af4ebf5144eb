"""Rows parked in Parquet files partitioned by document key, so a later join reads them without a text shuffle.

Dedup decisions are small and keyed by document; the documents are big. Joining them through a shuffle would
make the local runner hold every text in memory, and per-row lookups in a keyed side input cost ~1.6 ms each
on Beam's Python worker (its state cache sizes every fetched value with objsize). Instead each worker writes
the rows it sees into one file per (flush, partition) — partition = key digest mod P — and emits (partition,
path). The join groups paths and decisions by partition: one worker then holds one partition's decisions in
a dict and streams that partition's files in small batches.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms.beam.buffered import BufferingFn
from transforms.dedup.order import id_digest

FLUSH_CHARS = 32 << 20  # text characters buffered per worker before its partitions are written out
READ_BATCH_ROWS = 256  # rows materialised at a time when a partition is read back


class SpillPartitioned(BufferingFn):
    """Rows -> (partition, path) of the Parquet files they were written to under `prefix`/pNNNNN/."""

    def __init__(self, prefix: str, schema: pa.Schema, *, partitions: int, partition_of: Callable[[dict], int],
                 codec: str) -> None:
        super().__init__(limit=FLUSH_CHARS)
        self.prefix, self.schema, self.partitions = prefix.rstrip("/"), schema, partitions
        self.partition_of, self.codec = partition_of, codec

    def process(self, row: dict) -> Iterator[tuple[int, str]]:
        yield from self.buffer(row, len(row["text"]))

    def flush(self, rows: list[dict]) -> Iterator[tuple[int, str]]:
        by_part: dict[int, list[dict]] = defaultdict(list)
        for row in rows:
            by_part[self.partition_of(row) % self.partitions].append(row)
        for part, members in sorted(by_part.items()):
            path = f"{self.prefix}/p{part:05d}/{uuid.uuid4().hex}.parquet"
            with FileSystems.create(path) as fh:
                pq.write_table(pa.Table.from_pylist(members, schema=self.schema), fh,
                               compression=None if self.codec == "none" else self.codec,
                               row_group_size=READ_BATCH_ROWS)
            yield part, path


def row_digest(row: dict) -> int:
    """The 63-bit digest of a row's record id: dedup decisions are partitioned by the same number."""
    return id_digest(row["id"])


def read_spilled(path: str) -> Iterator[dict]:
    """The rows of one spill file, READ_BATCH_ROWS at a time."""
    with FileSystems.open(path) as fh:
        for batch in pq.ParquetFile(fh).iter_batches(batch_size=READ_BATCH_ROWS):
            yield from batch.to_pylist()
