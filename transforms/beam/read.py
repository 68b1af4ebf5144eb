"""ReadWarcPages: file globs in, `Page`s out; Common-Crawl-layout files are read as parallel byte ranges.

A file with one gzip member per WARC record is split into `split_bytes` ranges (and further by the runner);
a record belongs to the range its gzip member starts in (docs/feasibility.md section 8). Plain, whole-file
gzip and ARC files have no such boundaries and are read whole, one reader per file.
"""
from __future__ import annotations

import logging
import time
from typing import BinaryIO, Iterator

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider

from transforms import stats
from transforms.beam.metrics import StageCounters
from transforms.document import Page
from transforms.io import warc, warc_ranges

STAGE = "read"
WHOLE = "whole"  # tag of the files read by one reader
DEFAULT_SPLIT_BYTES = 64 << 20  # about 60 ranges per 1 GiB Common Crawl WARC file


def _open(path: str) -> BinaryIO:
    """Raw bytes from any Beam filesystem (no transparent gunzip: gzip members are read here)."""
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


class _ReadCounts:
    """Counts one file's (or range's) records into the stage counters, and logs file-level errors."""

    def __init__(self, counters: StageCounters, path: str) -> None:
        self.counters, self.path, self.pages, self.records = counters, path, 0, 0

    def page_or_none(self, offset: int, item: Page | warc.ReadIssue) -> Page | None:
        if isinstance(item, Page):
            self.counters.count_in()
            self.counters.count_out(len(item.html))
            self.pages, self.records = self.pages + 1, self.records + 1
            return item
        if item.is_record:
            self.counters.count_in()
            self.counters.count_dropped(item.reason)
            self.records += 1
        else:  # damage in the file, not a record: an error event, reported apart from the drops
            logging.warning("%s in %s at offset %d: %s", item.reason, self.path, offset, item.detail)
            self.counters.count_error(item.reason)
        return None


class _DetectLayoutFn(beam.DoFn):
    """Emits splittable files as (path, size) and routes the rest to WHOLE."""

    def process(self, metadata: fileio.FileMetadata) -> Iterator:
        with _open(metadata.path) as fh:
            layout = warc_ranges.detect_layout(fh)
        if layout.splittable:
            yield metadata.path, metadata.size_in_bytes
        else:
            yield beam.pvalue.TaggedOutput(WHOLE, metadata.path)


class _ReadWholeFileFn(beam.DoFn):
    """Reads one plain, whole-file gzip or ARC file from start to end."""

    def __init__(self, *, max_record_bytes: int) -> None:
        self.max_record_bytes = max_record_bytes
        self.counters = StageCounters(STAGE)

    def process(self, path: str) -> Iterator[Page]:
        started, counts = time.monotonic(), _ReadCounts(self.counters, path)
        with _open(path) as fh:
            for offset, item in warc.read_records(fh, source=path, max_record_bytes=self.max_record_bytes):
                if (page := counts.page_or_none(offset, item)) is not None:
                    yield page
        logging.info("read %s: %d pages of %d records in %.1f s", path, counts.pages, counts.records,
                     time.monotonic() - started)


class _ReadRangeFn(beam.DoFn, RestrictionProvider):
    """Splittable DoFn over (path, size): the restriction is a byte range, claimed at each member start."""

    def __init__(self, *, max_record_bytes: int, split_bytes: int) -> None:
        self.max_record_bytes = max_record_bytes
        self.split_bytes = split_bytes
        self.counters = StageCounters(STAGE)
        self.ranges = Metrics.counter(stats.NAMESPACE, f"{STAGE}.ranges")  # not a `stage|kind` name: no report row

    def initial_restriction(self, element: tuple[str, int]) -> OffsetRange:
        return OffsetRange(0, element[1])

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def split(self, element: tuple[str, int], restriction: OffsetRange) -> Iterator[OffsetRange]:
        return restriction.split(self.split_bytes)

    def restriction_size(self, element: tuple[str, int], restriction: OffsetRange) -> int:
        return restriction.size()

    def process(self, element: tuple[str, int], tracker=beam.DoFn.RestrictionParam()) -> Iterator[Page]:
        path, start, stop = element[0], tracker.current_restriction().start, tracker.current_restriction().stop
        started, counts, claimed = time.monotonic(), _ReadCounts(self.counters, path), -1
        self.ranges.inc()
        with _open(path) as fh:
            first = warc_ranges.find_record_start(fh, start, end=stop)
            if first is not None:
                layout = warc_ranges.Layout(kind=warc_ranges.GZIP_MEMBERS, is_warc=True)
                records = warc.read_records(fh, source=path, max_record_bytes=self.max_record_bytes,
                                            layout=layout, start_offset=first)
                for offset, item in records:
                    if offset != claimed:
                        if not tracker.try_claim(offset):
                            break
                        claimed = offset
                    if (page := counts.page_or_none(offset, item)) is not None:
                        yield page
                else:  # end of file: no record starts in the rest of the range
                    tracker.try_claim(tracker.current_restriction().stop)
            else:
                tracker.try_claim(tracker.current_restriction().stop)
        logging.info("read %s [%d, %d): %d pages of %d records in %.1f s", path, start, stop, counts.pages,
                     counts.records, time.monotonic() - started)


class ReadWarcPages(beam.PTransform):
    """PCollection of file globs -> PCollection of `Page`. Globs matching nothing are allowed (check upstream)."""

    def __init__(self, *, max_record_bytes: int = warc.DEFAULT_MAX_RECORD_BYTES,
                 split_bytes: int = DEFAULT_SPLIT_BYTES) -> None:
        super().__init__()
        if split_bytes < 1 or max_record_bytes < 1:
            raise ValueError(f"split_bytes ({split_bytes}) and max_record_bytes ({max_record_bytes}) must be >= 1")
        self.max_record_bytes = max_record_bytes
        self.split_bytes = split_bytes

    def expand(self, patterns):
        files = (patterns
                 | "MatchWarcFiles" >> fileio.MatchAll(fileio.EmptyMatchTreatment.ALLOW)
                 | "DetectLayout" >> beam.ParDo(_DetectLayoutFn()).with_outputs(WHOLE, main="ranges"))
        ranged = files.ranges | "ReadRanges" >> beam.ParDo(
            _ReadRangeFn(max_record_bytes=self.max_record_bytes, split_bytes=self.split_bytes))
        whole = (files[WHOLE]
                 | "SpreadWholeFiles" >> beam.Reshuffle()
                 | "ReadWholeFiles" >> beam.ParDo(_ReadWholeFileFn(max_record_bytes=self.max_record_bytes)))
        return (ranged, whole) | "MergePages" >> beam.Flatten()
