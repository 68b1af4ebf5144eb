"""ReadWarcPages: file globs in, `Page`s (and the read stage's `Rejected` rows) out.

A file with one gzip member per WARC record is cut into ranges of at most `split_bytes`, all of one size
(transforms/io/range_sizing.py), which a Reshuffle spreads over the workers before they are read (the local
runner hands a stage's input out once, per upstream bundle: without it the ranges of the files one worker listed
all stay on that worker); the runner may split a range further. A record belongs to the range its gzip member
group starts in (docs/feasibility.md section 8; a group is a member that starts a record and any after it that
do not, warc_ranges.MemberGroups). Plain, whole-file gzip and ARC files have no such boundaries and are read
whole, one reader per file. Every record dropped and
every file-level error becomes a `Rejected` row (stage "read") when asked, so the audit trail misses nothing.
"""
from __future__ import annotations

import logging
import time
from typing import BinaryIO, Iterator

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker, UnsplittableRestrictionTracker
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.core import RestrictionProvider

from transforms import stats
from transforms.beam.metrics import Counted, CountingFn, StageCounters
from transforms.document import Page, Rejected
from transforms.io import warc, warc_ranges
from transforms.io.range_sizing import byte_ranges

log = logging.getLogger(__name__)

STAGE = "read"
REJECTED = "rejected"  # the tag of the Rejected rows (the same as transforms.beam.stages.REJECTED)
DEFAULT_SPLIT_BYTES = 64 << 20  # about 60 ranges per 1 GiB Common Crawl WARC file


def _open(path: str) -> BinaryIO:
    """Raw bytes from any Beam filesystem (no transparent gunzip: gzip members are read here)."""
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def file_rejected(path: str, offset: int, reason: str, detail: str) -> Rejected:
    """A file-level error as a Rejected row: no record, so the id is `<path>@<offset>` and `text` the detail."""
    return Rejected(id=f"{path}@{offset}", url="", stage=STAGE, reason=reason, text=detail)


class _ReadCounts:
    """Counts one file's (or range's) records into the stage counters, logs file-level errors, and turns
    every drop and error into a Rejected row on the REJECTED output when `emit_rejected`."""

    def __init__(self, counters: StageCounters, path: str, *, emit_rejected: bool, start: int = 0) -> None:
        self.counters, self.path, self.emit_rejected = counters, path, emit_rejected
        self.pages = self.records = 0
        self.position = start  # input bytes of this file counted as read so far (`read|input_bytes`)

    def consumed(self, position: int) -> None:
        """The file has been read up to `position` (a byte offset of the input file)."""
        if position > self.position:
            self.counters.count(stats.INPUT_BYTES, position - self.position)
            self.position = position

    def route(self, offset: int, item: Page | warc.ReadIssue) -> Iterator[Page | TaggedOutput]:
        """Count one record or issue and yield what it becomes; the stage's clock stops while downstream runs."""
        if isinstance(item, Page):  # chars_in: payload bytes (when the reader gave them), chars_out: decoded chars
            self.counters.count_in(item.payload_bytes if item.payload_bytes is not None else len(item.html))
            self.counters.count_out(len(item.html))
            self.pages, self.records = self.pages + 1, self.records + 1
            self.counters.stop_clock()
            yield item
            self.counters.start_clock()
            return
        if item.is_record:
            self.counters.count_in()
            self.counters.count_dropped(item.reason)
            self.records += 1
            rejected = Rejected(id=item.record_id or f"{self.path}@{offset}", url=item.url, stage=STAGE,
                                reason=item.reason, text=item.detail)
        else:  # damage in the file, not a record: an error event, reported apart from the drops
            log.warning("%s in %s at offset %d: %s", item.reason, self.path, offset, item.detail)
            self.counters.count_error(item.reason)
            rejected = file_rejected(self.path, offset, item.reason, item.detail)
        if self.emit_rejected:
            self.counters.stop_clock()
            yield TaggedOutput(REJECTED, rejected)
            self.counters.start_clock()


class WholeFile(OffsetRange):
    """The byte range of a file that has no record boundaries to split at (plain, whole-file gzip, ARC)."""


FileRange = tuple[str, int, bool, int, int]  # (path, size, splittable, start, stop): one reader's share of a file


def plan_ranges(file: tuple[str, int, bool], split_bytes: int) -> Iterator[FileRange]:
    """A splittable file's equal ranges of at most `split_bytes`; any other file whole."""
    path, size, splittable = file
    for start, stop in byte_ranges(size, split_bytes) if splittable else [(0, size)]:
        yield path, size, splittable, start, stop


class _DetectLayoutFn(CountingFn):
    """(path, size, splittable) per file; empty files are counted here, there is nothing to read."""

    def __init__(self, *, emit_rejected: bool) -> None:
        self.emit_rejected = emit_rejected

    def setup(self) -> None:
        self.counters = self.stage_counters(STAGE)

    def process(self, metadata: fileio.FileMetadata) -> Iterator:
        with _open(metadata.path) as fh:
            layout = warc_ranges.detect_layout(fh)
        if layout.kind == warc_ranges.EMPTY:
            log.warning("%s: %s", warc.EMPTY_FILE, metadata.path)
            self.counters.count_error(warc.EMPTY_FILE)
            if self.emit_rejected:
                yield TaggedOutput(REJECTED, file_rejected(metadata.path, 0, warc.EMPTY_FILE, "0 bytes"))
            return
        yield metadata.path, metadata.size_in_bytes, layout.splittable


