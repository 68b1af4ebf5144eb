"""Throughput of our quality/repetition steps against datatrove 0.10.1's FineWeb filters, on one core.

    .venv/bin/python -m bench.data.filters_vs_datatrove [--docs 2000] [--repeats 5]

Texts: the extraction-benchmark gold texts (../shared/data/extraction), repeated with a small
deterministic edit per copy so no two documents are identical (datatrove caches tokenisations of recent
texts). Ours: gopher_repetition, gopher_quality, c4, fineweb, refinedweb_lines as the pipeline runs them
(one TextView, rebuilt after each edit, a drop ends the chain). Theirs: GopherRepetitionFilter,
GopherQualityFilter, C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter in sequence.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

from tests.filters.test_parity_datatrove import DATA, load_gold_texts
from transforms.filters import c4, fineweb, gopher, refinedweb
from transforms.text import TextView


def build_corpus(n_docs: int) -> list[str]:
    """Gold texts repeated to n_docs, copy k with its k-th word doubled and a numbered last line."""
    base = [text for _, text in load_gold_texts(DATA)]
    docs = []
    for k in range(n_docs):
        text = base[k % len(base)]
        words = text.split(" ")
        i = (k // len(base)) % len(words)
        docs.append(" ".join(words[:i] + [words[i]] + words[i:]) + f"\nCopy number {k}.")
    return docs


def ours() -> Callable[[str], bool]:
    """Our steps in pipeline order; True when the document survives."""
    rep, qual = gopher.GopherRepetitionConfig(), gopher.GopherQualityConfig()
    c4_cfg, fw_cfg = c4.C4Config(), fineweb.FineWebQualityConfig(max_newline_per_word_ratio=0.3)
    rw_cfg = refinedweb.RefinedWebLinesConfig()

    def run(text: str) -> bool:
        view = TextView(text)
        if not gopher.gopher_repetition(view, rep).keep or not gopher.gopher_quality(view, qual).keep:
            return False
        edit = c4.c4(view, c4_cfg)
        if not edit.verdict.keep:
            return False
        view = TextView(edit.text)
        if not fineweb.fineweb_quality(view, fw_cfg).keep:
            return False
        return refinedweb.refinedweb_lines(view, rw_cfg).verdict.keep

    return run


def theirs() -> Callable[[str], bool]:
    """datatrove's FineWeb filter chain, called through filter() without the batching/stats wrapper."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)

    chain = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False),
             FineWebQualityFilter(char_duplicates_ratio=0.1, new_line_ratio=0.3)]

    def run(text: str) -> bool:
        doc = Document(text=text, id="x")
        return all(block.filter(doc) is True for block in chain)

    return run


def time_docs_per_s(fn: Callable[[str], bool], docs: list[str], repeats: int) -> tuple[float, int]:
    """Median docs/s over repeats, and how many documents survived."""
    fn(docs[0])  # load lazy models (spaCy) outside the clock
    rates, kept = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        kept = sum(map(fn, docs))
        rates.append(len(docs) / (time.perf_counter() - start))
    return statistics.median(rates), kept


def main(argv: list[str] | None = None) -> None:
    """Pin to one core, time both chains, print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="documents in the corpus (>= 2000 for the report)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per chain; the median is reported")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {0})
    docs = build_corpus(args.docs)
    mb = sum(len(d) for d in docs) / 1e6
    ours_rate, ours_kept = time_docs_per_s(ours(), docs, args.repeats)
    dt_rate, dt_kept = time_docs_per_s(theirs(), docs, args.repeats)
    print(f"{len(docs)} docs, {mb:.1f} M chars, 1 core, median of {args.repeats} passes\n")
    print("| chain | docs/s | kept |\n|---|---|---|")
    ours_name = "refinery (gopher_repetition, gopher_quality, c4, fineweb, refinedweb_lines)"
    dt_name = "datatrove 0.10.1 (GopherRepetition, GopherQuality, C4Quality, FineWebQuality)"
    print(f"| {ours_name} | {ours_rate:,.0f} | {ours_kept} |")
    print(f"| {dt_name} | {dt_rate:,.0f} | {dt_kept} |")
    print(f"| ratio | {ours_rate / dt_rate:.1f}x | |")


if __name__ == "__main__":
    main()
