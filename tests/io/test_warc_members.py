"""Per-record .warc.gz files: a record is a page only once its gzip member passed its CRC, and records that run
on into the next member (bgzip-like blocks after a warcinfo member) are read whole.

The oracle is the writer: each page's HTML is the body written (page_body, same seed), record boundaries come
from warcio's writer, member boundaries from gzip.compress.
"""
from __future__ import annotations

import gzip
import io
import random

from tests.io.test_warc_damage import (
    member_starts, members_every, page_body, per_record_gzip, per_record_members, read, warc_archive,
)
from transforms.document import Page
from transforms.io import warc, warc_ranges
from transforms.io.warc import ReadIssue, read_records

N_RECORDS = 8


def written_html(n: int = N_RECORDS, seed: int = 0) -> list[str]:
    """The HTML of each page warc_archive(n, seed=seed) writes: its random draws, replayed."""
    rng = random.Random(seed)
    return [page_body(rng, 1200 + 97 * i).decode() for i in range(n)]


def test_a_flipped_bit_never_alters_a_page_nor_adds_a_record():
    archive, html = warc_archive(N_RECORDS), written_html()
    by_id = dict(zip(archive.ids, html))
    data = per_record_gzip(archive)
    rng = random.Random(14)
    for _ in range(300):
        at, bit = rng.randrange(len(data)), 1 << rng.randrange(8)
        items = read(data[:at] + bytes([data[at] ^ bit]) + data[at + 1:])
        pages = [item for _, item in items if isinstance(item, Page)]
        records = [item for _, item in items if isinstance(item, Page) or item.is_record]
        where = f"bit {bit} of byte {at}"
        assert all(by_id.get(p.id) == p.html for p in pages), where  # never a page that differs
        assert len(records) == N_RECORDS, where  # each record a page, or counted once: never a phantom one


def test_a_member_with_a_bad_crc_or_extra_bytes_is_a_corrupt_record_named_by_its_headers():
    archive = warc_archive(N_RECORDS)
    members = per_record_members(archive)
    bad_crc = bytearray(members[3])
    bad_crc[-8] ^= 1  # CRC-32 (RFC 1952 section 2.3.1)
    extra = gzip.compress(archive.data[archive.starts[5]:archive.starts[6]] + b"WARC/1.0\r\n\r\n", mtime=0)
    extra = extra[:-8] + members[5][-8:]  # inflates to a record and a bit more, then fails its CRC
    for n, member in ((3, bytes(bad_crc)), (5, extra)):
        items = read(b"".join(members[:n]) + member + b"".join(members[n + 1:]))
        issues = [(i.reason, i.record_id, i.url) for _, i in items if isinstance(i, ReadIssue)]
        assert issues == [(warc.CORRUPT_RECORD, archive.ids[n], f"http://example.com/{n}"), (warc.CORRUPT_GZIP, "", "")]
        assert [i.id for _, i in items if isinstance(i, Page)] == archive.ids[:n] + archive.ids[n + 1:]


def test_a_member_whose_header_is_damaged_counts_as_one_corrupt_record():
    archive = warc_archive(N_RECORDS)
    members = per_record_members(archive)
    at = member_starts(members)[4]
    data = bytearray(b"".join(members))
    data[at + 3] |= 0x80  # a reserved FLG bit: zlib refuses the header, nothing inflates
    items = read(bytes(data))
    issues = [(i.reason, i.record_id) for _, i in items if isinstance(i, ReadIssue)]
    assert issues == [(warc.CORRUPT_RECORD, f"cut.warc@{at}"), (warc.CORRUPT_GZIP, "")]
    assert len([i for _, i in items if isinstance(i, Page)]) == N_RECORDS - 1


def test_records_that_run_on_into_the_next_member_are_read_whole():
    archive = warc_archive(N_RECORDS)
    first = archive.starts[1]  # one member for the first record (a warcinfo, say), then 7 KB blocks
    data = gzip.compress(archive.data[:first], mtime=0) + members_every(archive.data[first:], 7000)
    assert warc_ranges.detect_layout(io.BytesIO(data)).kind == warc_ranges.GZIP_MEMBERS
    items = read(data)
    assert [i.id for _, i in items if isinstance(i, Page)] == archive.ids
    assert not [i for _, i in items if isinstance(i, ReadIssue)]


def read_in_ranges(data: bytes, split_bytes: int) -> list[tuple[int, Page | ReadIssue]]:
    """What ReadWarcPages' ranges read, without Beam: each range starts at the first group start in it (at 0 for
    the first) and claims group starts as OffsetRestrictionTracker does (only those before its stop)."""
    items, members = [], warc_ranges.Layout(kind=warc_ranges.GZIP_MEMBERS, is_warc=True)
    for start in range(0, len(data), split_bytes):
        stop, fh = start + split_bytes, io.BytesIO(data)
        first = start if start == 0 else warc_ranges.find_record_start(fh, start, end=stop)
        if first is not None:
            items += read_records(fh, source="r", layout=members, start_offset=first, claim=lambda at, s=stop: at < s)
    return items


def test_byte_ranges_of_a_damaged_file_read_what_one_reader_reads():
    archive = warc_archive(12, seed=2)
    first = archive.starts[1]
    layouts = (per_record_gzip(archive),
               gzip.compress(archive.data[:first], mtime=0) + members_every(archive.data[first:], 5000))
    rng = random.Random(2)
    for n in range(40):
        data = bytearray(layouts[n % 2])
        for _ in range(rng.randint(1, 3)):  # flipped bits, overwritten bytes, inserted junk
            at, kind = rng.randrange(len(data)), rng.randrange(3)
            if kind == 0:
                data[at] ^= 1 << rng.randrange(8)
            else:
                data[at:at + 3 * (kind == 1)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))
        data = bytes(data[:rng.randrange(len(data) * 3 // 4, len(data) + 1)])
        if warc_ranges.detect_layout(io.BytesIO(data)).kind != warc_ranges.GZIP_MEMBERS:
            continue
        whole = sorted(map(repr, read_records(io.BytesIO(data), source="r")))
        for split_bytes in (53, 1000, 4099):
            assert sorted(map(repr, read_in_ranges(data, split_bytes))) == whole, f"file {n}, {split_bytes}-byte ranges"
