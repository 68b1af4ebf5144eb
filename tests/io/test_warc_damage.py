"""Files cut short or corrupted, in every layout: every record before the damage comes out, the rest is counted.

The oracle never asks our reader: record boundaries come from warcio's writer (or the ARC bytes built here),
and how many bytes a gzip prefix can give comes from the standard library's zlib.
"""
from __future__ import annotations

import collections
import gzip
import io
import random
import zlib
from dataclasses import dataclass

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from transforms.document import Page
from transforms.io import warc, warc_ranges
from transforms.io.warc import ReadIssue, read_records

WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "re", "sa", "to", "vi") for b in ("d", "m", "n", "r", "s", "x")]


@dataclass(frozen=True)
class Archive:
    """A plain archive and where its records lie in it."""

    data: bytes
    starts: list[int]  # offset of each record
    block_ends: list[int]  # offset just past each record's headers and Content-Length bytes
    page_urls: list[str | None]  # the URL of each record that is an HTML page, None for other records
    ids: list[str]  # WARC-Record-ID of each record (WARC only)


def page_body(rng: random.Random, n_words: int) -> bytes:
    words = " ".join(rng.choice(WORDS) for _ in range(n_words))  # about 4x compressible, like real text
    return f"<html><body><p>{words}</p></body></html>".encode()


def warc_archive(n: int = 12, *, seed: int = 0) -> Archive:
    """n HTML responses, about 100 KB in all, written by warcio, which also gives each record's offset."""
    rng, out = random.Random(seed), io.BytesIO()
    writer = WARCWriter(out, gzip=False)
    starts, ids, urls = [], [], []
    for i in range(n):
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        record = writer.create_warc_record(f"http://example.com/{i}", "response", http_headers=http,
                                           payload=io.BytesIO(page_body(rng, 1200 + 97 * i)))
        starts.append(out.tell())
        writer.write_record(record)
        ids.append(record.rec_headers.get_header("WARC-Record-ID"))
        urls.append(f"http://example.com/{i}")
    data = out.getvalue()
    ends = [*starts[1:], len(data)]
    assert all(data[e - 4:e] == b"\r\n\r\n" for e in ends)  # WARC 1.1 section 4: a record ends with two CRLFs
    return Archive(data, starts, [e - 4 for e in ends], urls, ids)


def arc_archive(n: int = 10, *, seed: int = 1) -> Archive:
    """An ARC v1 file (filedesc header record, then one line of fields, the block, a newline per record)."""
    rng, parts, starts, ends, urls = random.Random(seed), [], [], [], []
    fields = b"1 0 Refinery\nURL IP-address Archive-date Content-type Archive-length\n"
    records = [(b"filedesc://test.arc 0.0.0.0 20240101000000 text/plain", fields, None)]
    for i in range(n):
        http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + page_body(rng, 900 + 61 * i)
        url = f"http://example.com/{i}"
        records.append((f"{url} 93.184.216.34 202401010000{i:02d} text/html".encode(), http, url))
    pos = 0
    for header, block, url in records:
        record = header + b" %d\n" % len(block) + block
        starts.append(pos)
        ends.append(pos + len(record))
        urls.append(url)
        parts.append(record + b"\n")
        pos += len(record) + 1
    return Archive(b"".join(parts), starts, ends, urls, [])


def per_record_members(archive: Archive) -> list[bytes]:
    """One gzip member per record, as Common Crawl and warcio's writer lay out .warc.gz files."""
    bounds = [*archive.starts, len(archive.data)]
    return [gzip.compress(archive.data[a:b], mtime=0) for a, b in zip(bounds, bounds[1:])]


def per_record_gzip(archive: Archive) -> bytes:
    return b"".join(per_record_members(archive))


def member_starts(members: list[bytes]) -> list[int]:
    """Where each member starts in the file, and the file's length."""
    starts = [0]
    for member in members:
        starts.append(starts[-1] + len(member))
    return starts


def members_every(data: bytes, size: int) -> bytes:
    """Gzip members cut every `size` bytes of the text, wherever records lie (bgzip, or `cat` of .gz files)."""
    return b"".join(gzip.compress(data[i:i + size], mtime=0) for i in range(0, len(data), size))


