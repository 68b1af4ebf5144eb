"""Documents/s of each werp stage as plain functions on one core, end to end per extractor, and Beam's overhead.

Stages run in this process (pinned to one core) on pages read once into memory; each figure is the median
of --repeats passes. Slow extractors (jusText, trafilatura) and the stages after them run on the first
--subset pages (all sources, whole copies); resiliparse and the read/URL stages on the whole corpus.
End to end: bench/data/plain_loop.py and `python -m pipelines.werp --runner=DirectRunner` as whole processes
under `taskset -c 0`, alternated, same input, extractor and recipe; ratio = plain wall / Beam wall.

python -m bench.data.stages --input bench/out/corpus.warc.gz --subset-input bench/out/subset.warc.gz --repeats 3
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import psutil

from bench.common import OUT, PY, machine, median, pin_one_core, run_pinned
from bench.data.plain_loop import recipe_for, run_steps
from transforms.dedup.exact import exact_key
from transforms.document import Page
from transforms.extract import extract_text
from transforms.extract_sandbox import SandboxedExtractor
from transforms.filters.registry import registry
from transforms.filters.url import UrlFilterConfig, check_url, load_url_lists
from transforms.io.warc import read_records
from transforms.langid import LangIdConfig, load_identifier
from transforms.text import TextView

EXTRACTORS = ("resiliparse", "justext", "trafilatura")
DEFAULT_RECIPE = "bluwerp"


def rate(fn: Callable, items: list, *, reps: int, child: ChildCpu | None = None) -> dict:
    """Median docs/s of `fn` called on each item in a loop, by wall and by CPU time (this process, plus the
    sandbox children when `child` tracks them); CPU time is what other load on the shared core cannot inflate."""
    walls, cpus = [], []
    for _ in range(reps):
        start, cpu0, child0 = time.perf_counter(), time.process_time(), child.total() if child else 0.0
        for item in items:
            fn(item)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu0 + (child.total() - child0 if child else 0.0))
    wall, cpu = median(walls), median(cpus)
    return {"docs": len(items), "docs_per_s": round(len(items) / wall, 1), "docs_per_cpu_s": round(len(items) / cpu, 1)}


class ChildCpu:
    """CPU seconds of every child a SandboxedExtractor used: it replaces its child every max_docs_per_child pages."""

    def __init__(self, sandbox: SandboxedExtractor) -> None:
        self.sandbox, self.seen = sandbox, {}

    def extract(self, html: str) -> str:
        text = self.sandbox.extract(html)
        self.note()
        return text

    def note(self) -> None:
        if (pid := self.sandbox.pid) is not None:
            t = psutil.Process(pid).cpu_times()
            self.seen[pid] = t.user + t.system

    def total(self) -> float:
        return sum(self.seen.values())


def read_pages(warc: Path) -> list[Page]:
    with warc.open("rb") as fh:
        return [p for _, p in read_records(fh, source=str(warc)) if isinstance(p, Page)]


def extraction_rates(pages: list[Page], subset: list[Page], recipe, *, reps: int,
                     with_texts: bool = True) -> tuple[dict, dict[str, list[str]]]:
    """Each extractor in-process and through SandboxedExtractor; returns rates and the texts per extractor."""
    out, texts = {}, {}
    for name in EXTRACTORS:
        cfg = dataclasses.replace(recipe.extract, extractor=name)
        items = pages if name == "resiliparse" else subset
        out[f"extract.{name}.in_process"] = rate(lambda p: extract_text(p.html, cfg), items, reps=reps)
        sandbox = SandboxedExtractor(cfg)
        try:
            tracked = ChildCpu(sandbox)
            tracked.extract(items[0].html)  # start the worker outside the timed loop
            out[f"extract.{name}.sandboxed"] = rate(lambda p: tracked.extract(p.html), items, reps=reps, child=tracked)
        finally:
            sandbox.close()
        if with_texts:
            texts[name] = [t for p in subset if (t := extract_text(p.html, cfg)).strip()]
    return out, texts


def text_rates(texts: list[str], recipe, *, reps: int) -> dict:
    """Language ID, the recipe's steps on one shared view, every registered step alone, exact-dedup key."""
    out = {}
    identifier = load_identifier(recipe.langid or LangIdConfig())
    out["langid"] = rate(identifier.predict, texts, reps=reps)
    out[f"steps.{recipe.name}.chain"] = rate(lambda t: run_steps(t, recipe, {}), texts, reps=reps)
    for name, spec in registry().items():
        cfg = spec.config_cls()
        out[f"step.{name}"] = rate(lambda t: spec.fn(TextView(t), cfg), texts, reps=reps)
    out["dedup.exact_key"] = rate(exact_key, texts, reps=reps)
    return out


def stage_rates(corpus: Path, subset_n: int, *, reps: int) -> dict:
    recipe = recipe_for(DEFAULT_RECIPE, None)
    walls, cpus = [], []
    for _ in range(reps):
        start, cpu0 = time.perf_counter(), time.process_time()
        pages = read_pages(corpus)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu0)
    out = {"read.warc": {"docs": len(pages), "docs_per_s": round(len(pages) / median(walls), 1),
                         "docs_per_cpu_s": round(len(pages) / median(cpus), 1)}}
    url_cfg = recipe.url_filter or UrlFilterConfig()
    lists = load_url_lists(url_cfg)
    out["url_filter"] = rate(lambda p: check_url(p.url, lists, url_cfg), pages, reps=reps)
    ex, texts = extraction_rates(pages, pages[:subset_n], recipe, reps=reps)
    out.update(ex)
    for name, ts in texts.items():
        out.update({f"{k} [{name} text]": v for k, v in text_rates(ts, recipe, reps=reps).items()})
    return out


