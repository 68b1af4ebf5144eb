"""Why the WARC reader skipped a record or part of a file: reason names and the issue it reports."""
from __future__ import annotations

from dataclasses import dataclass

# A record skipped: counted as read in and dropped, with its URL and id when its headers were read.
NOT_RESPONSE = "warc.not_response"  # warcinfo, request, metadata, revisit, continuation, ARC file header
NOT_HTML = "warc.not_html"  # neither HTML nor (in a conversion record) plain text
TOO_LARGE = "warc.too_large"  # record or decoded payload over max_record_bytes
DECODE_ERROR = "warc.decode_error"  # content encoding could not be undone
EMPTY_PAYLOAD = "warc.empty_payload"  # a page with no body
TRUNCATED_RECORD = "warc.truncated_record"  # the file (or its gzip member) ends inside this record
CORRUPT_RECORD = "warc.corrupt_record"  # corrupt gzip data inside this record, or its member fails its CRC
# Damage to the file, not one record: counted as errors, apart from the records.
FILE_ERROR = "warc.error."  # prefix of the errors below
EMPTY_FILE = "warc.error.empty_file"
NOT_ARCHIVE = "warc.error.not_archive"  # the file does not start with a WARC or ARC record
INVALID_HEADER = "warc.error.invalid_header"
TRUNCATED_GZIP = "warc.error.truncated_gzip"  # the file ends inside a gzip member
CORRUPT_GZIP = "warc.error.corrupt_gzip"  # inflate failed inside a member, or bytes between members are not gzip
MISALIGNED_GZIP = "warc.error.misaligned_gzip"  # junk where a gzip member should start


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
