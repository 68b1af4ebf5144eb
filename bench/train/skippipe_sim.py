"""SkipPipe vs the full pipeline: simulated iteration time on geo-distributed latency matrices (no training).

For each node count and seed: a clustered latency matrix
(training.parallel.skippipe_problem.heterogeneous_latency: 4 sites,
0.05-0.4 s per activation message inside a site, 1-8 s between sites, after SkipPipe's geo table), nodes assigned to
stages by swap local search, then three plans on the same nodes with the same planner and constraints (memory cap 3
microbatches per node, as create_schedule.py; TC2 load cap; jumps of at most 4 stages):
- full pipeline: every microbatch visits every stage in order (collision-aware, the strong baseline);
- DT-FM: fixed pipelines, replica r of each stage forms pipeline r (the paper's baseline), timed only;
- SkipPipe: K = S - round(skip S) stages per microbatch, in order or with one adjacent swap allowed.
Compute: forward 1 s, backward 2 s per stage visit on every node, so a cross-site hop costs 1-8 forwards, as in the
paper's geo setting (0.055 s per sample-layer x 4 layers x 8 samples = 1.8 s forward; 1.5-13 s between continents).
Reductions are per seed, then the median (and the best seed) over seeds.

python -m bench.train.skippipe_sim                      # 8, 12, 20 nodes x 10 seeds, about 1 minute
python -m bench.train.skippipe_sim --nodes 20 --microbatches 12 --seeds 5
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench.common import save_report
from training.parallel.skippipe import fixed_pipeline_paths, plan
from training.parallel.skippipe_check import validate
from training.parallel.skippipe_problem import assign_stages, heterogeneous_latency, make_problem

LAYOUTS = {8: [2, 2, 2, 2], 12: [2] * 6, 20: [5, 3, 3, 3, 3, 3]}  # 20 nodes: the paper's partition sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[8, 12, 20], choices=sorted(LAYOUTS))
    parser.add_argument("--seeds", type=int, default=10, help="latency matrices per node count")
    parser.add_argument("--skips", type=float, nargs="+", default=[0.25, 0.33, 0.5])
    parser.add_argument("--microbatches", type=int, default=6, help="per iteration (the paper's default 6)")
    parser.add_argument("--forward-s", type=float, default=1.0, help="one microbatch through one stage")
    parser.add_argument("--backward-s", type=float, default=2.0)
    parser.add_argument("--memory-cap", type=int, default=3, help="live microbatches per node (create_schedule.py)")
    parser.add_argument("--lns-iters", type=int, default=30, help="destroy-and-replan rounds per plan")
    return parser.parse_args(argv)


def simulate(n: int, seed: int, args: argparse.Namespace) -> dict:
    """Makespans of the full pipeline, DT-FM and SkipPipe (in order / reordered) on one latency matrix."""
    lat = heterogeneous_latency(n, seed=seed)
    common = dict(latency_s=lat, stages=assign_stages(lat, LAYOUTS[n], seed=seed), n_microbatches=args.microbatches,
                  forward_s=args.forward_s, backward_s=args.backward_s, memory_cap=args.memory_cap)
    full = make_problem(**common)
    out = {"full": plan(full, seed=seed, lns_iters=args.lns_iters).makespan_s,
           "dtfm": plan(full, paths=fixed_pipeline_paths(full)).makespan_s}
    for skip in args.skips:
        for reorder in (False, True):
            problem = make_problem(**common, skip=skip, reorder=reorder)
            schedule = plan(problem, seed=seed, lns_iters=args.lns_iters)
            if errors := validate(schedule, problem):
                raise AssertionError(f"n={n} seed={seed} skip={skip}: {errors[:3]}")
            out[f"{skip}/{'reorder' if reorder else 'order'}"] = schedule.makespan_s
            out[f"{skip}/K"] = problem.path_len
    return out


def table(rows: list[dict]) -> str:
    head = ("| nodes | S (sizes) | M | skip | K | full pipeline s | DT-FM s | SkipPipe in order s | reduction "
            "| SkipPipe reordered s | reduction | best seed |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['nodes']} | {len(r['sizes'])} {r['sizes']} | {r['microbatches']} | {r['skip']} | {r['K']} "
                     f"| {r['full_s']:.1f} | {r['dtfm_s']:.1f} | {r['order_s']:.1f} | {r['order_cut_pct']:.0f}% "
                     f"| {r['reorder_s']:.1f} | {r['reorder_cut_pct']:.0f}% | {r['best_cut_pct']:.0f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows, started = [], time.perf_counter()
    for n in args.nodes:
        runs = [simulate(n, seed, args) for seed in range(args.seeds)]
        med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
        cut = lambda r, key: 100 * (1 - r[key] / r["full"])  # noqa: E731
        for skip in args.skips:
            rows.append({"nodes": n, "sizes": LAYOUTS[n], "microbatches": args.microbatches, "skip": skip,
                         "K": runs[0][f"{skip}/K"], "full_s": med("full"), "dtfm_s": med("dtfm"),
                         "order_s": med(f"{skip}/order"), "reorder_s": med(f"{skip}/reorder"),
                         "order_cut_pct": statistics.median(cut(r, f"{skip}/order") for r in runs),
                         "reorder_cut_pct": statistics.median(cut(r, f"{skip}/reorder") for r in runs),
                         "best_cut_pct": max(cut(r, f"{skip}/{mode}") for r in runs for mode in ("order", "reorder"))})
    print(table(rows))
    print()
    return save_report("skippipe_sim", {"args": vars(args), "rows": rows,
                                        "wall_s": round(time.perf_counter() - started, 1)})


if __name__ == "__main__":
    sys.exit(main())
