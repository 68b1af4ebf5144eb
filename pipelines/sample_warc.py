"""Write the built-in sample WARC deterministically, so the demo needs no download and can be rebuilt bit for bit.

The crawl mixes what a real Common Crawl segment holds: articles with navigation, cookie banners and footers;
pages in German, French and Spanish; junk (link farms, lorem ipsum, keyword spam, shouting, tiny pages);
an adult-URL page; exact duplicates; non-HTML responses; request/metadata records; odd encodings
(windows-1252, gzip and brotli Content-Encoding, chunked transfer).
Run: python -m pipelines.sample_warc [PATH]   (default: the packaged pipelines/data/sample.warc.gz)
"""
from __future__ import annotations

import argparse
import gzip
import io
import random
import sys
import uuid
from pathlib import Path

import brotli
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipelines.sample_text import FOREIGN, SUBJECTS, english_paragraphs, headline

SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "sample.warc.gz"
SEED = 20261127
BASE_DATE = "2026-11-{day:02d}T{hour:02d}:{minute:02d}:00Z"

NAV = " ".join(f'<a href="/section/{w}">{w.title()}</a>' for w in "news sport world travel food science culture shop".split())
COOKIE = (
    '<div class="cookie-banner">We use cookies to improve your experience. By continuing to browse you accept '
    'our <a href="/privacy">privacy policy</a> and <a href="/terms">terms of use</a>. <button>Accept</button></div>'
)
FOOTER = (
    '<footer><p>Copyright 2026 Example Media Group. All rights reserved.</p><p><a href="/about">About us</a> | '
    '<a href="/contact">Contact</a> | <a href="/careers">Careers</a> | <a href="/advertise">Advertise</a></p></footer>'
)


def page(title: str, body: str, *, lang: str = "en", sidebar: bool = True) -> str:
    """A full page with the usual boilerplate around the main content."""
    side = (
        '<aside class="related"><h3>Related</h3><ul>'
        + "".join(f'<li><a href="/r/{i}">Read more: story {i}</a></li>' for i in range(6))
        + "</ul></aside>"
        if sidebar
        else ""
    )
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>'
        '<style>body{font-family:sans-serif}</style><script>var tracker = {id: 42};</script></head>'
        f"<body><nav>{NAV}</nav>{COOKIE}<main><article><h1>{title}</h1>"
        f'<p class="byline">By Staff Writer</p>{body}</article></main>{side}{FOOTER}</body></html>'
    )


def article_pages(rng: random.Random, count: int = 2 * len(SUBJECTS)) -> list[tuple[str, str]]:
    """English articles: the content the pipeline should keep."""
    out = []
    for i in range(count):
        subject = SUBJECTS[i % len(SUBJECTS)]
        paras = "".join(f"<p>{text}</p>" for text in english_paragraphs(rng, subject, rng.randint(4, 6)))
        out.append((f"https://news.example.com/{subject['slug']}/{i}", page(headline(rng, subject), paras)))
    return out


def foreign_pages() -> list[tuple[str, str]]:
    """Non-English articles: dropped by language ID (or by jusText's English stoplist)."""
    out = []
    for lang, (host, title, paras) in FOREIGN.items():
        body = "".join(f"<p>{p}</p>" for p in paras)
        out.append((f"https://{host}/artikel/{lang}", page(title, body, lang=lang)))
    return out


def junk_pages(rng: random.Random) -> list[tuple[str, str]]:
    """Pages every quality recipe should drop, one per failure family."""
    links = "".join(f'<li><a href="https://deals.example.net/{i}">cheap deal {i}</a></li>' for i in range(80))
    lorem = "<p>" + " ".join(["Lorem ipsum dolor sit amet, consectetur adipiscing elit."] * 12) + "</p>"
    spam = "".join("<p>Buy cheap watches online best price cheap watches discount watches buy now.</p>" for _ in range(30))
    shout = "".join(f"<p>HUGE SALE TODAY ONLY {n} PERCENT OFF EVERYTHING CALL NOW</p>" for n in range(10, 40))
    numbers = "".join(f"<p>{rng.randint(1000, 99999)} {rng.randint(10, 999)} {rng.randint(1, 9)}</p>" for _ in range(40))
    rng_subject = SUBJECTS[0]
    one_para = english_paragraphs(rng, rng_subject, 1)[0]
    repeated = "".join(f"<p>{one_para}</p>" for _ in range(8))  # a scraped page that repeats itself
    brief = f"<p>{one_para.split('. ')[0]}.</p>"  # real prose, but far too short to be a document
    return [
        ("https://mirror.example.org/again", page("Again and again", repeated)),
        ("https://brief.example.org/note", page("Note", brief, sidebar=False)),
        ("https://links.example.net/directory", page("Directory", f"<ul>{links}</ul>", sidebar=False)),
        ("https://filler.example.org/lorem", page("Placeholder", lorem)),
        ("https://watches.example.biz/cheap", page("Cheap watches", spam)),
        ("https://sale.example.biz/now", page("SALE", shout)),
        ("https://stats.example.org/table", page("Numbers", numbers)),
        ("https://tiny.example.org/", page("Hi", "<p>Welcome.</p>", sidebar=False)),
        ("https://www.pornhub.example.com/video/1", page("Video", "<p>" + "Watch the best videos here today. " * 20 + "</p>")),
    ]