def inflatable(prefix: bytes) -> tuple[int, bool]:
    """(bytes zlib inflates from this prefix of concatenated gzip members, whether it ends at a member end)."""
    total = 0
    while prefix:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        total += len(inflater.decompress(prefix))
        if not inflater.eof:
            return total, False
        prefix = inflater.unused_data
    return total, True


def layouts() -> dict[str, tuple[Archive, bytes, str]]:
    w, a = warc_archive(), arc_archive()
    return {  # name: (archive, file bytes, how it is compressed)
        "warc": (w, w.data, "plain"),
        "warc.gz whole": (w, gzip.compress(w.data, mtime=0), "gzip"),
        "warc.gz whole, members every 7 KB": (w, members_every(w.data, 7000), "gzip"),
        "warc.gz per record": (w, per_record_gzip(w), "members"),
        "arc": (a, a.data, "plain"),
        "arc.gz per record": (a, per_record_gzip(a), "gzip"),
    }


LAYOUTS = layouts()


def read(data: bytes) -> list[tuple[int, Page | ReadIssue]]:
    return list(read_records(io.BytesIO(data), source="cut.warc"))


def expected(archive: Archive, available: int) -> tuple[int, int]:
    """(pages whose record lies wholly in the first `available` bytes of text, records cut: 0 or 1)."""
    pages = sum(1 for end, url in zip(archive.block_ends, archive.page_urls) if url and end <= available)
    cut = sum(1 for start, end in zip(archive.starts, archive.block_ends) if start < available < end)
    return pages, cut


def expected_members(archive: Archive, cut: int) -> tuple[int, int, bool]:
    """A per-record file cut at `cut`: (pages in whole members, 1 if a member is cut (its record cannot be
    checked, so it is not a page even if its text inflated), whether the cut is at a member boundary)."""
    bounds = member_starts(per_record_members(archive))
    whole = sum(1 for end in bounds[1:] if end <= cut)
    return sum(1 for url in archive.page_urls[:whole] if url), int(cut not in bounds), cut in bounds


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_a_cut_anywhere_keeps_every_complete_record_and_counts_the_cut_one(name):
    archive, data, compression = LAYOUTS[name]
    step = max(1, len(data) // 45) | 1  # about 45 cut points per layout, odd so they wander across records
    for cut in range(1, len(data), step):
        if compression == "members" and cut > len(per_record_members(archive)[0]):
            n_pages, n_cut, clean = expected_members(archive, cut)
            available = cut
        else:  # a file cut in its first member is a cut whole-file gzip, as far as anyone can tell
            available, clean = (cut, True) if compression == "plain" else inflatable(data[:cut])
            n_pages, n_cut = expected(archive, available)
        items = read(data[:cut])
        pages = [item for _, item in items if isinstance(item, Page)]
        record_drops = collections.Counter(i.reason for _, i in items if isinstance(i, ReadIssue) and i.is_record)
        file_errors = collections.Counter(i.reason for _, i in items if isinstance(i, ReadIssue) and not i.is_record)
        where = f"{name} cut at {cut} ({available} bytes of text)"
        assert len(pages) == n_pages, where
        assert record_drops[warc.TRUNCATED_RECORD] == n_cut, where
        assert file_errors == ({} if clean else {warc.TRUNCATED_GZIP: 1}), where
        assert [p.url for p in pages] == [u for u in archive.page_urls if u][:n_pages], where


def test_whole_gzip_cut_inside_a_body_names_the_cut_record():
    archive = warc_archive()
    data = gzip.compress(archive.data, mtime=0)
    inside = (archive.starts[5] + archive.block_ends[5]) // 2  # in record 5's HTML
    cut = next(c for c in range(len(data)) if inflatable(data[:c])[0] >= inside)
    items = read(data[:cut])
    assert [i.id for _, i in items if isinstance(i, Page)] == archive.ids[:5]
    [(_, lost)] = [(o, i) for o, i in items if isinstance(i, ReadIssue) and i.is_record]
    assert (lost.reason, lost.record_id, lost.url) == (warc.TRUNCATED_RECORD, archive.ids[5], "http://example.com/5")


def test_a_cut_at_every_byte_of_a_records_headers_counts_it_as_cut():
    """Every cut from record 5's first byte to the end of its HTTP headers: records 0-4 are pages, record 5 is
    one truncated_record and nothing else is reported. (A cut right after "Content-Length: " once came out as
    warc.not_html: warcio reads the empty value as 0 and returns a record; the 45-point test above hit it only
    when warcio's random record ids shifted the offsets.)"""
    archive = warc_archive()
    body = archive.data.index(b"<html>", archive.starts[5])
    for cut in range(archive.starts[5] + 1, body):
        items = read(archive.data[:cut])
        assert [i.url for _, i in items if isinstance(i, Page)] == archive.page_urls[:5], cut
        issues = [(i.reason, i.url) for _, i in items if isinstance(i, ReadIssue)]
        # The URL is named once its header line is whole.
        url = "http://example.com/5" if b"example.com/5\r\n" in archive.data[archive.starts[5]:cut] else ""
        assert issues == [(warc.TRUNCATED_RECORD, url)], (cut, archive.data[archive.starts[5]:cut])


def flushed_gzip(archive: Archive) -> tuple[bytes, list[int]]:
    """One gzip member with a full flush after each record (as `gzip --rsyncable`, pigz do), and where each ends."""
    deflate, out, ends = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS), [], []
    bounds = [*archive.starts, len(archive.data)]
    for a, b in zip(bounds, bounds[1:]):
        out += [deflate.compress(archive.data[a:b]), deflate.flush(zlib.Z_FULL_FLUSH)]
        ends.append(sum(map(len, out)))
    return b"".join(out) + deflate.flush(), ends


