"""SwallowCode stages 1-2 at speed: our pylint pool vs one `pylint` subprocess per file, on stdlib files.

    .venv/bin/python -m bench.data.pylint_speed --files 200
    BENCH_CORE=0 .venv/bin/python -m bench.data.pylint_speed --files 200 --skip-stdlib   # ~8 min, no stdlib pass

Sample: --files .py files of 1-12 KB from this interpreter's standard library, sorted by path, evenly spaced
(a fixed choice). Baseline: SwallowCode's filtering.py way, each file its own `python -m pylint --persistent=n
--disable=...` process, pinned to one core. Ours: transforms.code.lint_pool.LintPool, once with 1 worker pinned
to the same core (the per-core figure) and once with 2 workers on both cores. Scores must be identical.
Then the whole standard library (every .py file under os.__file__'s folder but site-packages) through
compile() and the 2-worker pool: the fraction each stage keeps, next to SwallowCode's (data-seeds 2.1).
--skip-stdlib leaves that pass out and saves bench/out/pylint_speed_<files>.json, keeping pylint_speed.json's
whole-stdlib figures.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, pin_one_core, save_report
from transforms.code.lint import PYLINT_OPTIONS, LintConfig, comment_penalty, final_score
from transforms.code.lint_pool import LintPool
from transforms.code.syntax import check_syntax, decode_source

RATED = re.compile(r"rated at (-?[\d.]+)/10")
STDLIB = Path(os.path.dirname(os.__file__))
SWALLOWCODE_REMOVED = {"syntax": 0.097, "pylint": 0.343}  # 41M -> 37M -> 24.1M (data-seeds 2.1)


def stdlib_paths() -> list[Path]:
    return sorted(p for p in STDLIB.rglob("*.py") if "site-packages" not in p.parts)


def sample(n: int) -> list[Path]:
    """n files of 1-12 KB, evenly spaced over the sorted list."""
    pool = [p for p in stdlib_paths() if 1000 <= p.stat().st_size <= 12000]
    step = len(pool) / n
    return [pool[int(i * step)] for i in range(n)]


def subprocess_scores(codes: list[str]) -> tuple[list[float | None], float]:
    """One pylint process per snippet, written to a fresh temp file (SwallowCode's check_code_quality)."""
    scores, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for i, code in enumerate(codes):
            path = Path(scratch, f"tmp{i}.py")
            path.write_text(code, encoding="utf-8")
            out = subprocess.run([sys.executable, "-m", "pylint", *PYLINT_OPTIONS, str(path)], cwd=scratch,
                                 capture_output=True, text=True).stdout
            found = RATED.findall(out)
            scores.append(float(found[-1]) if found else None)
    return scores, time.perf_counter() - start


def pool_scores(codes: list[str], *, workers: int) -> tuple[list[float | None], float]:
    """Wall seconds from the pool's creation to its close, worker start-up and shutdown included."""
    start = time.perf_counter()
    with LintPool(LintConfig(workers=workers, timeout_s=120)) as pool:
        scores = [r.score for r in pool.lint_many(codes)]
    return scores, time.perf_counter() - start


def retained(paths: list[Path]) -> dict:
    """Stage 1 and stage 2 keep-fractions over `paths`, SwallowCode's rules (final score >= 7.0)."""
    texts = [text for p in paths if (text := decode_source(p.read_bytes())[0]) is not None]
    start = time.perf_counter()
    compiled = [t for t in texts if check_syntax(t).ok]
    syntax_s = time.perf_counter() - start
    start = time.perf_counter()
    with LintPool(LintConfig(workers=2, timeout_s=120)) as pool:
        results = pool.lint_many(compiled)
        restarts = dict(pool.restarts)
    lint_s = time.perf_counter() - start
    finals = [final_score(r.score, comment_penalty(t)) for r, t in zip(results, compiled)]
    kept = sum(s is not None and s >= 7.0 for s in finals)
    return {"files": len(paths), "utf8": len(texts), "syntax_ok": len(compiled), "pylint_kept": kept,
            "syntax_removed": 1 - len(compiled) / len(texts), "pylint_removed": 1 - kept / len(compiled),
            "no_score": sum(r.score is None for r in results), "reasons": _count(r.reason for r in results),
            "restarts": restarts, "syntax_files_per_s_1core_unpinned": len(texts) / syntax_s,
            "pool_2workers_s": lint_s, "swallowcode_removed": SWALLOWCODE_REMOVED}


def _count(items) -> dict:
    out: dict = {}
    for item in items:
        out[str(item)] = out.get(str(item), 0) + 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="sample size for the side-by-side timing")
    parser.add_argument("--skip-stdlib", "--skip-whole-stdlib", dest="skip_stdlib", action="store_true",
                        help="only the side-by-side timing, saved as pylint_speed_<files>")
    args = parser.parse_args(argv)
    codes = [p.read_text(encoding="utf-8") for p in sample(args.files)]
    report = {"machine": machine(), "command": " ".join([".venv/bin/python", *sys.argv]), "files": len(codes),
              "lines": sum(c.count("\n") for c in codes)}
    two, two_s = pool_scores(codes, workers=2)
    if not args.skip_stdlib:
        report["whole_stdlib"] = retained(stdlib_paths())
    pin_one_core()
    start = time.perf_counter()
    ok = sum(check_syntax(c).ok for c in codes)
    report["syntax_files_per_s_1core"] = len(codes) / (time.perf_counter() - start)
    one, one_s = pool_scores(codes, workers=1)
    ref, ref_s = subprocess_scores(codes)
    mismatches = [(i, a, b) for i, (a, b) in enumerate(zip(one, ref)) if a != b]
    mismatches += [(i, a, b) for i, (a, b) in enumerate(zip(two, ref)) if a != b]
    report.update({
        "syntax_ok": ok, "scores_identical": not mismatches, "mismatches": mismatches[:20],
        "subprocess_files_per_s_1core": len(codes) / ref_s,
        "pool_files_per_s_1core": len(codes) / one_s,
        "pool_files_per_s_2cores": len(codes) / two_s,
        "pool_files_per_s_per_core_2cores": len(codes) / two_s / 2,
        "speedup_per_core": ref_s / one_s,
    })
    save_report(f"pylint_speed_{args.files}" if args.skip_stdlib else "pylint_speed", report)
    print(f"command: {report['command']}")
    if mismatches:
        raise SystemExit(f"{len(mismatches)} scores differ from the pylint CLI: {mismatches[:5]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
