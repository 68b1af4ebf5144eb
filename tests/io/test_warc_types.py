"""Which WARC records become pages: WET conversion text, any-case WARC-Type, HTML resource records."""
from __future__ import annotations

import collections
import io

import pytest
from warcio.warcwriter import WARCWriter

from transforms.document import Page
from transforms.io import warc
from transforms.io.warc import ReadIssue, read_records

HTML = b"<html><body><p>Caf\xc3\xa9 au lait, s'il vous pla\xc3\xaet.</p></body></html>"


def read(data: bytes) -> list[Page | ReadIssue]:
    return [item for _, item in read_records(io.BytesIO(data), source="t.warc")]


def reasons(items) -> collections.Counter:
    return collections.Counter(i.reason for i in items if isinstance(i, ReadIssue))


def record(rec_type: str, uri: str, block: bytes, *, content_type: str, rec_id: str,
           extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    """One record written by hand, so the WARC-Type is exactly as given (writers normalise it)."""
    headers = [("WARC-Type", rec_type), ("WARC-Record-ID", rec_id), ("WARC-Date", "2024-03-01T12:00:00Z"),
               ("WARC-Target-URI", uri), *extra, ("Content-Type", content_type), ("Content-Length", str(len(block)))]
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return f"WARC/1.0\r\n{head}\r\n".encode() + block + b"\r\n\r\n"


def http(body: bytes, content_type: str = "text/html; charset=utf-8") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def wet_file(texts: list[str]) -> tuple[bytes, list[str]]:
    """A WET file as Common Crawl writes it, made with warcio: warcinfo, then one conversion record per text."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    writer.write_record(writer.create_warcinfo_record("t.warc.wet.gz", {"software": "test"}))
    ids = []
    for n, text in enumerate(texts):
        headers = [("WARC-Refers-To", f"<urn:uuid:00000000-0000-0000-0000-{n:012d}>"),
                   ("WARC-Date", f"2024-03-0{n + 1}T00:00:00Z")]
        rec = writer.create_warc_record(f"https://example.org/{n}", "conversion", payload=io.BytesIO(text.encode()),
                                        warc_content_type="text/plain", warc_headers_dict=dict(headers))
        writer.write_record(rec)
        ids.append(rec.rec_headers.get_header("WARC-Record-ID"))
    return out.getvalue(), ids


def test_wet_conversion_records_become_text_pages():
    texts = ["Famous quotes\nFacts are stubborn things.\n", "Caf\u00e9 cr\u00e8me \u2013 na\u00efve\n", ""]
    data, ids = wet_file(texts)
    items = read(data)
    pages = [i for i in items if isinstance(i, Page)]
    assert [(p.id, p.url, p.warc_date, p.html, p.is_text) for p in pages] == [
        (ids[0], "https://example.org/0", "2024-03-01T00:00:00Z", texts[0], True),
        (ids[1], "https://example.org/1", "2024-03-02T00:00:00Z", texts[1], True)]
    assert reasons(items) == {warc.NOT_RESPONSE: 1, warc.EMPTY_PAYLOAD: 1}  # the warcinfo, the empty text


@pytest.mark.parametrize("rec_type", ["RESPONSE", "Response", "response"])
def test_warc_type_is_read_in_any_case(rec_type):
    data = record(rec_type, "http://example.com/", http(HTML), content_type="application/http; msgtype=response",
                  rec_id="<urn:uuid:1>")
    [page] = read(data)
    assert isinstance(page, Page) and page.html == HTML.decode("utf-8") and not page.is_text  # HTTP head removed


def test_which_record_types_and_payloads_are_pages():
    text = "Plain text from a WET file.\n"
    data = b"".join([
        record("CONVERSION", "http://a.example/", text.encode(), content_type="text/plain", rec_id="<urn:uuid:a>"),
        record("resource", "http://b.example/", HTML, content_type="text/html", rec_id="<urn:uuid:b>"),
        record("resource", "http://c.example/robots.txt", b"User-agent: *\n", content_type="text/plain",
               rec_id="<urn:uuid:c>"),
        record("response", "http://d.example/", http(b"just text\n", "text/plain"),
               content_type="application/http; msgtype=response", rec_id="<urn:uuid:d>"),
        record("conversion", "http://e.example/", HTML, content_type="text/html", rec_id="<urn:uuid:e>"),
        record("conversion", "http://f.example/", b"%PDF-1.4", content_type="application/pdf", rec_id="<urn:uuid:f>"),
        record("metadata", "http://g.example/", b"via: x\r\n", content_type="application/warc-fields",
               rec_id="<urn:uuid:g>"),
    ])
    items = read(data)
    pages = {p.id: (p.html, p.is_text) for p in items if isinstance(p, Page)}
    assert pages == {"<urn:uuid:a>": (text, True), "<urn:uuid:b>": (HTML.decode(), False),
                     "<urn:uuid:e>": (HTML.decode(), False)}
    dropped = {i.record_id: i.reason for i in items if isinstance(i, ReadIssue)}
    assert dropped == {"<urn:uuid:c>": warc.NOT_HTML, "<urn:uuid:d>": warc.NOT_HTML, "<urn:uuid:f>": warc.NOT_HTML,
                       "<urn:uuid:g>": warc.NOT_RESPONSE}


def test_wet_text_charset_comes_from_the_content_type():
    text = "Caf\u00e9 cr\u00e8me, na\u00efve \u2013 fa\u00e7on fran\u00e7aise. " * 5
    data = record("conversion", "http://x.example/", text.encode("cp1252"),
                  content_type="text/plain; charset=windows-1252", rec_id="<urn:uuid:x>")
    [page] = read(data)
    assert page.html == text and page.charset == "cp1252"
