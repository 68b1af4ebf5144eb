"""Peak memory of the werp job at 1x and 10x the bench corpus: it must stay roughly flat, not grow with input.

Each run is a whole process under `taskset -c 0`. Reported: ru_maxrss from wait4 (the largest single
process of the tree, exact) and the summed RSS of the whole tree (sampled every 0.2 s; counts pages
shared by forked workers twice, so it is an upper bound). Extractor: resiliparse, so the 10x run takes
minutes rather than an hour; memory is held by the runner and the shuffle, not by the extractor.

python -m bench.data.memory --pages 2000 --scales 1 10
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import OUT, PY, REPO, machine, run_pinned, save_report
from bench.data.stages import kept_of, werp_cmd


def corpus_at(pages: int, scale: int) -> Path:
    """bench/out/corpus_x<scale>.warc.gz, built by bench/data/corpus.py unless already there."""
    path = OUT / f"corpus_x{scale}.warc.gz"
    if not path.exists():
        subprocess.run([PY, "-m", "bench.data.corpus", "--pages", str(pages), "--scale", str(scale), "--out", str(path)],
                       cwd=REPO, check=True)
    return path


def measure(warc: Path, *, extractor: str, config: str, scale: int) -> dict:
    out_dir = Path(tempfile.mkdtemp(prefix="werp_mem_"))
    try:
        res = run_pinned(werp_cmd(warc, out_dir, extractor=extractor, config=config), log=OUT / f"memory.x{scale}.log")
        written = kept_of(json.loads((out_dir / "stats.json").read_text()))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return {"input": str(warc), "input_mib": round(warc.stat().st_size / 2**20, 1), "wall_s": round(res["wall_s"], 1),
            "maxrss_mib": round(res["maxrss_mib"], 1), "tree_rss_peak_mib": round(res["tree_rss_mib"], 1),
            "written": written}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000, help="pages at scale 1")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10], help="corpus multipliers to run")
    parser.add_argument("--extractor", default="resiliparse", choices=("justext", "trafilatura", "resiliparse"))
    parser.add_argument("--config", default="bluwerp", help="recipe")
    args = parser.parse_args(argv)
    report = {"machine": machine(), "extractor": args.extractor, "config": args.config, "runs": {}}
    for scale in args.scales:
        report["runs"][f"x{scale}"] = measure(corpus_at(args.pages, scale), extractor=args.extractor,
                                             config=args.config, scale=scale)
        print(json.dumps(report["runs"][f"x{scale}"]), file=sys.stderr)
    runs = list(report["runs"].values())
    if len(runs) > 1:
        report["maxrss_growth"] = round(runs[-1]["maxrss_mib"] / runs[0]["maxrss_mib"], 2)
    return save_report("memory", report)


if __name__ == "__main__":
    sys.exit(main())
