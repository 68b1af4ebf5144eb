"""WARC/ARC reading on the shared sample files and on small WARCs built here with warcio's writer."""
from __future__ import annotations

import collections
import gzip
import io
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from tests.conftest import SHARED_DATA, shared_path
from transforms.document import Page
from transforms.io import warc, warc_ranges
from transforms.io.warc import ReadIssue, read_records

DATA = SHARED_DATA / "warc"
# Without the shared data, one parameter that the shared_data fixture turns into the run's real-data line.
SHARED_FILES = sorted(p for p in DATA.rglob("*") if p.is_file()) if DATA.is_dir() else [DATA]


def shared(name: str) -> Path:
    return shared_path("warc", name)


def read_path(path: Path, **kwargs) -> list[tuple[int, Page | ReadIssue]]:
    with open(path, "rb") as fh:
        return list(read_records(fh, source=str(path), **kwargs))


def pages(items) -> list[Page]:
    return [item for _, item in items if isinstance(item, Page)]


def reasons(items) -> collections.Counter:
    return collections.Counter(item.reason for _, item in items if isinstance(item, ReadIssue))


def write_warc(path: Path, bodies: list[bytes], *, gzip_records: bool = True, content_type: str | None = "text/html",
               extra_headers: tuple = ()) -> list[str]:
    """A WARC of one response record per body; returns the record ids in order."""
    ids = []
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=gzip_records)
        for i, body in enumerate(bodies):
            headers = [("Content-Type", content_type)] if content_type else []
            http = StatusAndHeaders("200 OK", headers + list(extra_headers), protocol="HTTP/1.1")
            record = writer.create_warc_record(f"http://example.com/{i}", "response", payload=io.BytesIO(body),
                                               http_headers=http)
            writer.write_record(record)
            ids.append(record.rec_headers.get_header("WARC-Record-ID"))
    return ids


def html_bodies(n: int, size: int = 600) -> list[bytes]:
    return [f"<html><body><p>page {i} {'lorem ipsum ' * (size // 12)}</p></body></html>".encode() for i in range(n)]


@pytest.mark.parametrize("path", SHARED_FILES, ids=lambda p: str(p.relative_to(DATA)) or "absent")
def test_every_shared_file_reads_without_exception(shared_data, path):
    for _, item in read_path(path):
        assert isinstance(item, (Page, ReadIssue))
        if isinstance(item, Page):
            assert item.html and item.id and item.url and item.source == str(path)


def test_shared_files_present(shared_data):
    assert len(SHARED_FILES) > 50


def test_content_encodings_decode_to_the_same_html():
    htmls = {enc: pages(read_path(shared(f"ukwa/transfer_compression_{enc}.warc.gz")))[0].html
             for enc in ("gzip", "brotli", "none")}
    assert htmls["gzip"] == htmls["brotli"] == htmls["none"]
    assert htmls["none"].lstrip().lower().startswith("<!doctype html") or "<html" in htmls["none"].lower()


def test_chunked_transfer_encoding_is_removed():
    [page] = pages(read_path(shared("warcio/example-iana.org-chunked.warc")))
    assert page.html.startswith("<!doctype html>") and page.html.rstrip().endswith("</html>")
    assert page.url == "http://www.iana.org/" and page.warc_date == "2017-03-06T16:54:09Z"


def test_gzip_label_on_an_already_inflated_body_keeps_the_page():
    # Common Crawl 2014 kept "Content-Encoding: gzip" on a body it had stored inflated.
    found = pages(read_path(shared("cc2014-eugeneware/CC-MAIN-20140820021334-00006-ip-10-180-136-8.ec2.internal.warc")))
    assert any("0x20.be" in p.url and "Hackerspace Gent" in p.html for p in found)


def test_arc_file_yields_a_page_with_a_stable_id():
    first, second = (pages(read_path(shared("warcio/example.arc"))) for _ in range(2))
    assert len(first) == 1 and first[0].id == second[0].id and first[0].id.startswith("<urn:uuid:")
    assert first[0].url == "http://example.com/" and first[0].warc_date == "2014-02-16T05:02:21Z"
    assert "Example Domain" in first[0].html


