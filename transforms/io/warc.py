"""Read WARC, WET and ARC files into decoded `Page`s, reporting every record it skips and why.

warcio parses the record and HTTP headers and removes chunked transfer encoding. FastWARC is about 2.5x
faster (docs/feasibility.md section 6) but reads no ARC files and leaves HTTP encodings to the caller,
so we use warcio; gzip members are inflated by transforms.io.gzip_stream, which loses no byte at a cut.
Whatever the layout, a file cut short gives every record before the cut, the record it cuts as a
`warc.truncated_record` drop (with URL and id when its headers were read), and one file-level error for
gzip damage. In a file of one gzip member per record, a record is a page only once its member passed its
CRC, as damaged data can inflate to altered text. WARC-Type values are compared case-insensitively, as FastWARC
does and the WARC grammar's literals allow (RFC 2616 section 2.1 notation); warcio and jwarc compare them exactly.
"""
from __future__ import annotations

from collections import deque
from typing import BinaryIO, Callable, Iterator

from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecordLoader
from warcio.statusandheaders import StatusAndHeadersParserException

from transforms.document import Page
from transforms.io import warc_ranges
from transforms.io.gzip_stream import CORRUPT, TRUNCATED, GzipStream
from transforms.io.warc_page import HTML_TYPES, record_id_of, record_url, to_page
from transforms.io.warc_lines import Lines, cut_in_headers, is_arc_header, is_warc_start, next_line
from transforms.io.warc_payload import decode_html, decode_text
from transforms.io.warc_ranges import Layout, MemberGroups
from transforms.io.warc_reasons import (
    CORRUPT_GZIP, CORRUPT_RECORD, DECODE_ERROR, EMPTY_FILE, EMPTY_PAYLOAD, FILE_ERROR, INVALID_HEADER,
    MISALIGNED_GZIP, NOT_ARCHIVE, NOT_HTML, NOT_RESPONSE, TOO_LARGE, TRUNCATED_GZIP, TRUNCATED_RECORD, ReadIssue,
)

__all__ = [  # the reader, and the reasons and decoders callers read as warc.X
    "CORRUPT_GZIP", "CORRUPT_RECORD", "DECODE_ERROR", "DEFAULT_MAX_RECORD_BYTES", "EMPTY_FILE", "EMPTY_PAYLOAD",
    "FILE_ERROR", "HTML_TYPES", "INVALID_HEADER", "MISALIGNED_GZIP", "NOT_ARCHIVE", "NOT_HTML", "NOT_RESPONSE",
    "TOO_LARGE", "TRUNCATED_GZIP", "TRUNCATED_RECORD", "ReadIssue", "decode_html", "decode_text", "read_records",
]

# Common Crawl stores at most 1 MiB of payload per capture (longer ones carry WARC-Truncated: length);
# 8 MiB keeps every such page and only drops outliers from other crawlers.
DEFAULT_MAX_RECORD_BYTES = 8 << 20
_BLOCK_BYTES = 1 << 16
# Records of one member held until its CRC is checked, at most: a larger member (a whole-file gzip appended to a
# per-record file) is read as whole-file gzip is, its records out before its CRC. Above DEFAULT_MAX_RECORD_BYTES.
_MAX_UNCHECKED_BYTES = 64 << 20
# warcio raises AttributeError/ValueError/IndexError on records that lack required fields
# (e.g. jhove invalid-warcfile-lonely-revisit.warc has no WARC-Target-URI).
_HEADER_ERRORS = (ArchiveLoadFailed, StatusAndHeadersParserException, AttributeError, ValueError, IndexError)
_GZIP_REASONS = {TRUNCATED: TRUNCATED_GZIP}  # any other gzip damage is CORRUPT_GZIP


class _RecordError(Exception):
    """A record that cannot be read on from; the stream stops or resyncs after it."""

    def __init__(self, reason: str, offset: int, message: str) -> None:
        super().__init__(message)
        self.reason, self.offset = reason, offset


def read_records(fh: BinaryIO, *, source: str = "", max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 layout: Layout | None = None, start_offset: int = 0,
                 claim: Callable[[int], bool] | None = None) -> Iterator[tuple[int, Page | ReadIssue]]:
    """Yield `(offset, Page | ReadIssue)` for each record, in file order.

    One-member-per-record files are read in member groups (warc_ranges.MemberGroups): `offset` is the raw
    offset of the record's group (of the damaged member for gzip damage), `start_offset` must be a group start,
    and `claim(offset)` is asked before each group (the Beam reader's try_claim): reading stops when it says no.
    Other layouts are read whole; `offset` is then the record's position in the (inflated) stream.
    """
    reader = _RecordReader(source=source, max_record_bytes=max_record_bytes)
    layout = layout or warc_ranges.detect_layout(fh)
    if layout.kind == warc_ranges.GZIP_MEMBERS:
        yield from reader.read_groups(MemberGroups(fh, start_offset), claim=claim)
        return
    fh.seek(0)
    stream = GzipStream(fh) if layout.kind == warc_ranges.GZIP_WHOLE else fh
    if (yield from reader.read_stream(stream)) == 0:
        yield 0, ReadIssue(EMPTY_FILE, "no records")


