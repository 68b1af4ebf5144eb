"""Where records start in a WARC file, so one file can be read as several byte ranges.

Common Crawl writes one gzip member per record (WARC 1.1 annex D.2), so any member that inflates to
`WARC/` starts a record and a reader can begin there. Everything here takes an open binary file object
(seek/read only), so it works on any Beam filesystem stream; nothing opens paths.
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b\x08"  # ID1, ID2 and CM=8 (deflate), RFC 1952 section 2.3.1
WARC_MAGIC = b"WARC/"  # every WARC record starts with its version line, WARC 1.1 section 4
EMPTY, PLAIN, GZIP_WHOLE, GZIP_MEMBERS = "empty", "plain", "gzip_whole", "gzip_members"

_GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib's "gzip wrapper only" mode
_BLOCK_BYTES = 1 << 16
_CONFIRM_BYTES = 4096  # raw bytes read to confirm a candidate: gzip header (FNAME can be long) + first block
_MAX_PROBE_BYTES = 16 << 20  # a first member longer than this is taken as whole-file gzip (never split)


@dataclass(frozen=True, slots=True)
class Layout:
    """How a file is compressed, and whether it can be read as independent byte ranges."""

    kind: str  # EMPTY, PLAIN, GZIP_WHOLE or GZIP_MEMBERS
    is_warc: bool  # the first record starts with `WARC/` (else ARC, or not an archive)

    @property
    def splittable(self) -> bool:
        return self.kind == GZIP_MEMBERS and self.is_warc


class TruncatedGzipError(Exception):
    """The file ended inside a gzip member (not an EOFError, which warcio uses for "no more records")."""


class GzipStream:
    """A whole-file (multi-member) gzip stream whose truncation raises TruncatedGzipError."""

    def __init__(self, fh: BinaryIO) -> None:
        self._gzip = gzip.GzipFile(fileobj=fh, mode="rb")

    def read(self, size: int = -1) -> bytes:
        try:
            return self._gzip.read(size)
        except EOFError as err:
            raise TruncatedGzipError(str(err)) from err


class GzipMembers:
    """Reads concatenated gzip members one at a time, knowing the raw offset where each starts and ends.

    `read()` returns the current member's inflated bytes and b"" at its end; `next_member()` moves on.
    Raises TruncatedGzipError if the file ends inside a member, zlib.error on corrupt data.
    """

    def __init__(self, fh: BinaryIO, offset: int = 0) -> None:
        self._fh = fh
        self.seek(offset)

    def seek(self, offset: int) -> None:
        """Drop the current member; the next call to `next_member()` starts at `offset`."""
        self._fh.seek(offset)
        self._raw, self._raw_at = b"", offset  # raw bytes not yet inflated, and the offset of their first
        self._inflater = None
        self.start = offset
        self.starts_with_magic = False

    def resync(self, offset: int) -> bool:
        """Go on at the first member at or after `offset` that starts a WARC record; False if none."""
        found = find_record_start(self._fh, offset)
        if found is not None:
            self.seek(found)
        return found is not None

    def next_member(self) -> bool:
        """Start the member at the current position; False at the end of the file."""
        if len(self._raw) < len(GZIP_MAGIC):
            self._raw += self._fh.read(_BLOCK_BYTES)
        self.start = self._raw_at
        self.starts_with_magic = self._raw.startswith(GZIP_MAGIC)
        self._inflater = zlib.decompressobj(_GZIP_WBITS)
        return bool(self._raw)

    @property
    def end(self) -> int:
        """Raw offset just past the current member (valid once `read()` returned b"")."""
        return self._raw_at

    def read(self, size: int = _BLOCK_BYTES) -> bytes:
        inflater = self._inflater
        while inflater is not None and not inflater.eof:
            if not self._raw:
                self._raw = self._fh.read(_BLOCK_BYTES)
                if not self._raw:
                    raise TruncatedGzipError(f"file ends inside the gzip member at offset {self.start}")
            fed = len(self._raw)
            out = inflater.decompress(self._raw, size)
            self._raw = inflater.unconsumed_tail or inflater.unused_data
            self._raw_at += fed - len(self._raw)
            if out:
                return out
        return b""

    def drain(self) -> None:
        """Inflate the rest of the current member without keeping it."""
        while self.read():
            pass


def _inflates_to_warc(raw: bytes) -> bool:
    """Whether `raw` is a gzip member whose text starts with `WARC/` (after blank lines, as some writers put
    the previous record's trailing CRLFs at the start of the next member)."""
    try:
        head = zlib.decompressobj(_GZIP_WBITS).decompress(raw, 64)
    except zlib.error:
        return False
    return head.lstrip(b"\r\n").startswith(WARC_MAGIC)


def is_record_start(fh: BinaryIO, offset: int) -> bool:
    """Whether a gzip member starts at `offset` and inflates to the start of a WARC record."""
    fh.seek(offset)
    return _inflates_to_warc(fh.read(_CONFIRM_BYTES))


def find_record_start(fh: BinaryIO, offset: int, *, end: int | None = None) -> int | None:
    """The first offset >= `offset` (and < `end`) where a gzip member begins a WARC record, else None."""
    pos, carry = offset, b""
    while end is None or pos < end:
        fh.seek(pos)
        block = fh.read(_BLOCK_BYTES)
        if not block:
            return None
        buf, base = carry + block, pos - len(carry)
        hit = buf.find(GZIP_MAGIC)
        while hit != -1:
            if end is not None and base + hit >= end:
                return None
            if is_record_start(fh, base + hit):
                return base + hit
            hit = buf.find(GZIP_MAGIC, hit + 1)
        pos += len(block)
        carry = buf[1 - len(GZIP_MAGIC):]  # a magic split across two blocks is still found
    return None


def detect_layout(fh: BinaryIO, *, max_probe_bytes: int = _MAX_PROBE_BYTES) -> Layout:
    """Plain, whole-file gzip or one member per record: per record when the first member ends before EOF."""
    fh.seek(0)
    head = fh.read(_CONFIRM_BYTES)
    if not head:
        return Layout(kind=EMPTY, is_warc=False)
    if not head.startswith(GZIP_MAGIC):
        return Layout(kind=PLAIN, is_warc=head.startswith(WARC_MAGIC))
    is_warc = _inflates_to_warc(head)
    members = GzipMembers(fh, 0)
    members.next_member()
    try:
        while members.read():
            if members.end > max_probe_bytes:
                return Layout(kind=GZIP_WHOLE, is_warc=is_warc)
    except (TruncatedGzipError, zlib.error):
        return Layout(kind=GZIP_WHOLE, is_warc=is_warc)
    more = members.next_member()
    return Layout(kind=GZIP_MEMBERS if more else GZIP_WHOLE, is_warc=is_warc)
