"""Real text for benchmarks (scripts/real_shards.sh): the extraction test pages as a crawl, a stdlib subset, stats.

python -m bench.data.real_corpus warc --out output/real/pages.warc.gz          # 163 real pages, one capture each
python -m bench.data.real_corpus stdlib                                        # comma-separated globs of the code subset
python -m bench.data.real_corpus stats --werp output/real/werp --code output/real/swallowcode --tokens output/real/tokens

`warc`: every page of /work/shared/data/extraction (scrapinghub-aeb, trafilatura-eval, cleaneval dev, dragnet) once,
unedited, as request/response/metadata records with its real URL (bench/data/corpus.py's writer with no copies), so the
web text goes through `python -m pipelines.werp` like any crawl. Shared data is a developer test set, not part of
the project: the commands here fail with a clear message when it is missing.
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
import sysconfig
import uuid
from collections import Counter
from pathlib import Path

from bench.data.corpus import BASE_DATE, NAMESPACE, base_pages, write_capture

SHARED = Path("/work/shared/data")
# The code subset: the top-level modules plus a few pure-Python packages, ~8 MB; tests, idlelib, lib2to3, encodings
# (generated tables), tkinter/turtledemo (GUI) and site-packages are left out.
STDLIB_PACKAGES = ("json", "email", "email/mime", "http", "urllib", "logging", "concurrent/futures", "asyncio",
                   "importlib", "importlib/metadata", "importlib/resources", "xml/etree", "xml/dom", "wsgiref",
                   "html", "collections", "tomllib", "zoneinfo", "sqlite3", "unittest", "multiprocessing", "re",
                   "dbm", "xmlrpc", "ctypes")


class MissingData(SystemExit):
    pass


def need(path: Path) -> Path:
    if not path.exists():
        raise MissingData(f"error: {path} not found. This benchmark helper reads the developer test data in "
                          f"/work/shared/data (see its PROVENANCE.md); the project itself does not need it.")
    return path


def build_warc(out: Path, data: Path = SHARED) -> dict:
    """Every extraction page once, unedited, in Common Crawl's layout; returns a summary."""
    pages = base_pages(need(data / "extraction"))
    out.parent.mkdir(parents=True, exist_ok=True)
    from warcio.warcwriter import WARCWriter

    with out.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        info = writer.create_warcinfo_record(out.name, {"software": "refinery bench/data/real_corpus.py",
                                                        "format": "WARC File Format 1.1",
                                                        "description": f"{len(pages)} real pages, no copies"})
        info.rec_headers.replace_header("WARC-Date", BASE_DATE.strftime("%Y-%m-%dT%H:%M:%SZ"))
        info.rec_headers.replace_header("WARC-Record-ID", f"<urn:uuid:{uuid.uuid5(NAMESPACE, 'real-warcinfo')}>")
        writer.write_record(info)
        for i, (url, html) in enumerate(pages):
            write_capture(writer, url=url, html=html, index=i)
    return {"pages": len(pages), "html_mib": round(sum(len(h) for _, h in pages) / 2**20, 1),
            "file_mib": round(out.stat().st_size / 2**20, 1), "out": str(out)}


def stdlib_globs(root: str | None = None) -> list[str]:
    root = root or sysconfig.get_paths()["stdlib"]
    return [f"{root}/*.py"] + [f"{root}/{p}/*.py" for p in STDLIB_PACKAGES if Path(root, p).is_dir()]


def web_bucket(url: str, source: str) -> str:
    """Which input a werp document came from: the packed extraction pages or one of the shared crawl files."""
    if source.endswith("pages.warc.gz"):
        return "extraction pages (pages.warc.gz)"
    return "shared/data/warc: " + Path(source).parent.name


def stats(werp: Path, code: Path, tokens: Path) -> dict:
    import pyarrow.parquet as pq

    out: dict = {}
    web = pq.read_table(sorted(glob.glob(str(werp / "documents/*.parquet"))), columns=["url", "source", "char_count"])
    web = web.to_pylist()
    out["web_docs"], out["web_chars"] = len(web), sum(r["char_count"] for r in web)
    out["web_docs_by_input"] = dict(Counter(web_bucket(r["url"], r["source"] or "") for r in web).most_common())
    werp_stats = json.loads((werp / "stats.json").read_text())["stages"]
    out["werp_pages_read"] = werp_stats["read"]["docs_out"]
    out["werp_read_errors"] = sum(werp_stats["read"]["errors"].values())
    rows = pq.read_table(sorted(glob.glob(str(code / "documents/*.parquet"))), columns=["char_count"]).to_pylist()
    code_stats = json.loads((code / "stats.json").read_text())["stages"]
    out["code_files_in"], out["code_files_kept"] = code_stats["read"]["docs_out"], len(rows)
    out["code_chars"] = sum(r["char_count"] for r in rows)
    man = json.loads((tokens / "manifest.json").read_text())
    out["sources"] = {n: {k: s[k] for k in ("documents", "tokens_available", "tokens_taken", "tokens_taken_by_split",
                                               "realised_weight")} for n, s in man["sources"].items()}
    out["splits"] = {n: {k: s[k] for k in ("documents", "rows", "tokens")} for n, s in man["splits"].items()}
    out["vocab_size"], out["seq_len"] = man["vocab_size"], man["seq_len"]
    out["unigram_entropy"] = man["unigram_entropy"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data.real_corpus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("warc", help="pack the extraction pages into a WARC")
    w.add_argument("--out", type=Path, default=Path("output/real/pages.warc.gz"))
    w.add_argument("--data", type=Path, default=SHARED)
    s = sub.add_parser("stdlib", help="print the code subset as comma-separated globs")
    s.add_argument("--root", default=None, help="stdlib folder (default: this interpreter's)")
    t = sub.add_parser("stats", help="documents per source, tokens, unigram entropy (JSON)")
    t.add_argument("--werp", type=Path, default=Path("output/real/werp"))
    t.add_argument("--code", type=Path, default=Path("output/real/swallowcode"))
    t.add_argument("--tokens", type=Path, default=Path("output/real/tokens"))
    args = parser.parse_args(argv)
    try:
        if args.cmd == "warc":
            print(json.dumps(build_warc(args.out, args.data)))
        elif args.cmd == "stdlib":
            print(",".join(stdlib_globs(args.root)))
        else:
            print(json.dumps(stats(args.werp, args.code, args.tokens), indent=2))
    except MissingData as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
