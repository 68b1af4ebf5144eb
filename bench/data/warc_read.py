"""WARC reading speed in every compression layout, this tree against a reference commit, alternated in one run.

The reader gained a loss-free gzip stream (issue 14: a cut whole-file .warc.gz kept 0 of its 10 complete
records); this measures what that costs. One corpus (bench/data/corpus.py) is written three ways: Common Crawl's
one gzip member per record, one gzip stream for the whole file, and plain. Each (tree, layout) pass is a fresh
process pinned to one core that reads every record with `transforms.io.warc.read_records`; the reference
tree is a `git worktree` of --ref. Figures: median pages/s and MB/s of the file over --repeats alternated passes,
and the ratio this tree / reference.

python -m bench.data.warc_read --pages 2000 --repeats 5 --ref b10cefc
"""
from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import CORE, OUT, PY, REPO, machine, one_core_env

LAYOUTS = ("per_record_gzip", "whole_gzip", "plain")
CHILD = """
import sys, time
from transforms.io.warc import read_records
from transforms.document import Page
path = sys.argv[1]
start = time.perf_counter()
with open(path, "rb") as fh:
    pages = sum(isinstance(item, Page) for _, item in read_records(fh, source=path))
print(pages, time.perf_counter() - start)
"""


def build_layouts(corpus: Path, folder: Path) -> dict[str, Path]:
    """The corpus as written by bench/data/corpus.py (per-record gzip), as one gzip stream, and plain."""
    raw = gzip.decompress(corpus.read_bytes())  # every member, concatenated
    plain, whole = folder / "corpus.warc", folder / "corpus.whole.warc.gz"
    plain.write_bytes(raw)
    whole.write_bytes(gzip.compress(raw, compresslevel=6, mtime=0))
    return {"per_record_gzip": corpus, "whole_gzip": whole, "plain": plain}


def read_once(tree: Path, path: Path) -> tuple[int, float]:
    """(pages, seconds) of one pinned child process importing the reader from `tree`."""
    env = one_core_env()
    env["PYTHONPATH"] = str(tree)
    out = subprocess.run(["taskset", "-c", str(CORE), PY, "-c", CHILD, str(path)], cwd=tree, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=2000, help="pages in the corpus (bench/data/corpus.py)")
    parser.add_argument("--repeats", type=int, default=5, help="alternated passes per (tree, layout); medians reported")
    parser.add_argument("--ref", default="b10cefc", help="reference commit (the reader before issue 14)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    corpus = OUT / f"read-corpus-{args.pages}.warc.gz"
    if not corpus.exists():
        subprocess.run([PY, "-m", "bench.data.corpus", "--pages", str(args.pages), "--out", str(corpus)], cwd=REPO,
                       check=True)
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "ref"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(ref), args.ref], check=True,
                       capture_output=True)
        try:
            paths = build_layouts(corpus, Path(tmp))
            trees = {"this": REPO, "ref": ref}
            times: dict[tuple[str, str], list[float]] = {}
            pages: dict[tuple[str, str], int] = {}
            for _ in range(args.repeats):
                for layout, path in paths.items():
                    for name, tree in trees.items():
                        n, seconds = read_once(tree, path)
                        pages[name, layout] = n
                        times.setdefault((name, layout), []).append(seconds)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(ref)], check=False)
        sizes = {layout: path.stat().st_size for layout, path in paths.items()}
    rows = []
    for layout in LAYOUTS:
        this, before = (statistics.median(times[name, layout]) for name in ("this", "ref"))
        rows.append({"layout": layout, "mb": round(sizes[layout] / 1e6, 1), "pages_this": pages["this", layout],
                     "pages_ref": pages["ref", layout],
                     "pages_per_s_this": round(pages["this", layout] / this), "pages_per_s_ref":
                     round(pages["ref", layout] / before), "mb_per_s_this": round(sizes[layout] / 1e6 / this, 1),
                     "mb_per_s_ref": round(sizes[layout] / 1e6 / before, 1), "speed_ratio": round(before / this, 3)})
    result = {"machine": machine(), "ref": args.ref, "reps": args.repeats, "rows": rows}
    (OUT / "warc_read.json").write_text(json.dumps(result, indent=2))
    print(f"{'layout':<16} {'MB':>6} {'pages':>6} {'pages/s this':>13} {'ref':>7} {'MB/s this':>10} {'ref':>6} "
          f"{'this/ref':>8}")
    for r in rows:
        print(f"{r['layout']:<16} {r['mb']:>6} {r['pages_this']:>6} {r['pages_per_s_this']:>13,} "
              f"{r['pages_per_s_ref']:>7,} {r['mb_per_s_this']:>10} {r['mb_per_s_ref']:>6} {r['speed_ratio']:>8}")


if __name__ == "__main__":
    main()
