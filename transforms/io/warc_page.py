"""One parsed WARC/ARC record -> a `Page`, or the reason it is not one.

Pages come from `response` records (HTML payload), `resource` records holding HTML (pages saved without
their HTTP exchange, e.g. by warcit or browser-based crawlers) and `conversion` records: WET text, which
skips extraction, or HTML. A `response` with a text/plain payload is still not a page (robots.txt, feeds).
"""
from __future__ import annotations

import os
import uuid

from warcio.timeutils import timestamp_to_iso_date

from transforms.document import Page
from transforms.io.warc_payload import DECODE_ERRORS, charset_param, decode_html, decode_text, payload, sniffs_html
from transforms.io.warc_reasons import DECODE_ERROR, EMPTY_PAYLOAD, NOT_HTML, NOT_RESPONSE, TOO_LARGE, ReadIssue

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"text/plain"})  # Common Crawl WET conversion records
PAGE_RECORDS = frozenset({"response", "resource", "conversion"})  # WARC-Type values that can carry a page


def to_page(record, *, offset: int, source: str, max_record_bytes: int) -> Page | ReadIssue:
    """A page if the record holds HTML (or WET text), else a ReadIssue with the reason, URL and id."""
    url, record_id = record_url(record), record_id_of(record, offset=offset, source=source)
    if record.rec_type not in PAGE_RECORDS:
        return ReadIssue(NOT_RESPONSE, record.rec_type or "", url, record_id)
    if record.length > max_record_bytes:
        return ReadIssue(TOO_LARGE, f"{record.length} bytes", url, record_id)
    headers = record.http_headers
    content_type = headers.get_header("content-type", "") if headers else record.content_type or ""
    mime = content_type.split(";", 1)[0].strip().lower()
    is_text = record.rec_type == "conversion" and mime in TEXT_TYPES
    if mime and mime not in HTML_TYPES and not is_text:
        return ReadIssue(NOT_HTML, mime, url, record_id)
    try:
        body = payload(record, max_record_bytes)
    except DECODE_ERRORS as err:
        return ReadIssue(DECODE_ERROR, str(err)[:200], url, record_id)
    if not body:
        return ReadIssue(EMPTY_PAYLOAD, "", url, record_id)
    if len(body) > max_record_bytes:
        return ReadIssue(TOO_LARGE, f"payload over {max_record_bytes} bytes", url, record_id)
    if not mime and not sniffs_html(body):
        return ReadIssue(NOT_HTML, "no Content-Type, payload does not look like HTML", url, record_id)
    decode = decode_text if is_text else decode_html
    html, charset = decode(body, header_charset=charset_param(content_type))
    arc_date = record.rec_headers.get_header("archive-date") if record.format == "arc" else None
    date = timestamp_to_iso_date(arc_date) if arc_date else record.rec_headers.get_header("WARC-Date") or ""
    return Page(id=record_id, url=url, warc_date=date, html=html, charset=charset, source=source, is_text=is_text,
                payload_bytes=len(body))


def record_id_of(record, *, offset: int, source: str) -> str:
    """WARC-Record-ID; ARC records (or WARC ones lacking it) get one from file name, offset, URL and date."""
    if record.format != "arc" and (record_id := record.rec_headers.get_header("WARC-Record-ID")):
        return record_id
    date = record.rec_headers.get_header("archive-date" if record.format == "arc" else "WARC-Date") or ""
    key = "|".join((os.path.basename(source), str(offset), record_url(record), date))
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, key)}>"


def record_url(record) -> str:
    name = "uri" if record.format == "arc" else "WARC-Target-URI"
    return (record.rec_headers.get_header(name) or "").strip("<>")
