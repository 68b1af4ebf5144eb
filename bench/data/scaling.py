"""Beyond one machine (BENCHMARKS.md §16): werp on 1 and 2 local worker processes and a 2-worker Dask LocalCluster,
per-core docs/s, worker memory and shuffle bytes per recipe, and the Common Crawl arithmetic built on them.

Parts (each merges its results into bench/out/scaling.json, so they can be run apart):
  scaling  the default recipe per runner config, alternated --repeats times; medians, speed-up from the alternated
           pairs, peak RSS per process role, and the CPU the rest of the machine used meanwhile
  rates    each recipe on one in-process worker pinned to one core (BENCH_CORE), alternated: docs/s per core
  memory   each recipe once on 2 local worker processes: peak RSS per worker
  growth   the default recipe on 2 local worker processes at 1x and 10x the corpus (bench/out/corpus_x10.warc.gz,
           built on first use): does a worker's peak RSS grow with the input?
  shuffle  each recipe in process with paragraph n-grams through the shuffle (a cluster's setting): bytes into
           every GroupByKey (bench/data/gbk_bytes.py)
  paper    the crawl of CRAWL through the measured figures (no runs)

.venv/bin/python -m bench.data.scaling --input bench/out/corpus.warc.gz --repeats 3            # every part (~30 min)
.venv/bin/python -m bench.data.scaling --parts scaling --configs direct1 direct2 dask2 --repeats 5
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import CORE, OUT, PY, REPO, machine, one_core_env
from bench.common import run_tree
from transforms.dedup.config import DedupConfig

CONFIGS = {  # runner flags; the worker counts are explicit so the figures do not depend on the machine's cores
    "direct1": ("--runner=DirectRunner", "--direct_num_workers=1"),
    "direct2": ("--runner=DirectRunner", "--direct_num_workers=2"),
    "dask2": ("--runner=DaskRunner", "--dask_workers=2"),
}
WORKERS = {"direct1": 1, "direct2": 2, "dask2": 2}
RECIPES = ("bluwerp", "fineweb", "dclm")
# CC-MAIN-2019-09, the February 2019 main crawl, as Common Crawl published it (commoncrawl.org/2019/03/
# february-2019-crawl-archive-now-available/): 2.9 billion pages, 225 TiB uncompressed, 64,000 WARC files
# holding 59.86 TiB compressed, in 100 segments.
CRAWL = {"name": "CC-MAIN-2019-09", "pages": 2.9e9, "warc_files": 64_000, "compressed_tib": 59.86,
         "uncompressed_tib": 225.0, "cores": 1000}
RESULTS = OUT / "scaling.json"
BUCKETS = 1 << DedupConfig().bucket_bits  # paragraph dedup's GroupByBucket keys (dedup.bucket_bits)


def werp_cmd(warc: Path, out: Path, *, flags: tuple[str, ...], recipe: str) -> list[str]:
    return [PY, "-m", "pipelines.werp", *flags, f"--input={warc}", f"--output={out}", f"--config={recipe}"]


def counts(out: Path) -> dict:
    """stats.json without its wall time: what must not change with the runner."""
    report = json.loads((out / "stats.json").read_text())
    report.pop("wall_time_s", None)
    return report


def one_run(warc: Path, *, flags: tuple[str, ...], recipe: str, pinned: bool = False) -> dict:
    """One werp process (pinned to CORE when asked), sampled; its counts are returned beside the timings."""
    out = Path(tempfile.mkdtemp(prefix="scaling_"))
    try:
        cmd = werp_cmd(warc, out / "o", flags=flags, recipe=recipe)
        env = one_core_env()
        if pinned:
            cmd = ["taskset", "-c", str(CORE), *cmd]
        res = run_tree(cmd, cwd=REPO, env=env, log=out / "log.txt")
        res["counts"] = counts(out / "o")
        return res
    finally:
        shutil.rmtree(out, ignore_errors=True)


def pages_of(res: dict) -> int:
    return res["counts"]["stages"]["read"]["docs_out"]


def scaling(warc: Path, *, configs: list[str], reps: int, recipe: str) -> dict:
    """Every config once per repetition, in turn, so load on the shared machine hits them alike."""
    runs: dict[str, list[dict]] = {c: [] for c in configs}
    for rep in range(reps):
        for config in configs:
            res = one_run(warc, flags=CONFIGS[config], recipe=recipe)
            runs[config].append(res)
            print(f"rep {rep} {config}: {res['wall_s']} s, others {res['others_cores']} cores", file=sys.stderr)
    base = configs[0]
    out = {"recipe": recipe, "base": base, "configs": {}}
    for config in configs:
        walls = [r["wall_s"] for r in runs[config]]
        ratios = [b["wall_s"] / r["wall_s"] for b, r in zip(runs[base], runs[config])]
        pages = pages_of(runs[config][0])
        speedup = statistics.median(ratios)
        out["configs"][config] = {
            "flags": list(CONFIGS[config]), "workers": WORKERS[config], "walls_s": walls,
            "median_wall_s": statistics.median(walls), "docs_per_s": round(pages / statistics.median(walls), 1),
            "speedup_vs_base": round(speedup, 3), "efficiency": round(speedup / WORKERS[config] * WORKERS[base], 3),
            "roles": median_roles([r["roles"] for r in runs[config]]),
            "others_cores": [r["others_cores"] for r in runs[config]],
            "loadavg_1m": [r["loadavg_1m"] for r in runs[config]],
            "same_counts_as_base": all(r["counts"] == runs[base][0]["counts"] for r in runs[config]),
            "written": runs[config][0]["counts"]["stages"]["write"]["docs_out"], "pages": pages}
    return out


def median_roles(samples: list[dict]) -> dict:
    """Per role, the median over runs of the largest process's peak RSS (and how many processes had the role)."""
    roles = sorted({role for s in samples for role in s})
    return {role: {"max_peak_rss_mib": statistics.median(s[role]["max_peak_rss_mib"] for s in samples if role in s),
                   "cpu_s": statistics.median(s[role]["cpu_s"] for s in samples if role in s),
                   "processes": max(s[role]["processes"] for s in samples if role in s)} for role in roles}


