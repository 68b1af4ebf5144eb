"""Build the benchmark WARC: real pages from the extraction test sets, repeated with small edits, bit for bit reproducible.

Sources (/work/shared/data/extraction): scrapinghub-aeb html/*.html.gz, trafilatura-eval eval/*.html,
cleaneval dev/input/*.html (its `<text id=...>` first line stripped) and dragnet input/*.html: 163 pages,
mean ~100 KiB. Copy k > 0 of a page has ~3% of the words of its text nodes replaced and every digit shifted
by k, so no two copies share a normalised text (exact dedup keeps them all), and its own URL.
Layout is Common Crawl's: one gzip member per record; warcinfo, then request/response/metadata per capture.
Fixed WARC-Date and uuid5 record ids; warcio's gzip members carry no mtime, so equal flags and output file name
(it is in the warcinfo record) give equal bytes.

python -m bench.data.corpus --pages 2000 --out bench/out/corpus.warc.gz [--scale 10]
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import re
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

DATA_DIR = Path("/work/shared/data/extraction")
NAMESPACE = uuid.UUID("6f1c2a4e-9b3d-4c59-8e7a-0d2b5c1e3f47")  # fixed, so record ids are reproducible
BASE_DATE = datetime(2026, 11, 1, tzinfo=timezone.utc)
EDIT_RATE = 0.03  # share of words replaced in each text node of a copy
# Neutral English words, so an edit changes the text without changing its language.
VOCAB = ("river market garden window letter summer engine school thought picture morning station "
         "number question village island doctor kitchen mountain history").split()
_SKIP_RE = re.compile(rb"(<script\b.*?</script\s*>|<style\b.*?</style\s*>|<!--.*?-->)", re.S | re.I)
_TEXT_RE = re.compile(rb">([^<]+)<")
_WORD_RE = re.compile(rb"[A-Za-z]{4,}")
_DIGIT_RE = re.compile(rb"[0-9]")
_CLEANEVAL_RE = re.compile(rb'^\s*<text id="([^"]*)"[^>]*>\s*\n?')


def base_pages(data_dir: Path = DATA_DIR) -> list[tuple[str, bytes]]:
    """(url, html bytes) for every source page, in a fixed order."""
    pages: list[tuple[str, bytes]] = []
    truth = json.loads((data_dir / "scrapinghub-aeb/ground-truth.json").read_text(encoding="utf-8"))
    for path in sorted((data_dir / "scrapinghub-aeb/html").glob("*.html.gz")):
        key = path.name.removesuffix(".html.gz")
        pages.append((truth.get(key, {}).get("url") or f"https://aeb.example/{key}", gzip.decompress(path.read_bytes())))
    evaldata = json.loads((data_dir / "trafilatura-eval/evaldata.json").read_text(encoding="utf-8"))
    url_of = {v["file"]: url for url, v in evaldata.items()}
    for path in sorted((data_dir / "trafilatura-eval/eval").glob("*.html")):
        pages.append((url_of.get(path.name, f"https://trafilatura-eval.example/{path.stem}"), path.read_bytes()))
    for path in sorted((data_dir / "cleaneval/dev/input").glob("*.html")):
        raw = path.read_bytes()
        m = _CLEANEVAL_RE.match(raw)
        url = m.group(1).decode("utf-8", "replace") if m and m.group(1) else f"https://cleaneval.example/{path.stem}"
        pages.append((url, raw[m.end():] if m else raw))
    for path in sorted((data_dir / "dragnet/input").glob("*.html")):
        pages.append((f"https://dragnet.example/{path.stem}", path.read_bytes()))
    return pages


def edit_html(html: bytes, *, copy: int, seed: int) -> bytes:
    """Copy `copy` of a page: words and digits of text nodes changed, markup, scripts and styles untouched."""
    if copy == 0:
        return html
    rng = random.Random(seed)
    shift = {str(d).encode(): str((d + copy) % 10).encode() for d in range(10)}

    def word(m: re.Match) -> bytes:
        return VOCAB[rng.randrange(len(VOCAB))].encode() if rng.random() < EDIT_RATE else m.group(0)

    def text_node(m: re.Match) -> bytes:
        body = _DIGIT_RE.sub(lambda d: shift[d.group(0)], _WORD_RE.sub(word, m.group(1)))
        return b">" + body + b"<"

    parts = _SKIP_RE.split(html)
    return b"".join(p if i % 2 else _TEXT_RE.sub(text_node, p) for i, p in enumerate(parts))


def copy_url(url: str, copy: int) -> str:
    """A distinct, still realistic URL per copy."""
    return url if copy == 0 else f"{url}{'&' if '?' in url else '?'}bench_copy={copy}"


def charset_of(html: bytes) -> str:
    """Content-Type as a server would send it: utf-8 when the bytes are valid UTF-8, else no charset."""
    try:
        html.decode("utf-8")
    except UnicodeDecodeError:
        return "text/html"
    return "text/html; charset=utf-8"


def write_capture(writer: WARCWriter, *, url: str, html: bytes, index: int) -> None:
    """request, response and metadata records of one capture, with fixed dates and ids."""
    date = (BASE_DATE + timedelta(seconds=index)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rid = lambda kind: f"<urn:uuid:{uuid.uuid5(NAMESPACE, f'{kind}/{index}/{url}')}>"  # noqa: E731
    host = url.split("/")[2] if url.count("/") >= 2 else "example"
    req = StatusAndHeaders("GET / HTTP/1.1", [("Host", host), ("User-Agent", "refinery-bench/1.0")], is_http_request=True)
    writer.write_record(writer.create_warc_record(url, "request", payload=io.BytesIO(b""), http_headers=req,
                                                  warc_headers_dict={"WARC-Date": date, "WARC-Record-ID": rid("request")}))
    http = StatusAndHeaders("200 OK", [("Content-Type", charset_of(html)), ("Content-Length", str(len(html)))],
                            protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(html), http_headers=http,
                                                  warc_headers_dict={"WARC-Date": date, "WARC-Record-ID": rid("response"),
                                                                     "WARC-Identified-Payload-Type": "text/html"}))
    meta = f"fetchTimeMs: 120\ncharset-detected: {'UTF-8' if 'utf-8' in charset_of(html) else 'unknown'}\n".encode()
    writer.write_record(writer.create_warc_record(url, "metadata", payload=io.BytesIO(meta),
                                                  warc_content_type="application/warc-fields",
                                                  warc_headers_dict={"WARC-Date": date, "WARC-Record-ID": rid("metadata")}))


def build(*, pages: int, out: Path, scale: int = 1) -> dict:
    """Write `pages * scale` captures to `out`; returns a summary."""
    base = base_pages()
    total = pages * scale
    out.parent.mkdir(parents=True, exist_ok=True)
    html_bytes = 0
    with out.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        info = writer.create_warcinfo_record(out.name, {"software": "refinery bench/data/corpus.py", "format": "WARC File Format 1.1",
                                                        "description": f"{total} pages from {len(base)} sources"})
        info.rec_headers.replace_header("WARC-Date", BASE_DATE.strftime("%Y-%m-%dT%H:%M:%SZ"))
        info.rec_headers.replace_header("WARC-Record-ID", f"<urn:uuid:{uuid.uuid5(NAMESPACE, 'warcinfo')}>")
        writer.write_record(info)
        for i in range(total):
            copy, j = divmod(i, len(base))
            url, html = base[j]
            html = edit_html(html, copy=copy, seed=i)
            html_bytes += len(html)
            write_capture(writer, url=copy_url(url, copy), html=html, index=i)
    return {"pages": total, "sources": len(base), "html_mib": round(html_bytes / 2**20, 1),
            "file_mib": round(out.stat().st_size / 2**20, 1), "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data.corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000, help="captures at scale 1 (default 2000)")
    parser.add_argument("--scale", type=int, default=1, help="multiply --pages by this (memory test: 10)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/corpus.warc.gz"), help="output .warc.gz path")
    args = parser.parse_args(argv)
    if args.pages <= 0 or args.scale <= 0:
        parser.error(f"--pages ({args.pages}) and --scale ({args.scale}) must be > 0")
    print(json.dumps(build(pages=args.pages, out=args.out, scale=args.scale)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