def test_corrupt_whole_gzip_keeps_every_record_before_the_damage():
    archive = warc_archive()
    data, flushed = flushed_gzip(archive)
    at = flushed[10]  # the next deflate block starts here: 0xff is BTYPE 11, reserved (RFC 1951 section 3.2.3)
    items = read(data[:at] + b"\xff" + data[at + 1:])
    assert [i.id for _, i in items if isinstance(i, Page)] == archive.ids[:11]  # gzip.GzipFile gave 9
    assert [i.reason for _, i in items if isinstance(i, ReadIssue)] == [warc.CORRUPT_GZIP]


def test_corrupt_member_of_a_multi_member_gzip_resumes_at_the_next_member():
    archive, size = warc_archive(), 7000
    data = members_every(archive.data, size)
    member_starts = [0]
    for i in range(0, len(archive.data), size):
        member_starts.append(member_starts[-1] + len(gzip.compress(archive.data[i:i + size], mtime=0)))
    at = member_starts[4] + 2  # member 4 (text [28000, 35000)) gets compression method 0: RFC 1952 allows only 8
    items = read(data[:at] + b"\x00" + data[at + 1:])
    ids = [i.id for _, i in items if isinstance(i, Page)]
    spans = zip(archive.starts, archive.block_ends)
    survivors = [n for n, (s, e) in enumerate(spans) if e <= 4 * size or s >= 5 * size]  # not in member 4
    assert ids == [archive.ids[n] for n in survivors] and 0 < len(survivors) < len(archive.starts)
    file_errors = [i.reason for _, i in items if isinstance(i, ReadIssue) and not i.is_record]
    assert file_errors == [warc.CORRUPT_GZIP]


def test_member_layout_needs_the_second_member_to_start_a_record():
    archive = warc_archive()
    for data, kind in ((per_record_gzip(archive), warc_ranges.GZIP_MEMBERS),
                       (members_every(archive.data, 7000), warc_ranges.GZIP_WHOLE)):
        assert warc_ranges.detect_layout(io.BytesIO(data)).kind == kind
        assert [i.id for _, i in read(data) if isinstance(i, Page)] == archive.ids


def test_corrupt_member_of_an_arc_gz_resumes_at_the_next_arc_record():
    archive = arc_archive()
    bounds = [*archive.starts, len(archive.data)]
    members = [gzip.compress(archive.data[a:b], mtime=0) for a, b in zip(bounds, bounds[1:])]
    at = sum(map(len, members[:4])) + 2  # member 4 holds record 3 (after the filedesc header); method 0 is invalid
    data = b"".join(members)
    items = read(data[:at] + b"\x00" + data[at + 1:])
    urls = [i.url for _, i in items if isinstance(i, Page)]
    assert urls == [u for n, u in enumerate(archive.page_urls) if u and n != 4]
    assert [i.reason for _, i in items if isinstance(i, ReadIssue) and not i.is_record] == [warc.CORRUPT_GZIP]
