"""Gzip members inflated without losing a byte: a cut or corrupt file ends where its good data ends.

`gzip.GzipFile` reads through a buffered reader that drops everything inflated in a read when that read meets
the cut (EOFError) or bad deflate data (zlib.error): a short whole-file .warc.gz lost every record. Here the
stream returns each byte it could inflate, then ends as a truncated plain file would, and `damage` says where
and why; `resume()` goes on at the next gzip member that inflates, so later members are not lost either.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable

GZIP_MAGIC = b"\x1f\x8b\x08"  # ID1, ID2 and CM=8 (deflate), RFC 1952 section 2.3.1
GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib's "gzip wrapper only" mode
TRUNCATED, CORRUPT = "truncated", "corrupt"  # Damage.kind

BLOCK_BYTES = 1 << 16
_CONFIRM_BYTES = 4096  # raw bytes inflated to confirm a candidate member: header (FNAME can be long) + first block


@dataclass(frozen=True, slots=True)
class Damage:
    """Why and where (raw file offset) a gzip stream ended early."""

    kind: str  # TRUNCATED or CORRUPT
    offset: int
    detail: str


class GzipStream:
    """Inflates the gzip members from `offset` on: all in sequence, or one per `next_member()` if `one_member`.

    `read()` returns b"" at the end of the file (of the member, with `one_member`) or at damage; inflated bytes
    are never dropped. Corrupt input is found by re-feeding the failing block one byte at a time from a copy of
    the inflater taken before it, so every byte before the bad one still comes out.
    """

    def __init__(self, fh: BinaryIO, offset: int = 0, *, one_member: bool = False) -> None:
        self._fh, self._one_member = fh, one_member
        self.out_bytes = 0  # inflated bytes returned so far
        self.verified_bytes = 0  # of them, those in members that ended with a good CRC and length
        self.seek(offset)

    def seek(self, offset: int) -> None:
        """Forget the current member; reading (or `next_member()`) starts at raw `offset`."""
        self._fh.seek(offset)
        self._raw, self._raw_at = b"", offset  # raw bytes not yet inflated, and the offset of their first
        self._inflater: zlib._Decompress | None = None
        self._slow_until = offset  # below this raw offset input is fed byte by byte (after corrupt data)
        self.start, self.damage = offset, None
        self.looks_like_member = False
        self._pending = b""  # inflated bytes not yet returned (a member's first bytes, inflated on starting it)

    @property
    def end(self) -> int:
        """Raw offset just past what has been inflated (past the member once `read()` returned b"")."""
        return self._raw_at

    def next_member(self) -> bool:
        """Start the member at the current raw position; False at the end of the file (reads then stay b"")."""
        while len(self._raw) < len(GZIP_MAGIC) and self._fill_more():
            pass
        if not self._raw:
            return False
        self.start, self.damage = self._raw_at, None
        self.looks_like_member = looks_like_member(self._raw)
        self._inflater = zlib.decompressobj(GZIP_WBITS)
        return True

    def read(self, size: int | None = BLOCK_BYTES) -> bytes:
        size = size if size and size > 0 else BLOCK_BYTES
        while self.damage is None:
            if not self._pending and (self._inflater is None or self._inflater.eof) and not self._next_in_sequence():
                return b""
            if self._pending:  # with what follows it, so a reader's buffer is not cut after a member's head
                out, self._pending = self._pending[:size], self._pending[size:]
                self._count(out)
                if not self._pending and not self._inflater.eof and len(out) < size and (self._raw or self._fill_more()):
                    out += self._inflate(size - len(out))
                return out
            if not self._raw and not self._fill_more():
                self._fail(TRUNCATED, self._raw_at, f"the file ends inside the gzip member at offset {self.start}")
                return b""
            if out := self._inflate(size):
                return out
        return b""

    def resume(self) -> bool:
        """After damage, go on at the next gzip member (past the damage) that inflates; False if none."""
        if self.damage is None:
            return False
        found = find_member(self._fh, self.damage.offset + 1, accept=inflates)
        if found is not None:
            self.seek(found)
        return found is not None

    def _next_in_sequence(self) -> bool:
        """Start the next member of a whole-file stream; False at a clean end (or with `one_member`)."""
        if self._one_member:
            return False
        if self._inflater is not None:  # gzip(1) accepts NUL padding after a member
            while (self._raw or self._fill_more()) and self._raw[:1] == b"\x00":
                pad = len(self._raw) - len(self._raw.lstrip(b"\x00"))
                self._raw_at, self._raw = self._raw_at + pad, self._raw[pad:]
            return self._goes_on()
        return self.next_member()

    def _goes_on(self) -> bool:
        """Start the member after one that ended; False where the stream ends there (a whole-file one does not)."""
        return self.next_member()

    def _peek(self, size: int) -> bytes:
        """The next `size` raw bytes (fewer at the end of the file), not consumed."""
        while len(self._raw) < size and self._fill_more():
            pass
        return self._raw[:size]

    def _fill_more(self) -> bool:
        block = self._fh.read(BLOCK_BYTES)
        self._raw += block
        return bool(block)

    def _inflate(self, size: int) -> bytes:
        slow = self._raw_at < self._slow_until
        chunk = self._raw[:1] if slow else self._raw
        before = None if slow else (self._inflater.copy(), self._raw, self._raw_at)
        try:
            out = self._inflater.decompress(chunk, size)
        except zlib.error as err:
            if before is None:  # fed one byte at a time: this byte is where the damage is
                self._fail(CORRUPT, self._raw_at,
                           f"corrupt gzip data at offset {self._raw_at} (member at {self.start}): {err}")
                return b""
            self._inflater, self._raw, self._raw_at = before  # retry this input byte by byte
            self._slow_until = self._raw_at + len(self._raw)
            return b""
        left = self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail
        self._raw = left + self._raw[len(chunk):]
        self._raw_at += len(chunk) - len(left)
        self._count(out)
        return out

    def _count(self, out: bytes) -> None:
        self.out_bytes += len(out)
        if self._inflater.eof and not self._pending:  # zlib checked the CRC-32 and ISIZE (RFC 1952 2.3.1)
            self.verified_bytes = self.out_bytes

    def _fail(self, kind: str, offset: int, detail: str) -> None:
        self.damage, self._raw = Damage(kind=kind, offset=offset, detail=detail), b""


def looks_like_member(raw: bytes) -> bool:
    """Whether `raw` starts with the gzip magic, cut short (at the end of a file) or with one bit flipped: a
    damaged member rather than junk between members."""
    head = raw[:len(GZIP_MAGIC)]
    return sum((a ^ b).bit_count() for a, b in zip(head, GZIP_MAGIC)) <= 1


def has_member_header(raw: bytes) -> bool:
    """Whether `raw` starts with a gzip header whose fixed fields are valid (RFC 1952 section 2.3.1: no reserved
    FLG bit, XFL 0, 2 or 4, OS 0-13 or 255): a member found even if its data is damaged. Random bytes pass
    about once in 10^11 positions."""
    return (len(raw) >= 10 and raw.startswith(GZIP_MAGIC) and not raw[3] & 0xE0 and raw[8] in (0, 2, 4)
            and (raw[9] <= 13 or raw[9] == 255))


def inflates(raw: bytes) -> bool:
    """Whether `raw` starts a gzip member whose first bytes inflate (a magic number inside data rarely does)."""
    try:
        return bool(zlib.decompressobj(GZIP_WBITS).decompress(raw, 64))
    except zlib.error:
        return False


def find_member(fh: BinaryIO, offset: int, *, accept: Callable[[bytes], bool],
                end: int | None = None) -> int | None:
    """The first offset >= `offset` (and < `end`) where a gzip member starts whose raw bytes `accept` takes."""
    pos, carry = offset, b""
    while end is None or pos < end:
        fh.seek(pos)
        block = fh.read(BLOCK_BYTES)
        if not block:
            return None
        buf, base = carry + block, pos - len(carry)
        hit = buf.find(GZIP_MAGIC)
        while hit != -1:
            if end is not None and base + hit >= end:
                return None
            fh.seek(base + hit)
            if accept(fh.read(_CONFIRM_BYTES)):
                return base + hit
            hit = buf.find(GZIP_MAGIC, hit + 1)
        pos += len(block)
        carry = buf[1 - len(GZIP_MAGIC):]  # a magic split across two blocks is still found
    return None
