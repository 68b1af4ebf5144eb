"""ReadSamples: globs of JSONL, Parquet or source files in, `Sample`s out, every bad record counted by reason
and, when asked, kept as a `Rejected` row (stage "read") like the drops of every later stage."""
from __future__ import annotations

import logging
from typing import Iterator

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import TaggedOutput

from transforms import stats
from transforms.beam.metrics import Counted, CountingFn
from transforms.document import Rejected
from transforms.io.compressed import damage_of, open_decompressed
from transforms.io.samples import (
    TOO_LARGE, Sample, SampleFields, Skipped, jsonl_samples, kind_of, parquet_samples, source_sample,
)

STAGE = "read"
REJECTED = "rejected"  # the tag of the Rejected rows (the same as transforms.beam.stages.REJECTED)
UNKNOWN_TYPE, BAD_FILE = "input.unknown_type", "input.bad_file"  # file-level errors, not records
# and input.truncated_gzip, input.corrupt_gzip, input.truncated_zstd, input.corrupt_zstd (transforms.io.compressed)
DAMAGE_FIX = "the lines before it were read; copy the file again, or leave it out of the inputs"
log = logging.getLogger(__name__)


class ReadFileFn(CountingFn):
    """One matched file -> its samples; files are the unit of parallelism (shards are many and similar in size)."""

    def __init__(self, *, fields: SampleFields, max_bytes: int, source_language: str, emit_rejected: bool) -> None:
        self.fields, self.max_bytes, self.source_language = fields, max_bytes, source_language
        self.emit_rejected = emit_rejected

    def setup(self) -> None:
        self.counters = self.stage_counters(STAGE)

    def process(self, readable: fileio.ReadableFile) -> Iterator:
        path, size = readable.metadata.path, readable.metadata.size_in_bytes
        yield from self._read(readable, path, size)
        self.counters.count(stats.INPUT_BYTES, size)  # the live progress line's bytes read (pipelines/progress.py)

    def _read(self, readable: fileio.ReadableFile, path: str, size: int) -> Iterator:
        try:
            kind = kind_of(path)
        except ValueError as exc:  # a stray file under the glob: say so, skip it, go on
            yield from self._file_error(path, UNKNOWN_TYPE, str(exc))
            return
        if kind == "source":
            self.counters.count_in(size)
            if size > self.max_bytes:  # never read: a vendored blob or generated file
                yield from self._emit(Skipped(path, TOO_LARGE), path)
                return
            yield from self._emit(source_sample(readable.read(), source=path, language=self.source_language), path)
            return
        reader = jsonl_samples if kind == "jsonl" else parquet_samples
        try:  # raw bytes: .gz and .zst are decompressed here, so a cut file is reported, not read as shorter
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
                fh = open_decompressed(raw, path)
                for item in reader(fh, source=path, fields=self.fields, max_bytes=self.max_bytes):
                    self.counters.count_in(len(item.text) if isinstance(item, Sample) else 0)
                    yield from self._emit(item, path)
                if (damage := damage_of(fh)) is not None:  # every line before the damage is read
                    yield from self._file_error(path, f"input.{damage[0]}", f"{damage[1]}; {DAMAGE_FIX}")
        except ValueError as exc:  # a shard without the text column, an unreadable Parquet footer
            yield from self._file_error(path, BAD_FILE, str(exc))

    def _emit(self, item: Sample | Skipped, path: str) -> Iterator:
        if isinstance(item, Skipped):
            self.counters.count_dropped(item.reason)
            if self.emit_rejected:
                yield TaggedOutput(REJECTED, Rejected(id=item.id, url=path, stage=STAGE, reason=item.reason))
        else:
            self.counters.count_out(len(item.text))
            yield item

    def _file_error(self, path: str, reason: str, cause: str) -> Iterator:
        """Not a record: counted as an error, kept as a Rejected row whose id is the file and text the cause."""
        log.warning("%s in %s: %s", reason, path, cause)
        self.counters.count_error(reason)
        if self.emit_rejected:
            yield TaggedOutput(REJECTED, Rejected(id=path, url=path, stage=STAGE, reason=reason, text=cause))


class ReadSamples(beam.PTransform):
    """Globs -> (samples, rejected). Source files get `source_language` (e.g. "Python"); records carry their own.
    With `emit_rejected`, `rejected` holds a Rejected row for every record skipped and every file not read."""

    def __init__(self, *, fields: SampleFields = SampleFields(), max_bytes: int = 1 << 20,
                 source_language: str = "", emit_rejected: bool = False) -> None:
        super().__init__()
        self.fields, self.max_bytes, self.source_language = fields, max_bytes, source_language
        self.emit_rejected = emit_rejected

    def expand(self, globs):
        return (globs
                | "Match" >> fileio.MatchAll()
                | "SpreadFiles" >> beam.Reshuffle()  # else one glob's files are all read where it was matched
                | "Open" >> fileio.ReadMatches()
                | "Read" >> Counted(ReadFileFn(fields=self.fields, max_bytes=self.max_bytes,
                                               source_language=self.source_language,
                                               emit_rejected=self.emit_rejected), tags=(REJECTED,)))
