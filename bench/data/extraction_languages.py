"""Per-language behaviour of the extractors on real crawls: empty outputs and kept text, language by language.

    .venv/bin/python -m bench.data.extraction_languages [--data ../shared/data/warc]

Every HTML page of every WARC/ARC file under --data (recursive; several files are deliberately damaged: our
reader, transforms/io/warc.py, recovers what it can and the damage is counted) is identified once with py3langid
on Resiliparse's whole-page text (main_content=False), so every extractor is judged against the same label. Then
each extractor runs on it; per language: pages, empty outputs, and the median characters kept. jusText's English
stoplist is the language gate Blu-WERP describes; the others must not be one.
"""
from __future__ import annotations

import argparse
import collections
import statistics
import sys
from pathlib import Path

from bench.common import REPO, save_report
from transforms.extract import EXTRACTORS, ExtractConfig, extract_text
from transforms.io.warc import read_records
from transforms.io.warc_reasons import ReadIssue
from transforms.langid import LangIdConfig, load_identifier

MIN_PAGES = 3  # languages with fewer pages pool into "other"


def read_pages(root: Path) -> tuple[list[tuple[str, str]], collections.Counter]:
    """(url, html) of every HTML page under root, and counts of what could not be read, by reason."""
    pages, issues = [], collections.Counter()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and (".warc" in p.name or ".arc" in p.name)):
        with path.open("rb") as fh:
            try:
                for _, item in read_records(fh, source=str(path)):
                    if isinstance(item, ReadIssue):
                        issues[item.reason] += 1
                    elif not item.is_text:
                        pages.append((item.url, item.html))
            except Exception as exc:  # a file our reader gives up on is counted, the rest still run
                issues[f"file.{type(exc).__name__}"] += 1
    return pages, issues


def languages(htmls: list[str]) -> list[str]:
    """py3langid's label of each page's whole visible text ("und" when there is none)."""
    from resiliparse.extract.html2text import extract_plain_text

    ident = load_identifier(LangIdConfig(languages=("en",), max_chars=None))
    out = []
    for html in htmls:
        text = extract_plain_text(html, main_content=False)
        out.append(ident.predict(text)[0] if text.strip() else "und")
    return out


def table(langs: list[str], outputs: dict[str, list[str | None]]) -> list[str]:
    counts = collections.Counter(langs)
    pooled = ["other" if counts[lang] < MIN_PAGES else lang for lang in langs]
    order = [k for k, _ in collections.Counter(x for x in pooled if x not in ("en", "other")).most_common()]
    groups = [*order, "other", "all non-English", "en"]
    rows = ["| language | pages | " + " | ".join(f"{e}: empty / median chars" for e in outputs) + " |",
            "|---|---|" + "---|" * len(outputs)]
    for group in groups:
        idx = [i for i, lang in enumerate(pooled)
               if lang == group or (group == "all non-English" and lang != "en")]
        if not idx:
            continue
        cells = []
        for texts in outputs.values():
            got = [texts[i] for i in idx]
            failed = sum(t is None for t in got)
            empty = sum(t == "" for t in got)
            median = statistics.median(len(t or "") for t in got)
            cells.append(f"{empty}/{len(idx)} / {median:,.0f}" + (f" ({failed} failed)" if failed else ""))
        rows.append(f"| {group} | {len(idx)} | " + " | ".join(cells) + " |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "warc",
                        help="folder of WARC/ARC files (searched recursively)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        sys.exit(f"{args.data} is not a folder; pass --data <path to shared/data/warc>")
    pages, issues = read_pages(args.data)
    langs = languages([html for _, html in pages])
    outputs: dict[str, list[str | None]] = {}
    errors: dict[str, collections.Counter] = {}
    for name in EXTRACTORS:
        cfg = ExtractConfig(extractor=name, max_html_chars=None)
        texts: list[str | None] = []
        for _, html in pages:
            try:
                texts.append(extract_text(html, cfg))
            except Exception as exc:  # noqa: BLE001 - any error is counted per type, as werp's sandbox forwards it
                errors.setdefault(name, collections.Counter())[type(exc).__name__] += 1
                texts.append(None)
        outputs[name] = texts
    rows = table(langs, outputs)
    print(f"Command: .venv/bin/python -m bench.data.extraction_languages --data {args.data}")
    print(f"{len(pages)} HTML pages; unreadable parts by reason: {dict(issues) or 'none'}; "
          f"extractor errors: {({k: dict(v) for k, v in errors.items()}) or 'none'}")
    print(f"languages (und: no visible text): {dict(collections.Counter(langs).most_common())}\n")
    print("\n".join(rows))
    lines_only_empty = [url for (url, _), t, r in zip(pages, outputs["lines"], outputs["trafilatura"]) if t == "" and r]
    print(f"\npages where lines is empty and trafilatura is not: {len(lines_only_empty)}")
    return save_report("extraction_languages", {
        "pages": len(pages), "read_issues": dict(issues), "errors": {k: dict(v) for k, v in errors.items()},
        "languages": dict(collections.Counter(langs)), "table": rows, "lines_empty_trafilatura_not": lines_only_empty})


if __name__ == "__main__":
    sys.exit(main())