def write_response(writer: WARCWriter, url: str, body: bytes, *, when: str, rid: str, headers: list) -> None:
    """One response record with fixed date and id (warcio would otherwise use now() and a random UUID)."""
    http = StatusAndHeaders("200 OK", headers + [("Content-Length", str(len(body)))], protocol="HTTP/1.1")
    record = writer.create_warc_record(
        url, "response", payload=io.BytesIO(body), http_headers=http,
        warc_headers_dict={"WARC-Date": when, "WARC-Record-ID": f"<urn:uuid:{rid}>"},
    )
    writer.write_record(record)


def encode(html: str, variant: int) -> tuple[bytes, list]:
    """Cycle through the encodings a crawler meets: plain utf-8, cp1252, gzip and brotli Content-Encoding."""
    if variant == 1:
        return html.encode("cp1252", "replace"), [("Content-Type", "text/html; charset=windows-1252")]
    if variant == 2:
        return gzip.compress(html.encode(), mtime=0), [("Content-Type", "text/html; charset=utf-8"), ("Content-Encoding", "gzip")]
    if variant == 3:
        return brotli.compress(html.encode()), [("Content-Type", "text/html; charset=utf-8"), ("Content-Encoding", "br")]
    return html.encode(), [("Content-Type", "text/html; charset=utf-8")]


def build_sample_warc(path: Path, *, articles: int = 2 * len(SUBJECTS)) -> int:
    """Write the sample (more articles for a bigger crawl) and return the number of HTML responses in it."""
    rng = random.Random(SEED)
    ids = random.Random(SEED + 1)
    pages = article_pages(rng, articles) + foreign_pages() + junk_pages(rng)
    pages += [(url + "?utm_source=mirror", html) for url, html in pages[:3]]  # exact duplicates under other URLs
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        info = b"software: refinery sample_warc\r\nformat: WARC File Format 1.1\r\n"
        writer.write_record(writer.create_warc_record(
            "", "warcinfo", payload=io.BytesIO(info), length=len(info),
            warc_headers_dict={"WARC-Date": BASE_DATE.format(day=1, hour=0, minute=0), "WARC-Filename": "sample.warc.gz",
                               "WARC-Record-ID": f"<urn:uuid:{uuid.UUID(int=ids.getrandbits(128))}>",
                               "Content-Type": "application/warc-fields"}))
        for n, (url, html) in enumerate(pages):
            when = BASE_DATE.format(day=1 + n % 27, hour=n % 24, minute=(7 * n) % 60)
            body, headers = encode(html, n % 4)
            write_response(writer, url, body, when=when, rid=str(uuid.UUID(int=ids.getrandbits(128))), headers=headers)
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
        write_response(writer, "https://news.example.com/logo.png", png, when=BASE_DATE.format(day=2, hour=3, minute=4),
                       rid=str(uuid.UUID(int=ids.getrandbits(128))), headers=[("Content-Type", "image/png")])
    return len(pages)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.sample_warc", description=__doc__.split("\n")[0])
    parser.add_argument("path", nargs="?", default=str(SAMPLE_PATH),
                        help="where to write the WARC (default: the packaged sample, rebuilt bit for bit)")
    parser.add_argument("--articles", type=int, default=2 * len(SUBJECTS),
                        help="English articles in the crawl (default %(default)s, the packaged sample); thousands make "
                             "a corpus big enough to train the tiny model on (scripts/train_demo.sh)")
    args = parser.parse_args(argv)
    print(f"wrote {build_sample_warc(Path(args.path), articles=args.articles)} HTML pages to {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
