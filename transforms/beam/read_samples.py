"""ReadSamples: globs of JSONL, Parquet or source files in, `Sample`s out, every bad record counted by reason."""
from __future__ import annotations

import logging
from typing import Iterator

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

from transforms.beam.metrics import StageCounters
from transforms.io.samples import (
    TOO_LARGE, Sample, SampleFields, jsonl_samples, kind_of, parquet_samples, source_sample,
)

STAGE = "read"
UNKNOWN_TYPE, BAD_FILE = "input.unknown_type", "input.bad_file"  # file-level errors, not records
log = logging.getLogger(__name__)


class ReadFileFn(beam.DoFn):
    """One matched file -> its samples; files are the unit of parallelism (shards are many and similar in size)."""

    def __init__(self, *, fields: SampleFields, max_bytes: int, source_language: str) -> None:
        self.fields, self.max_bytes, self.source_language = fields, max_bytes, source_language

    def setup(self) -> None:
        self.counters = StageCounters(STAGE)

    def process(self, readable: fileio.ReadableFile) -> Iterator[Sample]:
        path, size = readable.metadata.path, readable.metadata.size_in_bytes
        try:
            kind = kind_of(path)
        except ValueError as exc:  # a stray file under the glob: say so, skip it, go on
            log.warning("%s", exc)
            self.counters.count_error(UNKNOWN_TYPE)
            return
        if kind == "source":
            self.counters.count_in(size)
            if size > self.max_bytes:  # never read: a vendored blob or generated file
                self.counters.count_dropped(TOO_LARGE)
                return
            yield from self._emit(source_sample(readable.read(), source=path, language=self.source_language))
            return
        reader = jsonl_samples if kind == "jsonl" else parquet_samples
        try:
            with FileSystems.open(path) as fh:
                for item in reader(fh, source=path, fields=self.fields, max_bytes=self.max_bytes):
                    self.counters.count_in()
                    yield from self._emit(item)
        except ValueError as exc:  # a shard without the text column, an unreadable Parquet footer
            log.warning("skipped %s: %s", path, exc)
            self.counters.count_error(BAD_FILE)

    def _emit(self, item: Sample | str) -> Iterator[Sample]:
        if isinstance(item, str):
            self.counters.count_dropped(item)
        else:
            self.counters.count_out(len(item.text))
            yield item


class ReadSamples(beam.PTransform):
    """Globs -> Samples. Source files get `source_language` (e.g. "Python"); records carry their own."""

    def __init__(self, *, fields: SampleFields = SampleFields(), max_bytes: int = 1 << 20,
                 source_language: str = "") -> None:
        super().__init__()
        self.fields, self.max_bytes, self.source_language = fields, max_bytes, source_language

    def expand(self, globs):
        return (globs
                | "Match" >> fileio.MatchAll()
                | "Open" >> fileio.ReadMatches()
                | "Read" >> beam.ParDo(ReadFileFn(fields=self.fields, max_bytes=self.max_bytes,
                                                  source_language=self.source_language)))