class _ReadFileFn(CountingFn, RestrictionProvider):
    """Splittable DoFn over planned `FileRange`s: Common-Crawl-layout files as byte ranges claimed at each
    member start; other files as one unsplittable range. One DoFn for both, so pages flow straight into
    extraction: a Flatten of two readers would make the local runner buffer every page's HTML."""

    def __init__(self, *, max_record_bytes: int, emit_rejected: bool) -> None:
        self.max_record_bytes = max_record_bytes
        self.emit_rejected = emit_rejected
        self.ranges = Metrics.counter(stats.NAMESPACE, f"{STAGE}.ranges")  # not a `stage|kind` name: no report row

    def setup(self) -> None:
        self.counters = self.stage_counters(STAGE)

    def initial_restriction(self, element: FileRange) -> OffsetRange:
        return OffsetRange(element[3], element[4]) if element[2] else WholeFile(0, element[1])

    def create_tracker(self, restriction: OffsetRange):
        tracker = OffsetRestrictionTracker(restriction)
        return UnsplittableRestrictionTracker(tracker) if isinstance(restriction, WholeFile) else tracker

    def split(self, element: FileRange, restriction: OffsetRange) -> Iterator[OffsetRange]:
        yield restriction  # cut already (plan_ranges), before the Reshuffle that spreads the ranges

    def restriction_size(self, element: FileRange, restriction: OffsetRange) -> int:
        return restriction.size()

    def process(self, element: FileRange, tracker=beam.DoFn.RestrictionParam()) -> Iterator:
        restriction = tracker.current_restriction()
        started = time.monotonic()
        self.counters.start_clock()
        counts = _ReadCounts(self.counters, element[0], emit_rejected=self.emit_rejected, start=restriction.start)
        self.ranges.inc()
        with _open(element[0]) as fh:
            if isinstance(restriction, WholeFile):
                yield from self._read_whole(fh, element[0], tracker, counts)
            else:
                yield from self._read_range(fh, element[0], tracker, counts)
        counts.consumed(tracker.current_restriction().stop)  # the whole share (after any split) is read
        self.counters.stop_clock()
        log.info("read %s [%d, %d): %d pages of %d records in %.1f s", element[0], restriction.start,
                     restriction.stop, counts.pages, counts.records, time.monotonic() - started)

    def _read_whole(self, fh: BinaryIO, path: str, tracker, counts: _ReadCounts) -> Iterator:
        """Offsets here are in the decompressed stream, so only the start and the end are claimed."""
        stop = tracker.current_restriction().stop
        if tracker.try_claim(tracker.current_restriction().start):
            for offset, item in warc.read_records(fh, source=path, max_record_bytes=self.max_record_bytes):
                counts.consumed(min(fh.tell(), stop))  # the raw file position: compressed bytes read so far
                yield from counts.route(offset, item)
        tracker.try_claim(tracker.current_restriction().stop)

    def _read_range(self, fh: BinaryIO, path: str, tracker, counts: _ReadCounts) -> Iterator:
        """A member group (a member that starts a record, and any after it that do not) belongs to the range
        it starts in, and that range reads all of it, damage included: ranges begin only at group starts, so
        each byte is read, and each damaged member reported, by exactly one range."""
        start, stop = tracker.current_restriction().start, tracker.current_restriction().stop
        first = start if start == 0 else warc_ranges.find_record_start(fh, start, end=stop)
        refused = False

        def claim(offset: int) -> bool:
            nonlocal refused
            refused = not tracker.try_claim(offset)
            return not refused

        if first is not None:
            layout = warc_ranges.Layout(kind=warc_ranges.GZIP_MEMBERS, is_warc=True)
            for offset, item in warc.read_records(fh, source=path, max_record_bytes=self.max_record_bytes,
                                                  layout=layout, start_offset=first, claim=claim):
                counts.consumed(min(offset, stop))  # groups before this one are read
                yield from counts.route(offset, item)
        if not refused:
            tracker.try_claim(tracker.current_restriction().stop)  # no group starts in the rest of the range


class ReadWarcPages(beam.PTransform):
    """File globs -> (pages, rejected): `Page`s, and with `emit_rejected` a `Rejected` row (stage "read") for
    every record dropped (id = WARC-Record-ID, else `<path>@<offset>`) and every file-level error (id =
    `<path>@<offset>`); `text` says what went wrong. Globs matching nothing are allowed (check upstream)."""

    def __init__(self, *, max_record_bytes: int = warc.DEFAULT_MAX_RECORD_BYTES,
                 split_bytes: int = DEFAULT_SPLIT_BYTES, emit_rejected: bool = False) -> None:
        super().__init__()
        if split_bytes < 1 or max_record_bytes < 1:
            raise ValueError(f"split_bytes ({split_bytes}) and max_record_bytes ({max_record_bytes}) must be >= 1")
        self.max_record_bytes = max_record_bytes
        self.split_bytes = split_bytes
        self.emit_rejected = emit_rejected

    def expand(self, patterns):
        files, layout_rejected = (patterns
                                  | "MatchWarcFiles" >> fileio.MatchAll(fileio.EmptyMatchTreatment.ALLOW)
                                  | "DetectLayout" >> Counted(_DetectLayoutFn(emit_rejected=self.emit_rejected),
                                                              tags=(REJECTED,)))
        ranges = (files
                  | "PlanRanges" >> beam.FlatMap(plan_ranges, self.split_bytes)
                  | "SpreadRanges" >> beam.Reshuffle())
        pages, read_rejected = ranges | "ReadFiles" >> Counted(_ReadFileFn(
            max_record_bytes=self.max_record_bytes, emit_rejected=self.emit_rejected), tags=(REJECTED,))
        rejected = (layout_rejected, read_rejected) | "FlattenReadRejected" >> beam.Flatten()
        return pages, rejected
