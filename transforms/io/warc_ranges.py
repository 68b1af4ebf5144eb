"""Where records start in a WARC file, so one file can be read as several byte ranges.

Common Crawl writes one gzip member per record (WARC 1.1 annex D.2), so any member that inflates to
`WARC/` starts a record and a reader can begin there. Everything here takes an open binary file object
(seek/read only), so it works on any Beam filesystem stream; nothing opens paths.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import BinaryIO

from transforms.io.gzip_stream import GZIP_MAGIC, GZIP_WBITS, GzipStream, find_member

WARC_MAGIC = b"WARC/"  # every WARC record starts with its version line, WARC 1.1 section 4
EMPTY, PLAIN, GZIP_WHOLE, GZIP_MEMBERS = "empty", "plain", "gzip_whole", "gzip_members"

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


class GzipMembers(GzipStream):
    """Reads concatenated gzip members one at a time, knowing the raw offset where each starts and ends.

    `read()` returns the current member's inflated bytes and b"" at its end (or at `damage`: a cut or corrupt
    member); `next_member()` moves on.
    """

    def __init__(self, fh: BinaryIO, offset: int = 0) -> None:
        super().__init__(fh, offset, one_member=True)

    def resync(self, offset: int) -> bool:
        """Go on at the first member at or after `offset` that starts a WARC record; False if none."""
        found = find_record_start(self._fh, offset)
        if found is not None:
            self.seek(found)
        return found is not None

    def drain(self) -> None:
        """Inflate the rest of the current member without keeping it."""
        while self.read():
            pass


def _inflates_to_warc(raw: bytes) -> bool:
    """Whether `raw` is a gzip member whose text starts with `WARC/` (after blank lines, as some writers put
    the previous record's trailing CRLFs at the start of the next member)."""
    try:
        head = zlib.decompressobj(GZIP_WBITS).decompress(raw, 64)
    except zlib.error:
        return False
    return head.lstrip(b"\r\n").startswith(WARC_MAGIC)


def is_record_start(fh: BinaryIO, offset: int) -> bool:
    """Whether a gzip member starts at `offset` and inflates to the start of a WARC record."""
    fh.seek(offset)
    return _inflates_to_warc(fh.read(_CONFIRM_BYTES))


def find_record_start(fh: BinaryIO, offset: int, *, end: int | None = None) -> int | None:
    """The first offset >= `offset` (and < `end`) where a gzip member begins a WARC record, else None."""
    return find_member(fh, offset, accept=_inflates_to_warc, end=end)


def detect_layout(fh: BinaryIO, *, max_probe_bytes: int = _MAX_PROBE_BYTES) -> Layout:
    """Plain, whole-file gzip or one member per record.

    Per record only if the first member ends before EOF and the next one starts a WARC record too: members
    cut anywhere else (bgzip, `cat` of whole-file gzips, ARC) are read as one stream, so no record is split.
    """
    fh.seek(0)
    head = fh.read(_CONFIRM_BYTES)
    if not head:
        return Layout(kind=EMPTY, is_warc=False)
    if not head.startswith(GZIP_MAGIC):
        kind = GZIP_WHOLE if GZIP_MAGIC.startswith(head) else PLAIN  # a gzip file cut inside its magic
        return Layout(kind=kind, is_warc=head.startswith(WARC_MAGIC))
    is_warc = _inflates_to_warc(head)
    members = GzipMembers(fh, 0)
    members.next_member()
    while members.read():
        if members.end > max_probe_bytes:
            return Layout(kind=GZIP_WHOLE, is_warc=is_warc)
    per_record = is_warc and members.damage is None and members.next_member() and is_record_start(fh, members.start)
    return Layout(kind=GZIP_MEMBERS if per_record else GZIP_WHOLE, is_warc=is_warc)
