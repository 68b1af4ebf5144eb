"""Read WARC and ARC files into decoded HTML `Page`s, reporting every record it skips and why.

warcio parses the record and HTTP headers and removes chunked transfer encoding. FastWARC is about 2.5x
faster (docs/feasibility.md section 6) but reads no ARC files and leaves HTTP encodings to the caller,
so we use warcio. Gzip members and content encodings are handled here: warcio hides inflate errors
(it logs them to stderr and returns b""), and its brotli hook fails on brotli >= 1.2.
"""
from __future__ import annotations

import codecs
import os
import re
import uuid
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import brotli
from resiliparse.parse.encoding import detect_encoding, map_encoding_to_html5
from warcio.bufferedreaders import BufferedReader, ChunkedDataReader
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecordLoader
from warcio.statusandheaders import StatusAndHeadersParserException
from warcio.timeutils import timestamp_to_iso_date

from transforms.document import Page
from transforms.io import warc_ranges
from transforms.io.warc_ranges import GzipMembers, GzipStream, Layout, TruncatedGzipError

NOT_RESPONSE = "warc.not_response"  # warcinfo, request, metadata, revisit, conversion, ARC file header
NOT_HTML = "warc.not_html"
TOO_LARGE = "warc.too_large"  # record or decoded payload over max_record_bytes
DECODE_ERROR = "warc.decode_error"  # content encoding could not be undone
EMPTY_PAYLOAD = "warc.empty_payload"  # an HTML response with no body
FILE_ERROR = "warc.error."  # prefix of the errors below; they concern the file, not one record
EMPTY_FILE = "warc.error.empty_file"
NOT_ARCHIVE = "warc.error.not_archive"  # the file does not start with a WARC or ARC record
INVALID_HEADER = "warc.error.invalid_header"
TRUNCATED_RECORD = "warc.error.truncated_record"  # file ends before Content-Length bytes
TRUNCATED_GZIP = "warc.error.truncated_gzip"
CORRUPT_GZIP = "warc.error.corrupt_gzip"  # inflate failed inside a member
MISALIGNED_GZIP = "warc.error.misaligned_gzip"  # a record crosses a member boundary, or junk between members

