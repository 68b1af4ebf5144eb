"""Line-level scanning of WARC/ARC streams for transforms/io/warc.py: a line reader that knows its position and
end, where records start, and whether a file ends inside a record's headers."""
from __future__ import annotations

import re

from warcio.bufferedreaders import BufferedReader
from warcio.recordloader import ArcWarcRecordLoader

_MAX_LINE_BYTES = 1 << 16
_ARC_HEADER = re.compile(rb"\S+ \S+ \d{14} \S+ \d+\r?\n")  # URL IP-address archive-date content-type length
_RECORD_STARTS = (b"WARC/", b"filedesc:")  # first line of a WARC record, of an ARC file's header record


class Lines(BufferedReader):
    """warcio's line reader that can tell whether its stream is exhausted."""

    last_line = b""  # the last line read: a blank one closes a header block
    last_text = b""  # the last line read that was not b"" (at the end of the file, the line the file ends in)

    def readline(self, length=None) -> bytes:
        self.last_line = super().readline(length)
        if self.last_line:
            self.last_text = self.last_line
        return self.last_line

    def at_end(self) -> bool:
        self._fillbuff()
        return self.empty()

    @property
    def position(self) -> int:
        return self.tell() - self.rem_length()


def cut_in_headers(lines: Lines, status: bytes, known_format: str | None) -> bool:
    """Whether the file ends in the headers of a record `status` starts (rather than the headers being bad):
    no blank line closed them, and the first line is a WARC version warcio reads, cut short, or an ARC line."""
    if lines.last_line in (b"\r\n", b"\n") or not lines.at_end():
        return False
    if known_format == "arc":
        return True
    if status.endswith(b"\n"):
        return status.rstrip().decode("latin-1") in ArcWarcRecordLoader.WARC_TYPES
    return any(status.startswith(s) or s.startswith(status) for s in _RECORD_STARTS)


def is_warc_start(line: bytes) -> bool:
    return line.startswith(b"WARC/1.")


def is_arc_header(line: bytes) -> bool:
    return _ARC_HEADER.fullmatch(line) is not None


def next_line(lines: Lines, *, start=None) -> tuple[bytes, int]:
    """The next non-blank line (or next line `start` accepts) and its position in the stream; b"" at the end."""
    while True:
        position = lines.position
        line = lines.readline(_MAX_LINE_BYTES)
        if not line or (start(line) if start else line.strip()):
            return line, position
