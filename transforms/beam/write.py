"""Writing shards and the audit trail with Beam's parquetio."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.io.parquetio import WriteToParquet

from transforms import stats
from transforms.beam.metrics import Counted, CountingFn
from transforms.io.parquet import REJECTED_SCHEMA, document_row, document_schema, rejected_row


class _ToRowFn(beam.DoFn):
    """Document -> row dict."""

    def __init__(self, stat_names: tuple[str, ...]) -> None:
        self.stat_names = stat_names

    def process(self, doc):
        yield document_row(doc, self.stat_names)


class ToRows(beam.PTransform):
    """Documents -> Parquet row dicts (the schema of transforms.io.parquet)."""

    def __init__(self, stat_names: tuple[str, ...]) -> None:
        super().__init__()
        self.stat_names = stat_names

    def expand(self, docs):
        return docs | "ToRow" >> beam.ParDo(_ToRowFn(self.stat_names))


class _CountRowsFn(CountingFn):
    """Counts what reaches the shards."""

    def setup(self) -> None:
        self.counters = self.stage_counters("write")

    def process(self, row: dict):
        self.counters.start_clock()
        words = stats.word_count(row["text"]) if "text" in row else None
        self.counters.count_in(row["char_count"], words=words)
        self.counters.count_out(row["char_count"], words=words)
        self.counters.stop_clock()
        yield row


class WriteRows(beam.PTransform):
    """Rows -> Parquet shards `<prefix>/part-SSSSS-of-NNNNN.parquet` of one schema, counted under `write`."""

    def __init__(self, prefix: str, *, schema, num_shards: int, codec: str, row_group_bytes: int) -> None:
        super().__init__()
        self.prefix, self.schema, self.num_shards, self.codec = prefix, schema, num_shards, codec
        self.row_group_bytes = row_group_bytes

    def expand(self, rows):
        return (
            rows
            | "CountRows" >> Counted(_CountRowsFn())
            | "WriteParquet" >> WriteToParquet(
                file_path_prefix=f"{self.prefix.rstrip('/')}/part",
                schema=self.schema,
                codec=self.codec,
                num_shards=self.num_shards,
                file_name_suffix=".parquet",
                row_group_buffer_size=self.row_group_bytes,
            )
        )


class WriteDocuments(WriteRows):
    """Web documents -> zstd Parquet shards (the schema of transforms.io.parquet)."""

    def __init__(self, prefix: str, *, stat_names: tuple[str, ...], num_shards: int, codec: str,
                 row_group_bytes: int) -> None:
        super().__init__(prefix, schema=document_schema(stat_names), num_shards=num_shards, codec=codec,
                         row_group_bytes=row_group_bytes)


class WriteRejected(beam.PTransform):
    """Dropped records with stage and reason, for audit and threshold tuning."""

    def __init__(self, prefix: str, *, codec: str) -> None:
        super().__init__()
        self.prefix, self.codec = prefix, codec

    def expand(self, rejected):
        return (
            rejected
            | "ToRejectedRow" >> beam.Map(rejected_row)
            | "WriteRejectedParquet" >> WriteToParquet(
                file_path_prefix=f"{self.prefix.rstrip('/')}/part",
                schema=REJECTED_SCHEMA,
                codec=self.codec,
                file_name_suffix=".parquet",
            )
        )
