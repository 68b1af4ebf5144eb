"""A record's payload as text: HTTP transfer and content encodings undone, then decoded as a browser would.

warcio hides inflate errors (it logs them to stderr and returns b"") and its brotli hook fails on
brotli >= 1.2, so content encodings are undone here.
"""
from __future__ import annotations

import codecs
import re
import zlib

import brotli
from resiliparse.parse.encoding import detect_encoding, map_encoding_to_html5
from warcio.bufferedreaders import ChunkedDataReader

_HTML_SNIFF = tuple(f"<{tag}".encode() for tag in ("!doctype html", "html", "head", "script", "iframe", "h1",
                                                     "div", "font", "table", "a", "style", "title", "b", "body",
                                                     "br", "p", "!--"))
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:+-]+)""", re.IGNORECASE)
DECODE_ERRORS = (zlib.error, brotli.error, LookupError)  # what `payload` raises for a body it cannot undo


def payload(record, max_bytes: int) -> bytes:
    """The body with chunked transfer encoding and content encodings removed, at most max_bytes + 1.

    Records without HTTP headers (resource, conversion, non-HTTP responses) are their own payload.
    """
    headers = record.http_headers
    stream = record.raw_stream
    if headers and "chunked" in (headers.get_header("transfer-encoding") or "").lower():
        stream = ChunkedDataReader(stream)
    body = raw = stream.read(max_bytes + 1)
    encodings = (headers.get_header("content-encoding") or "") if headers else ""
    try:
        for encoding in reversed([e.strip().lower() for e in encodings.split(",")]):
            body = _uncompress(body, encoding, max_bytes + 1)
    except (zlib.error, brotli.error):
        # Common Crawl 2013-2014 kept "Content-Encoding: gzip" on bodies it had already inflated.
        if not sniffs_html(raw):
            raise
        body = raw
    return body


def _uncompress(data: bytes, encoding: str, max_bytes: int) -> bytes:
    """Undo one HTTP content encoding (RFC 9110 section 8.4.1), returning at most max_bytes."""
    if encoding in ("", "identity", "none"):
        return data
    if encoding == "br":
        return brotli.Decompressor().process(data, output_buffer_limit=max_bytes)[:max_bytes]
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise LookupError(f"unsupported content-encoding {encoding!r}")
    try:
        return zlib.decompressobj(32 + zlib.MAX_WBITS).decompress(data, max_bytes)  # gzip or zlib header
    except zlib.error:
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(data, max_bytes)  # raw deflate


def charset_param(content_type: str) -> str:
    params = (p.partition("=") for p in content_type.split(";")[1:])
    return next((v.strip().strip("\"'") for k, _, v in params if k.strip().lower() == "charset"), "")


def sniffs_html(body: bytes) -> bool:  # WHATWG MIME sniffing, "rules for identifying an unknown type"
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return any(head.startswith(tag) and head[len(tag):len(tag) + 1] in (b" ", b">", b"")
               for tag in _HTML_SNIFF)


def _codec(label: str) -> str | None:
    """The Python codec for a charset label, WHATWG-mapped (iso-8859-1 reads as cp1252); None if unknown."""
    try:
        codecs.lookup(label)  # map_encoding_to_html5 maps unknown labels to utf-8, so check first
        return codecs.lookup(map_encoding_to_html5(label)).name
    except LookupError:
        return None


def decode_html(body: bytes, *, header_charset: str = "") -> tuple[str, str]:
    """Decode as a browser would: BOM, HTTP charset, <meta charset>, then uchardet. Returns (html, charset).

    A declared charset wins even if some bytes are invalid in it (replaced, as browsers do); never raises.
    """
    meta = _META_CHARSET.search(body, 0, 1024)  # WHATWG prescans the first 1024 bytes (HTML 13.2.3.2)
    return _decode(body, (header_charset, meta.group(1).decode("ascii") if meta else ""))


def decode_text(body: bytes, *, header_charset: str = "") -> tuple[str, str]:
    """Plain text (a WET conversion record, UTF-8 in Common Crawl): BOM, declared charset, then detection."""
    return _decode(body, (header_charset,))


def _decode(body: bytes, labels: tuple[str, ...]) -> tuple[str, str]:
    if body.startswith(codecs.BOM_UTF8):
        return body[3:].decode("utf-8", "replace"), "utf-8"
    for label in labels:
        if charset := _codec(label) if label else None:
            return body.decode(charset, "replace"), charset
    for charset in ("utf-8", detect_encoding(body), "cp1252"):  # valid UTF-8 is almost never another charset
        try:
            return body.decode(charset), charset
        except (UnicodeError, LookupError):
            continue
    return body.decode("utf-8", "replace"), "utf-8"
