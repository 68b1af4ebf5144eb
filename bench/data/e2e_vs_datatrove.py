"""Our werp job (FineWeb-like recipe; trafilatura, or --extractor) vs datatrove's FineWeb pipeline on the same WARC.

Both as whole processes, one worker, under `taskset -c $BENCH_CORE` (0 unless set), alternated rep by rep so
they see the same noise. docs/s = response records in the WARC / median wall; the ratio is ours / datatrove's
(target >= 2 with trafilatura, BENCHMARKS §4; >= 4 with lines, §18). datatrove always runs trafilatura; the report
records our extractor and is saved as e2e_vs_datatrove.json (trafilatura) or e2e_vs_datatrove_<extractor>.json.
Also reported: pages per CPU second (rusage of the process tree), which contention on a shared core moves less.

BENCH_CORE=1 python -m bench.data.e2e_vs_datatrove --input bench/out/corpus.warc.gz --config fineweb --repeats 3 \
    [--extractor lines]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.data import datatrove_fineweb as dt
from bench.common import OUT, machine, median, run_pinned, save_report
from bench.data.stages import kept_of, werp_cmd
from transforms.extract import EXTRACTORS
from transforms.recipe import available_recipes


def pick_recipe(wanted: str) -> str:
    """The FineWeb-like recipe if it ships, else the default (the report says which ran)."""
    return wanted if wanted in available_recipes("werp") else "bluwerp"


def run_ours(warc: Path, *, config: str, extractor: str, log: Path) -> tuple[dict, object]:
    out_dir = Path(tempfile.mkdtemp(prefix="werp_e2e_"))
    try:
        res = run_pinned(werp_cmd(warc, out_dir, extractor=extractor, config=config), log=log)
        return res, kept_of(json.loads((out_dir / "stats.json").read_text()))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def compare(warc: Path, *, config: str, extractor: str, reps: int) -> dict:
    ours_w, ours_c, dt_w, dt_c, dt_counts, written = [], [], [], [], {}, None
    for rep in range(reps):
        res, written = run_ours(warc, config=config, extractor=extractor, log=OUT / f"e2e.werp.{rep}.log")
        ours_w.append(res["wall_s"])
        ours_c.append(res["cpu_s"])
        res, dt_counts = dt.run_once(warc, log=OUT / f"e2e.datatrove.{rep}.log")
        dt_w.append(res["wall_s"])
        dt_c.append(res["cpu_s"])
        print(f"rep {rep}: ours {ours_w[-1]:.1f} s, datatrove {dt_w[-1]:.1f} s", file=sys.stderr)
    pages = dt.count_pages(warc)
    ours = {"walls_s": [round(w, 2) for w in ours_w], "docs_per_s": round(pages / median(ours_w), 2),
            "docs_per_cpu_s": round(pages / median(ours_c), 2), "written": written}
    theirs = {"walls_s": [round(w, 2) for w in dt_w], "docs_per_s": round(pages / median(dt_w), 2),
              "docs_per_cpu_s": round(pages / median(dt_c), 2), **dt_counts}
    return {"pages": pages, "config": config, "extractor": extractor, "ours": ours, "datatrove": theirs,
            "ratio_docs_per_s": round(median(dt_w) / median(ours_w), 2),
            "ratio_docs_per_cpu_s": round(median(dt_c) / median(ours_c), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=OUT / "corpus.warc.gz", help="the bench WARC")
    parser.add_argument("--config", default="fineweb", help="our recipe (falls back to bluwerp if it is missing)")
    parser.add_argument("--repeats", type=int, default=3, help="alternated repetitions of each (median reported)")
    parser.add_argument("--extractor", choices=tuple(EXTRACTORS), default="trafilatura",
                        help="our job's extractor (datatrove always runs trafilatura, as FineWeb did)")
    args = parser.parse_args(argv)
    config = pick_recipe(args.config)
    report = {"machine": machine(), "requested_config": args.config,
              **compare(args.input.resolve(), config=config, extractor=args.extractor, reps=args.repeats)}
    suffix = "" if args.extractor == "trafilatura" else f"_{args.extractor}"
    return save_report(f"e2e_vs_datatrove{suffix}", report)


if __name__ == "__main__":
    sys.exit(main())