def beam_vs_loop(warc: Path, extractor: str, *, config: str, reps: int) -> dict:
    """Whole-process walls of the plain loop and the Beam job, alternated; ratio = loop / Beam."""
    loop_walls, beam_walls, loop_cpus, beam_cpus, loop_counts, beam_stats = [], [], [], [], {}, {}
    for rep in range(reps):
        loop_out = Path(tempfile.mkdtemp(prefix="loop_bench_")) / "kept.parquet"
        res = run_pinned([PY, "-m", "bench.data.plain_loop", "--input", str(warc), "--extractor", extractor, "--config", config,
                          "--output", str(loop_out)], log=OUT / f"loop.{extractor}.{rep}.log")
        shutil.rmtree(loop_out.parent, ignore_errors=True)
        loop_walls.append(res["wall_s"])
        loop_cpus.append(res["cpu_s"])
        loop_counts = json.loads((OUT / f"loop.{extractor}.{rep}.log").read_text().strip().splitlines()[-1])
        out_dir = Path(tempfile.mkdtemp(prefix="werp_bench_"))
        try:
            res = run_pinned(werp_cmd(warc, out_dir, extractor=extractor, config=config), log=OUT / f"werp.{extractor}.{rep}.log")
            beam_stats = json.loads((out_dir / "stats.json").read_text())
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        beam_walls.append(res["wall_s"])
        beam_cpus.append(res["cpu_s"])
        print(f"{extractor} rep {rep}: loop {loop_walls[-1]:.1f} s, beam {beam_walls[-1]:.1f} s", file=sys.stderr)
    pages = loop_counts["pages"]
    loop_wall, beam_wall = median(loop_walls), median(beam_walls)
    return {"input": str(warc), "pages": pages, "config": config,
            "loop_walls_s": [round(w, 2) for w in loop_walls], "beam_walls_s": [round(w, 2) for w in beam_walls],
            "loop_docs_per_s": round(pages / loop_wall, 1), "beam_docs_per_s": round(pages / beam_wall, 1),
            "ratio_loop_over_beam": round(loop_wall / beam_wall, 3),
            "loop_docs_per_cpu_s": round(pages / median(loop_cpus), 1),
            "beam_docs_per_cpu_s": round(pages / median(beam_cpus), 1),
            "ratio_cpu_loop_over_beam": round(median(loop_cpus) / median(beam_cpus), 3),
            "loop_kept": loop_counts.get("kept"), "beam_written": kept_of(beam_stats)}


def werp_cmd(warc: Path, out_dir: Path, *, extractor: str, config: str) -> list[str]:
    return [PY, "-m", "pipelines.werp", "--runner=DirectRunner", "--direct_num_workers=1", f"--input={warc}",
            f"--output={out_dir}", f"--extractor={extractor}", f"--config={config}"]


def kept_of(stats: dict):
    """Documents written, from the job's stats.json (its layout is the job's; look for the write stage)."""
    stages = stats.get("stages", stats)
    if isinstance(stages, dict) and "write" in stages:
        return stages["write"].get("docs_out")
    return stats.get("documents_written")


def remeasure_extraction(corpus: Path, subset_n: int, *, reps: int) -> int:
    pages = read_pages(corpus)
    rates, _ = extraction_rates(pages, pages[:subset_n], recipe_for(DEFAULT_RECIPE, None), reps=reps, with_texts=False)
    path = OUT / "stages.json"
    report = json.loads(path.read_text()) if path.exists() else {"machine": machine(), "stages": {}}
    report.setdefault("stages", {}).update(rates)
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps(rates, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=OUT / "corpus.warc.gz", help="the bench WARC")
    parser.add_argument("--subset-input", type=Path, default=OUT / "subset.warc.gz",
                        help="the first pages of the same corpus, for the slow extractors end to end")
    parser.add_argument("--subset", type=int, default=489, help="pages for the slow stages (3 copies of 163 sources)")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions per figure (median reported)")
    parser.add_argument("--skip-stages", action="store_true", help="only the end-to-end part")
    parser.add_argument("--skip-e2e", action="store_true", help="only the per-stage rates")
    parser.add_argument("--full", action="store_true", help="end to end on the whole corpus for every extractor")
    parser.add_argument("--extract-only", action="store_true",
                        help="re-measure only the extraction rates, updating bench/out/stages.json")
    args = parser.parse_args(argv)
    pin_one_core()
    if args.extract_only:
        return remeasure_extraction(args.input, args.subset, reps=args.repeats)
    report = {"machine": machine(), "reps": args.repeats, "subset": args.subset}
    if not args.skip_stages:
        report["stages"] = stage_rates(args.input, args.subset, reps=args.repeats)
        print(json.dumps(report["stages"], indent=1), file=sys.stderr)
    if args.skip_e2e:
        return write_report(report)
    report["end_to_end"] = {"resiliparse": beam_vs_loop(args.input, "resiliparse", config=DEFAULT_RECIPE, reps=args.repeats)}
    for name in ("justext", "trafilatura"):
        warc = args.input if args.full else args.subset_input
        report["end_to_end"][name] = beam_vs_loop(warc, name, config=DEFAULT_RECIPE, reps=args.repeats)
    return write_report(report)


def write_report(report: dict) -> int:
    """bench/out/stages.json; sections measured in an earlier run (the other --skip-* half) are kept."""
    path = OUT / "stages.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**old, **report}, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
