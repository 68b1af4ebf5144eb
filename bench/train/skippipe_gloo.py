"""SkipPipe vs the full pipeline, measured: real stage modules on gloo ranks with injected link latencies.

torchrun starts N ranks (nodes) on this machine; each message is held back by its link's latency from a
geo-distributed-like matrix (`heterogeneous_latency`, 4 sites), scaled so a link costs about what SkipPipe's
geo setting does relative to one stage's compute (there: ~1.8 s forward, 1.5–13 s between continents). The
planner gets the measured forward/backward time of one stage. Each iteration runs the SkipPipe plan (skip
fraction as given) and the full-pipeline plan (every stage, same nodes, same planner) alternately; we report
the median iteration wall time of each and the planner's makespans.

python -m bench.train.skippipe_gloo                       # 6 nodes, 3 stages, skip 0.33, 6 microbatches
python -m bench.train.skippipe_gloo --nodes 8 --stages 4 --skip 0.25 --iters 8
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time



def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=6, help="ranks, one node each")
    parser.add_argument("--stages", type=int, default=3, help="pipeline stages; nodes are dealt to them evenly")
    parser.add_argument("--skip", type=float, default=0.33, help="fraction of stages each microbatch skips")
    parser.add_argument("--microbatches", type=int, default=6)
    parser.add_argument("--iters", type=int, default=6, help="measured iterations per plan (after one warm-up)")
    parser.add_argument("--latency-scale", type=float, default=None,
                        help="seconds per unit of the latency matrix (default: one stage forward / 1.8, so a unit "
                             "link is SkipPipe's geo ratio)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    import torch.distributed as dist

    from training.model import Llama, ModelConfig
    from training.parallel.partition import balanced_layout
    from training.parallel.skippipe import plan
    from training.parallel.skippipe_problem import full_pipeline, heterogeneous_latency, make_problem
    from training.parallel.skippipe_runtime import SkipPipeNode, microbatch_split, node_module
    from training.trainers.skippipe import stage_nodes

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    cfg = ModelConfig(vocab_size=512, dim=64, n_layers=2 * args.stages, n_heads=4, ffn_dim=128, max_seq_len=64)
    layout = balanced_layout(cfg, args.stages, seq_len=64)
    stages = stage_nodes(world, args.stages)
    my_stage = next(s for s, nodes in enumerate(stages) if rank in nodes)
    torch.manual_seed(0)
    full = Llama(cfg)
    module = node_module(full, layout, my_stage)
    # one stage's forward and backward on one microbatch, measured on rank 0 and shared
    x = torch.randn(2, 64, 64, requires_grad=True)
    rope = full.rope_for(64)
    layer_list = [full.layers[str(i)] for i in (0, 1)]
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        h = x
        for layer in layer_list:
            h = layer(h, rope)
        t1 = time.perf_counter()
        h.sum().backward()
        times.append((t1 - t0, time.perf_counter() - t1))
    fwd, bwd = statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)
    box = [fwd, bwd]
    dist.broadcast_object_list(box, src=0)
    fwd, bwd = box
    scale = args.latency_scale or fwd / 1.8
    latency = heterogeneous_latency(world, seed=args.seed) * scale
    problem = make_problem(latency_s=latency, stages=stages, n_microbatches=args.microbatches, skip=args.skip,
                           forward_s=fwd, backward_s=bwd)
    plans = {"skippipe": plan(problem, seed=args.seed), "full": plan(full_pipeline(problem), seed=args.seed)}
    groups = [dist.new_group(nodes) for nodes in stages]
    node = SkipPipeNode(node=rank, stage=my_stage, module=module, schedule=plans["full"], link_latency=latency,
                        stage_group=groups[my_stage], stage0_group=groups[0])
    g = torch.Generator().manual_seed(1)
    batch = torch.randint(0, 512, (2 * args.microbatches, 64), generator=g)
    micro = microbatch_split(batch, batch.roll(-1, 1), args.microbatches)
    tokens = float(batch.numel())
    walls: dict[str, list[float]] = {"skippipe": [], "full": []}
    for it in range(args.iters + 1):
        for name in ("skippipe", "full"):  # alternated, so drift hits both
            node.schedule = plans[name]
            dist.barrier()
            t0 = time.perf_counter()
            node.run(micro, tokens=tokens)
            dist.barrier()
            if it > 0:
                walls[name].append(time.perf_counter() - t0)
            module.zero_grad(set_to_none=True)
    if rank == 0:
        print(json.dumps({
            "nodes": world, "stages": [len(s) for s in stages], "skip": args.skip, "path_len": problem.path_len,
            "microbatches": args.microbatches, "forward_s": fwd, "backward_s": bwd, "latency_scale_s": scale,
            "latency_range_s": [float(latency[latency > 0].min()), float(latency.max())],
            "measured_s": {k: statistics.median(v) for k, v in walls.items()},
            "planned_s": {k: p.makespan_s for k, p in plans.items()},
            "paths": [[s for s, _ in p] for p in plans["skippipe"].paths]}), flush=True)
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    from bench.common import machine, save_report, torchrun_json

    passthrough = [f"--nodes={args.nodes}", f"--stages={args.stages}", f"--skip={args.skip}",
                   f"--microbatches={args.microbatches}", f"--iters={args.iters}", f"--seed={args.seed}"]
    if args.latency_scale:
        passthrough.append(f"--latency-scale={args.latency_scale}")
    result = torchrun_json("bench.train.skippipe_gloo", args.nodes, passthrough)
    m, p = result["measured_s"], result["planned_s"]
    print(f"`python -m bench.train.skippipe_gloo {' '.join(argv if argv is not None else sys.argv[1:])}`: {result['nodes']} "
          f"nodes in stages of {result['stages']}, skip {result['skip']} (K = {result['path_len']}), "
          f"{result['microbatches']} microbatches; one stage: forward {result['forward_s'] * 1e3:.1f} ms, backward "
          f"{result['backward_s'] * 1e3:.1f} ms; links {result['latency_range_s'][0] * 1e3:.1f}–"
          f"{result['latency_range_s'][1] * 1e3:.1f} ms\n")
    print("| plan | measured iteration (median) | planned makespan |")
    print("|---|---:|---:|")
    for name in ("full", "skippipe"):
        print(f"| {name} | {m[name] * 1e3:,.1f} ms | {p[name] * 1e3:,.1f} ms |")
    print(f"\nSkipPipe iteration time: {1 - m['skippipe'] / m['full']:.1%} lower measured, "
          f"{1 - p['skippipe'] / p['full']:.1%} lower planned")
    save_report("skippipe_gloo", {"machine": machine(), "args": vars(args), **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
