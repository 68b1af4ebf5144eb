"""The werp job's per-document work as a plain Python loop: the baseline Beam's overhead is measured against.

read -> URL filter -> extract (in the same SandboxedExtractor the ExtractFn uses, unless --in-process)
-> language ID -> the recipe's quality steps over one shared TextView -> exact-dedup key (first copy kept)
-> the same Parquet rows written with pyarrow (zstd), so both sides do the job's whole work.
Prints one JSON line of counts.

python -m bench.data.plain_loop --input bench/out/corpus.warc.gz --extractor resiliparse [--config bluwerp]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from transforms.dedup.exact import exact_key
from transforms.document import Document, Page
from transforms.extract import ExtractionTimeout, extract_text
from transforms.extract_sandbox import SandboxedExtractor
from transforms.filters.base import apply_steps
from transforms.filters.url import check_url, load_url_lists
from transforms.io.parquet import document_row, document_schema
from transforms.io.warc import read_records
from transforms.langid import check_language, load_identifier
from transforms.recipe import WebRecipe, load_recipe
from transforms.text import TextView


def recipe_for(config: str, extractor: str | None) -> WebRecipe:
    """The recipe with the --extractor override, as pipelines.werp.resolve applies it (extract.extractor)."""
    return load_recipe(config, [f"extract.extractor={extractor}"] if extractor else [])


def run_steps(text: str, recipe: WebRecipe, stats: dict) -> tuple[str | None, TextView]:
    """The quality steps as QualityStepsFn runs them: (drop reason or None, final view); scores into stats."""
    view = TextView(text)
    for _, verdict, view in apply_steps(view, recipe.steps):
        stats.update(verdict.stats)
        if not verdict.keep:
            return verdict.reason, view
    return None, view


def run_loop(warc: Path, recipe: WebRecipe, *, sandbox: bool = True, output: Path | None = None) -> Counter:
    """Every stage of the job on one file, in order; returns how many documents each stage dropped."""
    counts: Counter = Counter()
    rows: list[dict] = []
    lists = load_url_lists(recipe.url_filter) if recipe.url_filter is not None else None
    extractor = SandboxedExtractor(recipe.extract) if sandbox else None
    identifier = load_identifier(recipe.langid) if recipe.langid is not None else None
    seen: set[bytes] = set()
    with warc.open("rb") as fh:
        for _, item in read_records(fh, source=str(warc), max_record_bytes=recipe.read.max_record_bytes):
            if not isinstance(item, Page):
                counts["read.skipped"] += 1
                continue
            counts["pages"] += 1
            status = process(item, recipe, lists=lists, extractor=extractor, identifier=identifier, seen=seen)
            if isinstance(status, Document):
                rows.append(document_row(status, recipe.stat_names))
                status = "kept"
            counts[status] += 1
    if extractor is not None:
        extractor.close()
    if output is not None:
        schema = document_schema(recipe.stat_names)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), output, compression=recipe.output.codec)
    return counts


def process(page: Page, recipe: WebRecipe, *, lists, extractor, identifier, seen: set[bytes]) -> str | Document:
    """One page through the stages; returns the kept Document or the stage's drop reason."""
    if lists is not None and not (verdict := check_url(page.url, lists, recipe.url_filter)).keep:
        return verdict.reason
    try:
        text = extractor.extract(page.html) if extractor is not None else extract_text(page.html, recipe.extract)
    except ExtractionTimeout:
        return "extract.timeout"
    except (ValueError, TypeError, RuntimeError) as exc:
        return f"extract.error.{type(exc).__name__}"
    if not text.strip():
        return "extract.empty"
    doc = Document(id=page.id, url=page.url, warc_date=page.warc_date, text=text,
                   extractor=recipe.extract.extractor, source=page.source)
    if identifier is not None:
        doc.language, doc.language_score = identifier.predict(text)
        if not (verdict := check_language(doc.language, doc.language_score, cfg=recipe.langid)).keep:
            return verdict.reason
    reason, view = run_steps(text, recipe, doc.stats)
    if reason is not None:
        return reason
    doc.text, doc.word_count = view.text, len(view.words)
    key = exact_key(doc.text)
    if key in seen:
        return "exact.duplicate"
    seen.add(key)
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="a WARC file")
    parser.add_argument("--extractor", choices=("justext", "trafilatura", "resiliparse"), default=None)
    parser.add_argument("--config", default="bluwerp", help="recipe name or YAML path (as pipelines.werp)")
    parser.add_argument("--in-process", action="store_true", help="call extract_text directly, no sandbox")
    parser.add_argument("--output", type=Path, default=None, help="write the kept rows here (Parquet, as the job)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    counts = run_loop(args.input, recipe_for(args.config, args.extractor), sandbox=not args.in_process,
                      output=args.output)
    print(json.dumps({"loop_s": round(time.perf_counter() - start, 3), **dict(sorted(counts.items()))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