def rates(warc: Path, *, recipes: list[str], reps: int) -> dict:
    """Docs/s per core of each recipe: one in-process worker pinned to CORE, recipes alternated."""
    runs: dict[str, list[dict]] = {r: [] for r in recipes}
    for rep in range(reps):
        for recipe in recipes:
            runs[recipe].append(one_run(warc, flags=CONFIGS["direct1"], recipe=recipe, pinned=True))
            print(f"rep {rep} {recipe}: {runs[recipe][-1]['wall_s']} s", file=sys.stderr)
    out = {}
    for recipe, rs in runs.items():
        pages, wall, cpu = pages_of(rs[0]), statistics.median(r["wall_s"] for r in rs), statistics.median(
            r["cpu_s"] for r in rs)
        out[recipe] = {"walls_s": [r["wall_s"] for r in rs], "docs_per_s": round(pages / wall, 1),
                       "docs_per_cpu_s": round(pages / cpu, 1), "pages": pages,
                       "into_dedup": dedup_input(rs[0]["counts"]), "written": rs[0]["counts"]["stages"]["write"]["docs_out"],
                       "peak_rss_mib": statistics.median(r["roles"]["runner"]["max_peak_rss_mib"] for r in rs),
                       "others_cores": [r["others_cores"] for r in rs]}
    return out


def dedup_input(report: dict) -> int | None:
    """Documents entering the first dedup stage (the stages are in pipeline order)."""
    return next((s["docs_in"] for name, s in report["stages"].items() if name.startswith("dedup")), None)


def memory(warc: Path, *, recipes: list[str]) -> dict:
    """Peak RSS per process role of each recipe on 2 local worker processes."""
    return {recipe: one_run(warc, flags=CONFIGS["direct2"], recipe=recipe)["roles"] for recipe in recipes}


def growth(warc: Path, big: Path) -> dict:
    """Peak RSS per process role of the default recipe on 2 local workers, at 1x and at 10x the input."""
    if not big.exists():
        subprocess.run([PY, "-m", "bench.data.corpus", "--pages", "2000", "--scale", "10", "--out", str(big)], cwd=REPO,
                       check=True)
    out = {}
    for name, path in (("1x", warc), ("10x", big)):
        res = one_run(path, flags=CONFIGS["direct2"], recipe="bluwerp")
        out[name] = {"input_bytes": path.stat().st_size, "pages": pages_of(res), "wall_s": res["wall_s"],
                     "roles": res["roles"]}
    return out


