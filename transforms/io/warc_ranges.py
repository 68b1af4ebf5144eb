"""Where records start in a WARC file, so one file can be read as several byte ranges.

Common Crawl writes one gzip member per record (WARC 1.1 annex D.2), so any member that inflates to
`WARC/` starts a record and a reader can begin there. Everything here takes an open binary file object
(seek/read only), so it works on any Beam filesystem stream; nothing opens paths.
"""
from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from transforms.io.gzip_stream import (
    BLOCK_BYTES, GZIP_WBITS, GzipStream, find_member, has_member_header, inflates, looks_like_member,
)

WARC_MAGIC = b"WARC/"  # every WARC record starts with its version line, WARC 1.1 section 4
EMPTY, PLAIN, GZIP_WHOLE, GZIP_MEMBERS = "empty", "plain", "gzip_whole", "gzip_members"

_CONFIRM_BYTES = 4096  # raw bytes read to confirm a candidate: gzip header (FNAME can be long) + first block
_HEAD_BYTES = 64  # inflated bytes that must show `WARC/` (after blank lines) for a member to start a record
_MAX_PROBE_BYTES = 16 << 20  # a first member longer than this is taken as whole-file gzip (never split)


@dataclass(frozen=True, slots=True)
class Layout:
    """How a file is compressed, and whether it can be read as independent byte ranges."""

    kind: str  # EMPTY, PLAIN, GZIP_WHOLE or GZIP_MEMBERS
    is_warc: bool  # the first record starts with `WARC/` (else ARC, or not an archive)

    @property
    def splittable(self) -> bool:
        return self.kind == GZIP_MEMBERS and self.is_warc


class MemberGroups(GzipStream):
    """Concatenated gzip members read as groups, one stream each, so a record may run on into the next member.

    A group starts at a member that begins a WARC record (or where reading starts) and takes in every member
    after it that does not (bgzip-like blocks, a member cut mid-record, junk). `read()` returns b"" at the end
    of the group, of the file or at damage; `next_group()` starts the next one. A range reader begins only where
    `find_record_start` finds a member, which is always a group start, so each group is read by one range.
    """

    def seek(self, offset: int) -> None:
        super().seek(offset)
        self._waiting: bytes | None = None  # the first bytes of a member that starts the next group

    def next_group(self) -> bool:
        """Start a group at the current raw position; False at the end of the file."""
        self.out_bytes = self.verified_bytes = 0
        if self._waiting is None:
            return self.next_member()
        self._pending, self._waiting = self._waiting, None
        return True

    def read(self, size: int | None = BLOCK_BYTES) -> bytes:
        return b"" if self._waiting is not None else super().read(size)

    def resume_group(self) -> bool:
        """After damage, go on at the next member after the damaged member's start (damage can run past the
        member's end): True if the group goes on there, False if a new group starts there (or none)."""
        found = find_member(self._fh, self.start + 1, accept=_member_at)
        goes_on = found is not None and not is_record_start(self._fh, found)
        if found is None:  # nothing more to read: the next group is at the end of the file
            self._fh.seek(0, io.SEEK_END)
            found = self._fh.tell()
        self.seek(found)
        return goes_on

    def _goes_on(self) -> bool:
        if not self.next_member():
            return False
        head = self._inflate_head()
        if head is not None and _is_record_head(head):
            self._waiting = head
            return False
        self._pending = head or b""
        return True

    def _inflate_head(self) -> bytes | None:
        """The member's first bytes, inflated from the same input with the same limit as `starts_record` (so a
        group ends exactly where a range reader would begin) and kept, not inflated twice. None if they do not
        inflate: the member is then read from its start, and its damage found, as any other."""
        raw = self._peek(_CONFIRM_BYTES)
        try:
            head = self._inflater.decompress(raw, _HEAD_BYTES)
        except zlib.error:
            self._inflater = zlib.decompressobj(GZIP_WBITS)
            return None
        used = len(raw) - len(self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail)
        self._raw, self._raw_at = self._raw[used:], self._raw_at + used
        return head


def _member_at(raw: bytes) -> bool:
    """A member to go on at after damage: one that inflates, or a damaged one (then reported in its turn)."""
    return inflates(raw) or has_member_header(raw)


def starts_record(raw: bytes) -> bool:
    """Whether `raw` is a gzip member whose text starts with `WARC/` (after blank lines, as some writers put
    the previous record's trailing CRLFs at the start of the next member)."""
    try:
        head = zlib.decompressobj(GZIP_WBITS).decompress(raw, _HEAD_BYTES)
    except zlib.error:
        return False
    return _is_record_head(head)


def _is_record_head(head: bytes) -> bool:
    return head.lstrip(b"\r\n").startswith(WARC_MAGIC)


def is_record_start(fh: BinaryIO, offset: int) -> bool:
    """Whether a gzip member starts at `offset` and inflates to the start of a WARC record."""
    fh.seek(offset)
    return starts_record(fh.read(_CONFIRM_BYTES))


def find_record_start(fh: BinaryIO, offset: int, *, end: int | None = None) -> int | None:
    """The first offset >= `offset` (and < `end`) where a gzip member begins a WARC record, else None."""
    return find_member(fh, offset, accept=starts_record, end=end)


def detect_layout(fh: BinaryIO, *, max_probe_bytes: int = _MAX_PROBE_BYTES) -> Layout:
    """Plain, whole-file gzip or one member per record.

    Per record if the first member ends within the probe and starts a WARC record (or is damaged), and the
    second member starts one too, or failing that (damage, blocks) any later member within the probe. Members
    cut anywhere else (bgzip, ARC) are read as one stream; a per-record file whose later members are cut
    elsewhere is still read right, as MemberGroups lets a record run on into the next member.
    """
    fh.seek(0)
    head = fh.read(_CONFIRM_BYTES)
    if not head:
        return Layout(kind=EMPTY, is_warc=False)
    if not looks_like_member(head):  # a magic cut short or with a flipped bit is a damaged gzip file
        return Layout(kind=PLAIN, is_warc=head.startswith(WARC_MAGIC))
    is_warc = starts_record(head)
    first = GzipStream(fh, 0, one_member=True)
    first.next_member()
    while first.read():
        if first.end > max_probe_bytes:
            return Layout(kind=GZIP_WHOLE, is_warc=is_warc)
    if first.damage is None and first.next_member() and is_record_start(fh, first.start):
        per_record = is_warc
    else:
        later = find_record_start(fh, 1, end=max_probe_bytes) if is_warc or first.damage is not None else None
        per_record = later is not None
    return Layout(kind=GZIP_MEMBERS if per_record else GZIP_WHOLE, is_warc=is_warc or per_record)