def test_truncated_plain_warc_keeps_the_page_before_the_damage():
    items = read_path(shared("warcio/example-trunc.warc"))
    assert [p.url for p in pages(items)] == ["http://example.com/"]
    assert reasons(items)[warc.INVALID_HEADER] == 1


def test_truncated_whole_gzip_reports_truncation():
    assert reasons(read_path(shared("resiliparse/clipped.warc.gz")))[warc.TRUNCATED_GZIP] == 1


def test_members_that_split_records_are_read_as_one_stream():
    # The response's gzip member ends inside the record: read per member it was lost as misaligned.
    items = read_path(shared("warcio/example-wrong-chunks.warc.gz"))
    assert [p.url for p in pages(items)] == ["http://example.com/"] and reasons(items) == {warc.NOT_RESPONSE: 1}


@pytest.mark.parametrize("name, reason", [
    ("invalid-empty.warc", warc.EMPTY_FILE),
    ("invalid-warcheaderversion-1.warc", warc.INVALID_HEADER),
    ("invalid-warcheaderfieldpolicy-11.warc", warc.TRUNCATED_RECORD),
    ("invalid-warcheaderfieldpolicy-14.warc", warc.TRUNCATED_RECORD),
    ("invalid-warcfile-lonely-revisit.warc", warc.INVALID_HEADER),
])
def test_jhove_invalid_files_give_issues(name, reason):
    items = read_path(shared(f"jhove-invalid/{name}"))
    assert reasons(items)[reason] >= 1 and not pages(items)


def test_real_wet_file_gives_a_text_page_per_conversion_record():
    path = shared("cc2014-eugeneware/CC-MAIN-20140820021334-00006-ip-10-180-136-8.ec2.internal.warc.wet")
    conversions = path.read_bytes().count(b"WARC-Type: conversion\r\n")
    items = read_path(path)
    assert len(pages(items)) == conversions == 3 and all(p.is_text and p.url for p in pages(items))
    assert reasons(items) == {warc.NOT_RESPONSE: 1}  # the warcinfo record


def test_not_an_archive(tmp_path):
    path = tmp_path / "page.warc"
    path.write_bytes(b"<html><body>not a warc</body></html>\n")
    assert reasons(read_path(path)) == {warc.NOT_ARCHIVE: 1}


def test_records_over_the_size_cap_are_skipped_and_counted(tmp_path):
    path = tmp_path / "sizes.warc.gz"
    write_warc(path, [b"<html>small</html>", b"<html>" + b"x" * 5000 + b"</html>", b"<html>small too</html>"])
    items = read_path(path, max_record_bytes=2000)
    assert [p.url for p in pages(items)] == ["http://example.com/0", "http://example.com/2"]
    assert reasons(items) == {warc.TOO_LARGE: 1}


def test_missing_content_type_is_sniffed(tmp_path):
    path = tmp_path / "sniff.warc"
    write_warc(path, [b"  <!DOCTYPE html><html></html>", b"just text"], gzip_records=False, content_type=None)
    items = read_path(path)
    assert [p.url for p in pages(items)] == ["http://example.com/0"] and reasons(items) == {warc.NOT_HTML: 1}


@pytest.mark.parametrize("content_type, meta", [
    ("text/html; charset=windows-1252", ""),
    ("text/html", '<meta charset="windows-1252">'),
    ("text/html", ""),
])
def test_windows_1252_page_decodes(tmp_path, content_type, meta):
    text = "Caf\u00e9 cr\u00e8me \u2013 \u201cna\u00efve\u201d r\u00e9sum\u00e9 \u00e0 la fa\u00e7on fran\u00e7aise. " * 20
    path = tmp_path / "cp1252.warc.gz"
    write_warc(path, [f"<html><head>{meta}</head><body><p>{text}</p></body></html>".encode("cp1252")],
               content_type=content_type)
    [page] = pages(read_path(path))
    assert text in page.html and page.charset == "cp1252"


def test_bad_charset_label_never_raises():
    assert warc.decode_html(b"caf\xc3\xa9", header_charset="no-such-charset") == ("caf\u00e9", "utf-8")
    html, _ = warc.decode_html(b"\xff\xfe\x00garbage", header_charset="base64")
    assert isinstance(html, str)