def shuffle(warc: Path, *, recipes: list[str]) -> dict:
    """Bytes into every GroupByKey per recipe, n-grams through the shuffle, in a pinned child process."""
    out = {}
    for recipe in recipes:
        tmp = Path(tempfile.mkdtemp(prefix="shuffle_"))
        try:
            text = (REPO / "configs" / "werp" / f"{recipe}.yaml").read_text()
            text = re.sub(r"^dedup:.*$", lambda m: f"{m.group(0)}\n  ngram_exchange: shuffle", text, count=1, flags=re.M)
            (tmp / "r.yaml").write_text(text)
            cmd = ["taskset", "-c", str(CORE), PY, "-m", "bench.data.scaling", "--shuffle-child",
                   f"--input={warc}", f"--output={tmp / 'o'}", f"--config={tmp / 'r.yaml'}"]
            run_tree(cmd, cwd=REPO, env=one_core_env(), log=tmp / "log.txt")
            totals = json.loads((tmp / "gbk.json").read_text())
            report = counts(tmp / "o")
            pages, into = report["stages"]["read"]["docs_out"], dedup_input(report)
            out[recipe] = {"pages": pages, "into_dedup": into, "gbk_bytes": totals,
                           "bytes_per_page": round(sum(totals.values()) / pages, 1),
                           "bytes_per_dedup_doc": round(sum(totals.values()) / into, 1) if into else None}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def shuffle_child(argv: list[str]) -> None:
    """Run werp in this process with every GroupByKey's input counted; write the totals beside the output."""
    from bench.data import gbk_bytes
    from pipelines import werp

    totals = gbk_bytes.install()
    werp.run(["--runner=FnApiRunner", *argv])
    output = Path(next(a.split("=", 1)[1] for a in argv if a.startswith("--output=")))
    (output.parent / "gbk.json").write_text(json.dumps(dict(totals), indent=1))


def paper(report: dict) -> dict:
    """CRAWL through the measured per-core rates, shuffle bytes per page and worker memory, per recipe."""
    out = {}
    for recipe in RECIPES:
        rate = report.get("rates", {}).get(recipe)
        if rate is None:
            continue
        core_h = CRAWL["pages"] / rate["docs_per_cpu_s"] / 3600
        shuffle_row = report.get("shuffle", {}).get(recipe, {})
        roles = report.get("memory", {}).get(recipe, {})
        bucket_bytes = sum(b for name, b in shuffle_row.get("gbk_bytes", {}).items() if "GroupByBucket" in name)
        out[recipe] = {
            "core_hours": round(core_h), "wall_h_on_cores": round(core_h / CRAWL["cores"], 1),
            "shuffle_tib": round(shuffle_row.get("bytes_per_page", 0) * CRAWL["pages"] / 2**40, 1),
            "paragraph_bucket_gib": round(bucket_bytes / shuffle_row["pages"] * CRAWL["pages"] / BUCKETS / 2**30, 1)
            if bucket_bytes else None,
            "worker_peak_rss_mib": roles.get("beam_worker", {}).get("max_peak_rss_mib"),
            "sandbox_peak_rss_mib": roles.get("sandbox", {}).get("max_peak_rss_mib"),
            "read_gb_per_s": round(CRAWL["compressed_tib"] * 2**40 / (core_h / CRAWL["cores"] * 3600) / 1e9, 2)}
    return {"crawl": CRAWL, "recipes": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--input", type=Path, default=OUT / "corpus.warc.gz", help="the bench WARC (bench/data/corpus.py)")
    parser.add_argument("--parts", nargs="+", default=["scaling", "rates", "memory", "growth", "shuffle", "paper"],
                        choices=["scaling", "rates", "memory", "growth", "shuffle", "paper"])
    parser.add_argument("--growth-input", type=Path, default=OUT / "corpus_x10.warc.gz",
                        help="10x the corpus for the growth part (bench/data/corpus.py --scale 10)")
    parser.add_argument("--configs", nargs="+", default=["direct1", "direct2", "dask2"], choices=list(CONFIGS),
                        help="runner configs of the scaling part; the first is the base of the speed-ups")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--repeats", type=int, default=3, help="alternated repetitions (medians reported)")
    parser.add_argument("--shuffle-child", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.shuffle_child:
        shuffle_child([f"--input={args.input}", *rest])
        return 0
    report = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    report["machine"] = machine()
    warc = args.input.resolve()
    if "scaling" in args.parts:
        report["scaling"] = scaling(warc, configs=args.configs, reps=args.repeats, recipe="bluwerp")
    if "rates" in args.parts:
        report["rates"] = rates(warc, recipes=args.recipes, reps=args.repeats)
    if "memory" in args.parts:
        report["memory"] = memory(warc, recipes=args.recipes)
    if "growth" in args.parts:
        report["growth"] = growth(warc, args.growth_input.resolve())
    if "shuffle" in args.parts:
        report["shuffle"] = shuffle(warc, recipes=args.recipes)
    if "paper" in args.parts:
        report["paper"] = paper(report)
    OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