# Common Crawl stores at most 1 MiB of payload per capture (longer ones carry WARC-Truncated: length);
# 8 MiB keeps every such page and only drops outliers from other crawlers.
DEFAULT_MAX_RECORD_BYTES = 8 << 20
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_HTML_SNIFF = tuple(f"<{tag}".encode() for tag in ("!doctype html", "html", "head", "script", "iframe", "h1",
                                                     "div", "font", "table", "a", "style", "title", "b", "body",
                                                     "br", "p", "!--"))
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:+-]+)""", re.IGNORECASE)
_BLOCK_BYTES = 1 << 16
_MAX_LINE_BYTES = 1 << 16
# warcio raises AttributeError/ValueError/IndexError on records that lack required fields
# (e.g. jhove invalid-warcfile-lonely-revisit.warc has no WARC-Target-URI).
_HEADER_ERRORS = (ArchiveLoadFailed, StatusAndHeadersParserException, AttributeError, ValueError, IndexError)


@dataclass(frozen=True, slots=True)
class ReadIssue:
    """A record skipped, or a part of a file that could not be read."""

    reason: str
    detail: str = ""
    url: str = ""
    record_id: str = ""

    @property
    def is_record(self) -> bool:  # False for a file-level error: there is no record to count
        return not self.reason.startswith(FILE_ERROR)


class _RecordError(Exception):
    """A record that cannot be read on from; the stream stops or resyncs after it."""

    def __init__(self, reason: str, offset: int, message: str) -> None:
        super().__init__(message)
        self.reason, self.offset = reason, offset


def read_records(fh: BinaryIO, *, source: str = "", max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 layout: Layout | None = None, start_offset: int = 0) -> Iterator[tuple[int, Page | ReadIssue]]:
    """Yield `(offset, Page | ReadIssue)` for each record, in file order.

    `offset` is the raw offset of the record's gzip member for one-member-per-record files (the unit the
    Beam reader claims), else the record's position in the (inflated) stream. `start_offset` must be a
    member start and is used for per-record gzip only.
    """
    reader = _RecordReader(source=source, max_record_bytes=max_record_bytes)
    layout = layout or warc_ranges.detect_layout(fh)
    if layout.kind == warc_ranges.GZIP_MEMBERS:
        yield from reader.read_members(GzipMembers(fh, start_offset))
        return
    fh.seek(0)
    stream = GzipStream(fh) if layout.kind == warc_ranges.GZIP_WHOLE else fh
    if (yield from reader.read_stream(stream)) == 0:
        yield 0, ReadIssue(EMPTY_FILE, "no records")


class _RecordReader:
    """Parses records with warcio and turns each into a Page or a ReadIssue."""

    def __init__(self, *, source: str, max_record_bytes: int) -> None:
        self.source = source
        self.max_record_bytes = max_record_bytes
        self._loader = ArcWarcRecordLoader(verify_http=False, arc2warc=False)
        self._format: str | None = None  # "warc" or "arc" once the first record is parsed

    def read_stream(self, stream: BinaryIO) -> Iterator[tuple[int, Page | ReadIssue]]:
        """A plain or whole-file gzip stream; after a bad header, go on at the next `WARC/1.` line."""
        lines = BufferedReader(stream, block_size=_BLOCK_BYTES)
        offset, pending, count = 0, None, 0
        try:
            while True:
                try:
                    for offset, item in self._records(lines, fixed_offset=None, pending=pending):
                        count += 1
                        yield offset, item
                    return count
                except _RecordError as err:
                    count += 1
                    yield err.offset, ReadIssue(err.reason, str(err))
                    if not (pending := _next_line(lines, warc_only=True))[0]:
                        return count
        except TruncatedGzipError as err:
            yield offset, ReadIssue(TRUNCATED_GZIP, str(err))
        except (zlib.error, OSError) as err:  # gzip.BadGzipFile is an OSError
            yield offset, ReadIssue(CORRUPT_GZIP, str(err))
        return count + 1

    def read_members(self, members: GzipMembers) -> Iterator[tuple[int, Page | ReadIssue]]:
        """One gzip member per record; after an error, resync at the next member that starts a record."""
        while members.next_member():
            start = members.start
            try:
                yield from self._records(BufferedReader(members, block_size=_BLOCK_BYTES), fixed_offset=start)
                continue
            except _RecordError as err:
                issue = ReadIssue(err.reason, str(err))
            except TruncatedGzipError as err:
                issue = ReadIssue(TRUNCATED_GZIP, str(err))
            except zlib.error as err:  # no gzip magic where a member should start: misaligned
                reason = CORRUPT_GZIP if members.starts_with_magic else MISALIGNED_GZIP
                issue = ReadIssue(reason, f"{err} at {start}")
            yield start, issue
            if not members.resync(start + 1):
                return

    def _records(self, lines: BufferedReader, *, fixed_offset: int | None, pending=None):
        """Parse records until the stream ends; `pending` is an already read (status line, position)."""
        while True:
            (status, position), pending = pending or _next_line(lines), None
            if not status:
                return
            offset = position if fixed_offset is None else fixed_offset
            try:
                record = self._loader.parse_record_stream(lines, status.decode("latin-1"), self._format)
            except EOFError as err:
                raise _RecordError(TRUNCATED_RECORD, offset, f"stream ends in the headers at {offset}") from err
            except _HEADER_ERRORS as err:  # a first line neither WARC nor ARC: not an archive at all
                at_start = self._format is None and not status.startswith((b"WARC", b"filedesc:"))
                message = f"{type(err).__name__}: {err}"[:300]
                raise _RecordError(NOT_ARCHIVE if at_start else INVALID_HEADER, offset, message) from err
            if record.length is None:
                raise _RecordError(INVALID_HEADER, offset, f"record at offset {offset} has no Content-Length")
            self._format = record.format
            item = self._to_page(record, offset)
            if _drain(record.raw_stream):
                message = f"record at offset {offset} ends before its Content-Length ({record.length})"
                if fixed_offset is not None:  # the record goes on in the next member
                    raise _RecordError(MISALIGNED_GZIP, offset, message)
                item = ReadIssue(TRUNCATED_RECORD, message, _url(record), self._record_id(record, offset))
            yield offset, item

    def _to_page(self, record, offset: int) -> Page | ReadIssue:
        url, record_id = _url(record), self._record_id(record, offset)
        if record.rec_type != "response":
            return ReadIssue(NOT_RESPONSE, record.rec_type or "", url, record_id)
        if record.length > self.max_record_bytes:
            return ReadIssue(TOO_LARGE, f"{record.length} bytes", url, record_id)
        headers = record.http_headers
        content_type = headers.get_header("content-type", "") if headers else record.content_type or ""
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime and mime not in HTML_TYPES:
            return ReadIssue(NOT_HTML, mime, url, record_id)
        try:
            body = _payload(record, self.max_record_bytes)
        except (zlib.error, brotli.error, LookupError) as err:
            return ReadIssue(DECODE_ERROR, str(err)[:200], url, record_id)
        if not body:
            return ReadIssue(EMPTY_PAYLOAD, "", url, record_id)
        if len(body) > self.max_record_bytes:
            return ReadIssue(TOO_LARGE, f"payload over {self.max_record_bytes} bytes", url, record_id)
        if not mime and not _sniffs_html(body):
            return ReadIssue(NOT_HTML, "no Content-Type, payload does not look like HTML", url, record_id)
        html, charset = decode_html(body, header_charset=_charset_param(content_type))
        arc_date = record.rec_headers.get_header("archive-date") if record.format == "arc" else None
        date = timestamp_to_iso_date(arc_date) if arc_date else record.rec_headers.get_header("WARC-Date") or ""
        return Page(id=record_id, url=url, warc_date=date, html=html, charset=charset, source=self.source)

    def _record_id(self, record, offset: int) -> str:
        """WARC-Record-ID; ARC records (or WARC ones lacking it) get one from file name, offset, URL and date."""
        if record.format != "arc" and (record_id := record.rec_headers.get_header("WARC-Record-ID")):
            return record_id
        date = record.rec_headers.get_header("archive-date" if record.format == "arc" else "WARC-Date") or ""
        key = "|".join((os.path.basename(self.source), str(offset), _url(record), date))
        return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, key)}>"


def _url(record) -> str:
    name = "uri" if record.format == "arc" else "WARC-Target-URI"
    return (record.rec_headers.get_header(name) or "").strip("<>")


def _next_line(lines: BufferedReader, *, warc_only: bool = False) -> tuple[bytes, int]:
    """The next non-blank line (or next `WARC/1.` line) and its position in the stream; b"" at the end."""
    while True:
        position = lines.tell() - lines.rem_length()
        line = lines.readline(_MAX_LINE_BYTES)
        if not line or (line.startswith(b"WARC/1.") if warc_only else line.strip()):
            return line, position


def _drain(stream) -> bool:
    """Read the rest of a record; True if the stream ended before its Content-Length."""
    while stream.read(_BLOCK_BYTES):
        pass
    return getattr(stream, "limit", 0) > 0


def _payload(record, max_bytes: int) -> bytes:
    """The HTTP body with chunked transfer encoding and content encodings removed, at most max_bytes + 1."""
    headers = record.http_headers
    stream = record.raw_stream
    if headers and "chunked" in (headers.get_header("transfer-encoding") or "").lower():
        stream = ChunkedDataReader(stream)
    body = raw = stream.read(max_bytes + 1)
    encodings = (headers.get_header("content-encoding") or "") if headers else ""
    try:
        for encoding in reversed([e.strip().lower() for e in encodings.split(",")]):
            body = _uncompress(body, encoding, max_bytes + 1)
    except (zlib.error, brotli.error):
        # Common Crawl 2013-2014 kept "Content-Encoding: gzip" on bodies it had already inflated.
        if not _sniffs_html(raw):
            raise
        body = raw
    return body


def _uncompress(data: bytes, encoding: str, max_bytes: int) -> bytes:
    """Undo one HTTP content encoding (RFC 9110 section 8.4.1), returning at most max_bytes."""
    if encoding in ("", "identity", "none"):
        return data
    if encoding == "br":
        return brotli.Decompressor().process(data, output_buffer_limit=max_bytes)[:max_bytes]
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise LookupError(f"unsupported content-encoding {encoding!r}")
    try:
        return zlib.decompressobj(32 + zlib.MAX_WBITS).decompress(data, max_bytes)  # gzip or zlib header
    except zlib.error:
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(data, max_bytes)  # raw deflate


def _charset_param(content_type: str) -> str:
    params = (p.partition("=") for p in content_type.split(";")[1:])
    return next((v.strip().strip("\"'") for k, _, v in params if k.strip().lower() == "charset"), "")


def _sniffs_html(body: bytes) -> bool:  # WHATWG MIME sniffing, "rules for identifying an unknown type"
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return any(head.startswith(tag) and head[len(tag):len(tag) + 1] in (b" ", b">", b"")
               for tag in _HTML_SNIFF)


def _codec(label: str) -> str | None:
    """The Python codec for a charset label, WHATWG-mapped (iso-8859-1 reads as cp1252); None if unknown."""
    try:
        codecs.lookup(label)  # map_encoding_to_html5 maps unknown labels to utf-8, so check first
        return codecs.lookup(map_encoding_to_html5(label)).name
    except LookupError:
        return None


def decode_html(body: bytes, *, header_charset: str = "") -> tuple[str, str]:
    """Decode as a browser would: BOM, HTTP charset, <meta charset>, then uchardet. Returns (html, charset).

    A declared charset wins even if some bytes are invalid in it (replaced, as browsers do); never raises.
    """
    if body.startswith(codecs.BOM_UTF8):
        return body[3:].decode("utf-8", "replace"), "utf-8"
    meta = _META_CHARSET.search(body, 0, 1024)  # WHATWG prescans the first 1024 bytes (HTML 13.2.3.2)
    for label in (header_charset, meta.group(1).decode("ascii") if meta else ""):
        if charset := _codec(label) if label else None:
            return body.decode(charset, "replace"), charset
    for charset in ("utf-8", detect_encoding(body), "cp1252"):  # valid UTF-8 is almost never another charset
        try:
            return body.decode(charset), charset
        except (UnicodeError, LookupError):
            continue
    return body.decode("utf-8", "replace"), "utf-8"
