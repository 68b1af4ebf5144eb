"""What a byte range costs and how evenly ranges share the work (transforms/io/range_sizing.py).

Overhead: ReadWarcPages alone (in process, one core) over the corpus in ranges of several sizes, alternated;
(wall - wall of one range) / (ranges - 1). Balance: each page's extraction CPU time, summed per range, ranges
dealt round-robin to W workers as Beam's local runner deals a stage's input (once, up front); the busiest
worker's load against the mean, per ranges-per-worker setting.

.venv/bin/python -m bench.data.range_balance --input bench/out/corpus.warc.gz --workers 2 4 --repeats 3
"""
from __future__ import annotations

import argparse
import bisect
import json
import sys
import time
from pathlib import Path

from bench.common import OUT, machine, median, pin_one_core
from transforms.document import Page
from transforms.extract import ExtractConfig, ExtractionError, extract_text
from transforms.io.range_sizing import byte_ranges, split_bytes_for
from transforms.io.warc import read_records

RANGE_OVERHEAD_S = 0.002  # opening a range and finding its first record (BENCHMARKS.md §16)


def page_costs(path: Path, extractor: str) -> list[tuple[int, float]]:
    """(byte offset, CPU seconds to extract) of every HTML page, in file order."""
    cfg, costs = ExtractConfig(extractor=extractor), []
    with open(path, "rb") as fh:
        for offset, item in read_records(fh, source=str(path)):
            if isinstance(item, Page):
                start = time.process_time()
                try:
                    extract_text(item.html, cfg)
                except ExtractionError:
                    pass  # counted as a drop by the job; its time still counts here
                costs.append((offset, time.process_time() - start))
    return costs


def balance(costs: list[tuple[int, float]], *, size: int, workers: int, ranges_per_worker: int) -> dict:
    """Efficiency (mean worker load / busiest worker's) of ranges dealt in turn, as FnApiRunner deals them."""
    split = split_bytes_for(total_bytes=size, workers=workers, max_split_bytes=64 << 20,
                            ranges_per_worker=ranges_per_worker)
    offsets = [o for o, _ in costs]
    per_range = []
    for start, stop in byte_ranges(size, split):
        lo, hi = bisect.bisect_left(offsets, start), bisect.bisect_left(offsets, stop)
        per_range.append(sum(c for _, c in costs[lo:hi]) + RANGE_OVERHEAD_S)
    loads = [sum(per_range[w::workers]) for w in range(workers)]
    return {"ranges": len(per_range), "split_bytes": split,
            "efficiency": round(sum(loads) / workers / max(loads), 3)}


def overhead(path: Path, *, split_sizes: list[int], reps: int) -> dict:
    """Median wall of reading every page (and counting them) per range size, the sizes alternated."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from transforms.beam.read import ReadWarcPages, plan_ranges

    walls: dict[int, list[float]] = {s: [] for s in split_sizes}
    for _ in range(reps):
        for split in split_sizes:
            start = time.perf_counter()
            with beam.Pipeline(runner=FnApiRunner(), options=PipelineOptions([])) as p:
                pages, _ = p | beam.Create([str(path)]) | ReadWarcPages(split_bytes=split)
                _ = pages | beam.combiners.Count.Globally()
            walls[split].append(time.perf_counter() - start)
    size = path.stat().st_size
    rows = {s: {"ranges": len(list(plan_ranges((str(path), size, True), s))), "wall_s": round(median(w), 3)}
            for s, w in walls.items()}
    base = rows[max(split_sizes)]
    for row in rows.values():
        extra = row["ranges"] - base["ranges"]
        row["s_per_extra_range"] = round((row["wall_s"] - base["wall_s"]) / extra, 4) if extra else None
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=OUT / "corpus.warc.gz")
    parser.add_argument("--extractor", default="justext", choices=("justext", "trafilatura", "resiliparse"))
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--ranges-per-worker", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--split-sizes", type=int, nargs="+", default=[64 << 20, 1 << 20, 256 << 10])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    pin_one_core()
    reads = overhead(args.input, split_sizes=args.split_sizes, reps=args.repeats)
    costs = page_costs(args.input, args.extractor)
    size = args.input.stat().st_size
    report = {"machine": machine(), "input": str(args.input), "read_overhead": reads,
              "extractor": args.extractor, "pages": len(costs),
              "cpu_s": round(sum(c for _, c in costs), 1),
              "balance": {f"{w} workers x {k}": balance(costs, size=size, workers=w, ranges_per_worker=k)
                          for w in args.workers for k in args.ranges_per_worker}}
    (OUT / "range_balance.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