def _damage(stream):
    """The gzip damage that ended `stream`, if any (a plain file has none)."""
    return getattr(stream, "damage", None)


def _cut_reason(stream) -> str:
    """Why a record ends early: corrupt gzip data, else the file (or the readable part of it) ends."""
    damage = _damage(stream)
    return CORRUPT_RECORD if damage is not None and damage.kind == CORRUPT else TRUNCATED_RECORD


def _gzip_issue(stream) -> ReadIssue | None:
    """The file-level issue for damage a gzip stream met, if any."""
    damage = _damage(stream)
    return None if damage is None else ReadIssue(_GZIP_REASONS.get(damage.kind, CORRUPT_GZIP), damage.detail)


class _RecordReader:
    """Parses records with warcio and turns each into a Page or a ReadIssue."""

    def __init__(self, *, source: str, max_record_bytes: int) -> None:
        self.source = source
        self.max_record_bytes = max_record_bytes
        self._loader = ArcWarcRecordLoader(verify_http=False, arc2warc=False)
        self._format: str | None = None  # "warc" or "arc" once the first record is parsed

    def read_stream(self, stream) -> Iterator[tuple[int, Page | ReadIssue]]:
        """A plain or whole-file gzip stream; after a bad header or gzip damage, go on at the next record."""
        lines = Lines(stream, block_size=_BLOCK_BYTES)
        count, pending = 0, None
        while True:
            try:
                for offset, item in self._records(lines, fixed_offset=None, pending=pending):
                    count += 1
                    yield offset, item
                pending = None
            except _RecordError as err:
                count += 1
                yield err.offset, ReadIssue(err.reason, str(err))
                if (pending := self._resync(lines))[0]:
                    continue
            if (issue := _gzip_issue(stream)) is None:
                return count
            count += 1
            yield lines.position, issue
            if not stream.resume():
                return count
            pending = self._resync(lines)

    def read_groups(self, groups: MemberGroups, *,
                    claim: Callable[[int], bool] | None) -> Iterator[tuple[int, Page | ReadIssue]]:
        """One gzip member per record: each member group is one stream (so a record may run into the next
        member), and `claim(start)` is asked before a group is read."""
        while groups.next_group():
            if claim is not None and not claim(groups.start):
                return
            self._format = None  # a group reads the same whichever range begins at it
            yield from self._read_group(groups)

    def _read_group(self, groups: MemberGroups) -> Iterator[tuple[int, Page | ReadIssue]]:
        """A record comes out once every member it lies in passed its CRC: until then it is held, with the
        stream position where it ends."""
        start, lines, pending = groups.start, Lines(groups, block_size=_BLOCK_BYTES), None
        held: deque[tuple[int, Page | ReadIssue]] = deque()
        while True:
            try:
                for _, item in self._records(lines, fixed_offset=start, pending=pending):
                    held.append((lines.position, item))
                    yield from _release(held, start, groups.verified_bytes)
                pending = None
            except _RecordError as err:
                held.append((lines.position, ReadIssue(err.reason, str(err))))
                if (pending := self._resync(lines))[0]:
                    continue
            yield from _release(held, start, groups.verified_bytes)
            if groups.damage is None:
                return
            yield from self._damaged(groups, start, [item for _, item in held])
            held.clear()
            if not groups.resume_group():
                return
            pending = self._resync(lines)

    def _damaged(self, groups: MemberGroups, start: int, unchecked: list) -> Iterator[tuple[int, ReadIssue]]:
        """Gzip damage: each record not yet checked by a CRC is reported as cut or corrupt, with its URL and id.
        Headers that did not parse are dropped unless they are the first (damaged data can inflate to extra
        bytes that look like the start of a record); a damaged member that gave no record still counts as one."""
        member, damage = groups.start, groups.damage
        reason, detail = _cut_reason(groups), f"in a damaged gzip member: {damage.detail}"
        records = [item for item in unchecked if isinstance(item, Page) or item.is_record]
        for n, item in enumerate(records):
            if isinstance(item, Page):
                yield start, ReadIssue(reason, detail, item.url, item.id)
            elif n == 0 or item.record_id:
                yield start, ReadIssue(reason, detail, item.url, item.record_id or f"{self.source}@{member}")
        if not records and groups.looks_like_member:
            yield start, ReadIssue(reason, detail, "", f"{self.source}@{member}")
        if groups.looks_like_member:
            yield member, _gzip_issue(groups)
        else:  # junk where a member should start
            yield member, ReadIssue(MISALIGNED_GZIP, f"no gzip member at {member}: {damage.detail}")

    def _records(self, lines: Lines, *, fixed_offset: int | None, pending=None):
        """Parse records until the stream ends; `pending` is an already read (status line, position)."""
        while True:
            (status, position), pending = pending or next_line(lines), None
            if not status:
                return
            offset = position if fixed_offset is None else fixed_offset
            record = self._parse(lines, status, offset)
            if isinstance(record, ReadIssue):  # the stream ends in its headers
                yield offset, record
                return
            item = to_page(record, offset=offset, source=self.source, max_record_bytes=self.max_record_bytes)
            if _drain(record.raw_stream):
                message = f"record at offset {offset} ends before its Content-Length ({record.length})"
                item = self._issue(record, offset, _cut_reason(lines.stream), message)
            yield offset, item

    def _issue(self, record, offset: int, reason: str, message: str) -> ReadIssue:
        """A record-level issue that names the record (URL and id)."""
        return ReadIssue(reason, message, record_url(record), record_id_of(record, offset=offset, source=self.source))

    def _parse(self, lines: Lines, status: bytes, offset: int):
        """The record with its WARC-Type lower-cased and HTTP headers read, or a ReadIssue if the file ends
        in its headers; raises _RecordError for headers that are not a record."""
        try:
            record = self._loader.parse_record_stream(lines, status.decode("latin-1"), self._format,
                                                      no_record_parse=True)
        except (EOFError, *_HEADER_ERRORS) as err:
            if cut_in_headers(lines, status, self._format):
                return ReadIssue(_cut_reason(lines.stream), f"the file ends in the headers of the record at {offset}")
            at_start = self._format is None and not status.startswith((b"WARC", b"filedesc:"))
            message = f"{type(err).__name__}: {err}"[:300]
            raise _RecordError(NOT_ARCHIVE if at_start else INVALID_HEADER, offset, message) from err
        self._format = record.format
        # warcio also returns a record when the file ends mid-header (e.g. right after "Content-Length: ", which it
        # reads as 0): no blank line closed the headers, so it is a cut record whatever it parsed to.
        if cut_in_headers(lines, status, self._format):
            if not lines.last_text.endswith(b"\n") and record.rec_headers is not None:  # a half header names nothing
                record.rec_headers.remove_header(lines.last_text.split(b":", 1)[0].strip().decode("latin-1"))
            return self._issue(record, offset, _cut_reason(lines.stream),
                               f"the file ends in the headers of the record at {offset}")
        if record.length is None:
            raise _RecordError(INVALID_HEADER, offset, f"record at offset {offset} has no Content-Length")
        record.rec_type = (record.rec_type or "").lower()
        if record.rec_type == "response":  # the only type whose HTTP headers a page needs
            try:
                record.http_headers = self._loader.load_http_headers(
                    record.rec_type, record_url(record), record.raw_stream, record.length)
            except EOFError:  # cut in the HTTP headers: _drain reports the record as truncated
                pass
            except _HEADER_ERRORS as err:
                raise _RecordError(INVALID_HEADER, offset, f"{type(err).__name__}: {err}"[:300]) from err
        return record

    def _resync(self, lines: Lines) -> tuple[bytes, int]:
        """The next line that can start a record: `WARC/1.`, or an ARC header line in an ARC file."""
        return next_line(lines, start=is_arc_header if self._format == "arc" else is_warc_start)


def _release(held: deque, start: int, verified_bytes: int) -> Iterator[tuple[int, Page | ReadIssue]]:
    """The held items (stream end position, item) that lie wholly in CRC-checked members, in order; all of
    them once they span more than _MAX_UNCHECKED_BYTES, so memory stays bounded."""
    if held and held[-1][0] - verified_bytes > _MAX_UNCHECKED_BYTES:
        verified_bytes = held[-1][0]
    while held and held[0][0] <= verified_bytes:
        yield start, held.popleft()[1]


def _drain(stream) -> bool:
    """Read the rest of a record; True if the stream ended before its Content-Length."""
    while stream.read(_BLOCK_BYTES):
        pass
    return getattr(stream, "limit", 0) > 0