def test_per_record_corruption_resyncs_at_the_next_record(tmp_path):
    path = tmp_path / "corrupt.warc.gz"
    ids = write_warc(path, html_bodies(20))
    with open(path, "rb") as fh:
        starts = [offset for offset, _ in read_records(fh)]
    data = bytearray(path.read_bytes())
    middle = (starts[10] + starts[11]) // 2
    data[middle:middle + 40] = b"\x00" * 40  # inside the deflate data of record 10
    path.write_bytes(bytes(data))
    items = read_path(path)
    assert [p.id for p in pages(items)] == ids[:10] + ids[11:]
    file_issues = [i for _, i in items if isinstance(i, ReadIssue) and not i.is_record]
    assert [i.reason for i in file_issues] == [warc.CORRUPT_GZIP]
    [lost] = [i for _, i in items if isinstance(i, ReadIssue) and i.is_record]  # record 10, counted
    assert lost.reason == warc.CORRUPT_RECORD and lost.record_id in (f"{path}@{starts[10]}", ids[10])


def test_junk_between_members_is_misaligned_and_skipped(tmp_path):
    path = tmp_path / "junk.warc.gz"
    ids = write_warc(path, html_bodies(6))
    with open(path, "rb") as fh:
        starts = [offset for offset, _ in read_records(fh)]
    data = path.read_bytes()
    path.write_bytes(data[:starts[3]] + b"junk" * 100 + data[starts[3]:])
    items = read_path(path)
    assert [p.id for p in pages(items)] == ids and reasons(items) == {warc.MISALIGNED_GZIP: 1}


def test_truncated_last_member_keeps_every_earlier_record(tmp_path):
    path = tmp_path / "cut.warc.gz"
    ids = write_warc(path, html_bodies(8))
    path.write_bytes(path.read_bytes()[:-30])
    items = read_path(path)
    assert [p.id for p in pages(items)] == ids[:7]
    assert reasons(items) == {warc.TRUNCATED_GZIP: 1, warc.TRUNCATED_RECORD: 1}
    assert [i.record_id for _, i in items if isinstance(i, ReadIssue) and i.is_record] == [ids[7]]


def test_plain_whole_gzip_and_per_record_gzip_read_the_same(tmp_path):
    write_warc(tmp_path / "a.warc.gz", html_bodies(30))
    (tmp_path / "a.warc").write_bytes(gzip.decompress((tmp_path / "a.warc.gz").read_bytes()))  # same record ids
    (tmp_path / "whole.warc.gz").write_bytes(gzip.compress((tmp_path / "a.warc").read_bytes()))
    layouts, results = {}, {}
    for name in ("a.warc.gz", "a.warc", "whole.warc.gz"):
        with open(tmp_path / name, "rb") as fh:
            layouts[name] = warc_ranges.detect_layout(fh).kind
        results[name] = [(p.id, p.html) for p in pages(read_path(tmp_path / name))]
    assert layouts == {"a.warc.gz": warc_ranges.GZIP_MEMBERS, "a.warc": warc_ranges.PLAIN,
                       "whole.warc.gz": warc_ranges.GZIP_WHOLE}
    assert len(results["a.warc"]) == 30 and results["a.warc.gz"] == results["a.warc"] == results["whole.warc.gz"]


def test_find_record_start_lands_on_member_starts(tmp_path):
    path = tmp_path / "members.warc.gz"
    write_warc(path, html_bodies(10))
    with open(path, "rb") as fh:
        starts = [offset for offset, _ in read_records(fh)]
        assert warc_ranges.detect_layout(fh).splittable
        assert [warc_ranges.find_record_start(fh, s) for s in starts] == starts
        assert [warc_ranges.find_record_start(fh, s + 1) for s in starts[:-1]] == starts[1:]
        assert warc_ranges.find_record_start(fh, starts[-1] + 1) is None
        assert warc_ranges.find_record_start(fh, starts[2] + 1, end=starts[3]) is None
        assert not warc_ranges.is_record_start(fh, starts[2] + 7)
