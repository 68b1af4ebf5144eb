"""Writing shards and the audit trail with Beam's parquetio."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.io.parquetio import WriteToParquet

from transforms.beam.metrics import StageCounters
from transforms.io.parquet import REJECTED_SCHEMA, document_row, document_schema, rejected_row


class ToRow(beam.DoFn):
    """Document -> row dict, counting what reaches the shards."""

    def __init__(self, stat_names: tuple[str, ...]) -> None:
        self.stat_names = stat_names

    def setup(self) -> None:
        self.counters = StageCounters("write")

    def process(self, doc):
        self.counters.count_in(len(doc.text))
        self.counters.count_out(len(doc.text))
        yield document_row(doc, self.stat_names)


class WriteDocuments(beam.PTransform):
    """Zstd Parquet shards `<prefix>/part-SSSSS-of-NNNNN.parquet`."""

    def __init__(self, prefix: str, *, stat_names: tuple[str, ...], num_shards: int, codec: str) -> None:
        super().__init__()
        self.prefix, self.stat_names, self.num_shards, self.codec = prefix, stat_names, num_shards, codec

    def expand(self, docs):
        return (
            docs
            | "ToRow" >> beam.ParDo(ToRow(self.stat_names))
            | "WriteParquet" >> WriteToParquet(
                file_path_prefix=f"{self.prefix.rstrip('/')}/part",
                schema=document_schema(self.stat_names),
                codec=self.codec,
                num_shards=self.num_shards,
                file_name_suffix=".parquet",
            )
        )


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
