"""datatrove 0.10.1's FineWeb pipeline on the bench WARC, one task, one worker, one core, whole process.

WarcReader -> Trafilatura(favour_precision=True, timeout 1 s) -> GopherRepetitionFilter -> GopherQualityFilter
-> C4QualityFilter(filter_no_terminal_punct=False) -> FineWebQualityFilter -> ParquetWriter (JsonlWriter needs
orjson, not installed; our job writes Parquet too), as in datatrove's
examples/fineweb.py minus URLFilter and LanguageFilter (lid.176.bin cannot be downloaded here).
WarcReader imports `magic` and `cchardet`, which are not installed: `magic` is only called for records
without WARC-Identified-Payload-Type (the bench WARC sets it on every response), and `cchardet.detect` is
stood in for by resiliparse's C `detect_encoding` (used only for pages that are not valid UTF-8).

python -m bench.data.datatrove_fineweb --input bench/out/corpus.warc.gz --repeats 3
"""
from __future__ import annotations

import argparse
import importlib.machinery
import json
import shutil
import sys
import tempfile
import types
from pathlib import Path

from bench.common import OUT, PY, machine, median, run_pinned, save_report


def install_shims() -> None:
    """Stand-ins for the two WarcReader imports missing from the venv (see the module docstring)."""
    from resiliparse.parse.encoding import detect_encoding

    cchardet = types.ModuleType("cchardet")
    cchardet.detect = lambda data: {"encoding": detect_encoding(data)}
    magic = types.ModuleType("magic")

    def from_buffer(data, mime=False):
        raise RuntimeError("magic.from_buffer called: the WARC lacks WARC-Identified-Payload-Type; rebuild it with bench/data/corpus.py")

    magic.from_buffer = from_buffer
    for mod in (cchardet, magic):
        mod.__spec__ = importlib.machinery.ModuleSpec(mod.__name__, None)  # datatrove checks find_spec()
        sys.modules.setdefault(mod.__name__, mod)


def run_inner(warc: Path, workdir: Path) -> dict:
    """Build and run the pipeline in this process; returns the per-step counts from datatrove's stats."""
    install_shims()
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import ParquetWriter

    # Its build-time check asks for the pip distributions, which the shims are not.
    WarcReader._requires_dependencies = [d for d in WarcReader._requires_dependencies if not isinstance(d, tuple) or d[0] not in ("cchardet", "magic")]

    pipeline = [
        WarcReader(str(warc.parent), glob_pattern=warc.name),
        Trafilatura(favour_precision=True),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
        ParquetWriter(str(workdir / "output")),  # JsonlWriter needs orjson (not installed)
    ]
    LocalPipelineExecutor(pipeline=pipeline, tasks=1, workers=1, logging_dir=str(workdir / "logs")).run()
    stats = json.loads((workdir / "logs" / "stats.json").read_text())
    return {s["name"]: {k: v.get("total", v) if isinstance(v, dict) else v for k, v in s["stats"].items()} for s in stats}


def counts(stats: dict) -> dict:
    """Documents read, extracted and written, from datatrove's stats names."""
    reader = next(v for k, v in stats.items() if "Warc" in k or "WARC" in k)
    writer = next(v for k, v in stats.items() if "Parquet" in k)
    extractor = next(v for k, v in stats.items() if "Trafilatura" in k)
    return {"read": reader.get("documents", 0), "extracted": extractor.get("forwarded", 0), "written": writer.get("total", 0)}


def run_once(warc: Path, *, log: Path) -> tuple[dict, dict]:
    """One whole-process run under taskset: (wall/cpu/rss, document counts)."""
    workdir = Path(tempfile.mkdtemp(prefix="dt_fineweb_"))
    try:
        res = run_pinned([PY, "-m", "bench.data.datatrove_fineweb", "--inner", "--input", str(warc), "--workdir", str(workdir)], log=log)
        return res, counts(json.loads((workdir / "result.json").read_text()))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure(warc: Path, *, reps: int) -> dict:
    """`reps` whole-process runs; median wall, pages/s (response records / wall) and pages per CPU second."""
    walls, cpus, result = [], [], {}
    for rep in range(reps):
        res, result = run_once(warc, log=OUT / f"datatrove_fineweb.{rep}.log")
        walls.append(res["wall_s"])
        cpus.append(res["cpu_s"])
        print(f"datatrove rep {rep}: {res['wall_s']:.1f} s, cpu {res['cpu_s']:.1f} s, maxrss {res['maxrss_mib']:.0f} MiB, {result}",
              file=sys.stderr)
    return summarize(warc, walls, cpus, result)


def summarize(warc: Path, walls: list[float], cpus: list[float], result: dict) -> dict:
    wall, pages = median(walls), count_pages(warc)
    return {"pages": pages, "walls_s": [round(w, 2) for w in walls], "median_wall_s": round(wall, 2),
            "pages_per_s": round(pages / wall, 2), "cpu_s": [round(c, 2) for c in cpus],
            "pages_per_cpu_s": round(pages / median(cpus), 2), **result}


def count_pages(warc: Path) -> int:
    """Response records in the WARC: the common denominator of every docs/s figure."""
    from warcio.archiveiterator import ArchiveIterator

    with warc.open("rb") as fh:
        return sum(1 for rec in ArchiveIterator(fh) if rec.rec_type == "response")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=OUT / "corpus.warc.gz", help="bench WARC (bench/data/corpus.py)")
    parser.add_argument("--repeats", type=int, default=3, help="whole-process repetitions (median reported)")
    parser.add_argument("--inner", action="store_true", help="run the pipeline in this process (used by the timer)")
    parser.add_argument("--workdir", type=Path, help="with --inner: where output, logs and result.json go")
    args = parser.parse_args(argv)
    if args.inner:
        stats = run_inner(args.input.resolve(), args.workdir)
        (args.workdir / "result.json").write_text(json.dumps(stats))
        return 0
    report = {"machine": machine(), "input": str(args.input), "datatrove_fineweb": measure(args.input.resolve(), reps=args.repeats)}
    return save_report("datatrove_fineweb", report)


if __name__ == "__main__":
    sys.exit(main())
