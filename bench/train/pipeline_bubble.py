"""Measured pipeline bubble of every schedule on 2 gloo ranks, against the simulator and the closed forms.

Each schedule runs `Pipeline.run` directly under torchrun (no trainer, no loader), one rank per core with one
math thread. After warm-up, the F/B/I/W spans of several steps are recorded and compared with `simulate` on
the same order fed the measured per-stage costs (`costs_from_spans`), at zero latency and at the measured
`hop_latency`. The rest of the idle time is reported apart: gaps between back-to-back calls on a rank that was
not waiting for the other (runtime bookkeeping, send waits, the loss), and one raw gloo send/recv. Steps where
another process shared a core (schedstat) are retried. Medians over steps; the median step of each schedule
is saved as a Chrome trace and a PNG in bench/out/.

python -m bench.train.pipeline_bubble                          # 6 schedules, m=8, ~1.5 min on 2 cores
python -m bench.train.pipeline_bubble --schedules 1f1b --steps 3 --cores 0,0   # a quick functional run on one core
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import OUT, REPO, machine, one_core_env, save_report
from training.parallel.schedules import SCHEDULE_NAMES, SINGLE_STAGE

SCHEDULES = SCHEDULE_NAMES


def parser(description: str) -> argparse.ArgumentParser:
    """Model, batch and launch flags shared with bench/train/pipeline_vs_torch.py."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=SCHEDULES, help="schedules to run")
    p.add_argument("--microbatches", type=int, default=8, help="microbatches per step m")
    p.add_argument("--rows", type=int, default=2, help="sequences per microbatch")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence")
    p.add_argument("--dim", type=int, default=384, help="model width")
    p.add_argument("--layers", type=int, default=8, help="decoder blocks")
    p.add_argument("--heads", type=int, default=6, help="attention heads")
    p.add_argument("--vocab", type=int, default=2048, help="vocabulary (embedding and head rows)")
    p.add_argument("--chunks", type=int, default=2, help="stages per rank v of the multi-stage schedules")
    p.add_argument("--warmup", type=int, default=3, help="unrecorded steps first (shape inference, allocator)")
    p.add_argument("--max-core-wait", type=float, default=0.05,  # a rank's own gloo threads: 1-2% here
                   help="a step counts only if no rank waited longer than this share of it for its core")
    p.add_argument("--cores", default="0,1", help="core of rank 0, rank 1, ... (0,0 oversubscribes: functional only)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # set by the parent: the torchrun side
    return p


def model_config(args: argparse.Namespace):  # noqa: ANN201 - torch is imported by the children only
    from training.model import ModelConfig

    return ModelConfig(vocab_size=args.vocab, dim=args.dim, n_layers=args.layers, n_heads=args.heads,
                       max_seq_len=args.seq_len)


def plan_for(schedule: str, args: argparse.Namespace, world: int):  # noqa: ANN201
    from training.parallel.partition import balanced_layout
    from training.parallel.pipeline import Plan

    per_rank = 1 if schedule in SINGLE_STAGE else args.chunks
    return Plan(schedule=schedule, pp=world, dp=1, stages_per_rank=per_rank, microbatches=args.microbatches,
                layout=balanced_layout(model_config(args), world * per_rank, seq_len=args.seq_len))


def setup_rank(args: argparse.Namespace) -> tuple[int, int]:
    """Pin this rank to its core (before gloo starts its threads), one math thread, join the gloo group."""
    import torch
    import torch.distributed as dist

    cores = [int(c) for c in args.cores.split(",")]
    local = int(os.environ["LOCAL_RANK"])
    os.sched_setaffinity(0, {cores[local % len(cores)]})
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def batch(args: argparse.Namespace):  # noqa: ANN201
    """The step's (inputs, targets) of m x rows sequences; every rank draws the same ones."""
    import torch

    g = torch.Generator().manual_seed(1)
    shape = (args.microbatches * args.rows, args.seq_len)
    return torch.randint(0, args.vocab, shape, generator=g), torch.randint(0, args.vocab, shape, generator=g)


def build(schedule: str, args: argparse.Namespace, rank: int, world: int):  # noqa: ANN201
    """Our Pipeline for `schedule` over the world group, weights from the same seeded model on every rank."""
    import torch
    import torch.distributed as dist

    from training.model import Llama
    from training.parallel.pipeline import build_pipeline

    torch.manual_seed(0)
    full = Llama(model_config(args))
    return build_pipeline(full, plan_for(schedule, args, world), pp_rank=rank, device=torch.device("cpu"),
                          pp_group=dist.group.WORLD)


def runqueue_wait_s() -> float:
    """Seconds the calling thread has waited for its core (linux schedstat): another process on it, or ours."""
    return int(Path("/proc/thread-self/schedstat").read_text(encoding="ascii").split()[1]) / 1e9


def one_way_p2p_s(shape: tuple[int, ...], rank: int, *, rounds: int = 30) -> float:
    """Half a gloo send/recv round trip of one fp32 activation between ranks 0 and 1 (median of rounds)."""
    import torch
    import torch.distributed as dist

    x, times = torch.zeros(shape), []
    for _ in range(rounds + 3):
        dist.barrier()
        start = time.perf_counter()
        for op in {0: (dist.send, dist.recv), 1: (dist.recv, dist.send)}.get(rank, ()):
            op(x, 1 - rank)
        times.append((time.perf_counter() - start) / 2)
    return statistics.median(times[3:])


def record_steps(pipe, args: argparse.Namespace, inputs, targets) -> list[dict]:  # noqa: ANN001
    """Spans of steps after the warm-up until `steps` ran with no rank's core shared (core wait; <= 4x tries)."""
    import torch
    import torch.distributed as dist

    from training.parallel.actions import span_rows

    steps, clean = [], 0
    for i in range(args.warmup + 4 * args.steps):
        spans = [] if i >= args.warmup else None
        for part in pipe.parts:
            part.zero_grad(set_to_none=True)
        dist.barrier()
        start, waited = time.perf_counter(), runqueue_wait_s()
        pipe.run(inputs, targets, tokens=float(targets.numel()), spans=spans)
        wall = time.perf_counter() - start
        share = torch.tensor([(runqueue_wait_s() - waited) / wall])
        dist.all_reduce(share, op=dist.ReduceOp.MAX)  # the largest share any rank waited for its core
        if spans is not None:
            clean += float(share) <= args.max_core_wait
            steps.append({"wall_s": wall, "core_wait": float(share), "spans": span_rows(spans)})
        if clean == args.steps:
            break
    return steps


def child(args: argparse.Namespace) -> None:
    """Torchrun side: record the spans of `steps` steps per schedule; rank 0 writes them to args.child."""
    import torch.distributed as dist

    rank, world = setup_rank(args)
    inputs, targets = batch(args)
    result = {"world": world, "p2p_one_way_s": one_way_p2p_s((args.rows, args.seq_len, args.dim), rank),
              "schedules": {}}
    for schedule in args.schedules:
        pipe = build(schedule, args, rank, world)
        steps = record_steps(pipe, args, inputs, targets)
        every = [None] * world
        dist.all_gather_object(every, steps)
        result["schedules"][schedule] = {"stages_per_rank": pipe.plan.stages_per_rank, "steps": every}
    if rank == 0:
        Path(args.child).write_text(json.dumps(result), encoding="utf-8")
    dist.destroy_process_group()


def launch(module: str, args: argparse.Namespace, argv: list[str], *, timeout_s: float = 1800) -> dict:
    """Run `python -m module` under torchrun on len(cores) ranks with --child; return what rank 0 wrote."""
    world = len(args.cores.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}",
               "-m", module, *argv, "--child", str(out)]
        subprocess.run(cmd, check=True, cwd=REPO, env=one_core_env(), timeout=timeout_s)
        return json.loads(out.read_text(encoding="utf-8"))


def local_gaps(spans: list) -> list[float]:
    """Gaps between consecutive calls on a rank whose cross-rank input was already there: per-call overhead."""
    from training.parallel.actions import by_rank

    done = {(s.stage, s.kind, s.microbatch): s for s in spans}
    gaps = []
    for lane in by_rank(sorted(spans, key=lambda s: s.start)).values():
        for prev, cur in zip(lane, lane[1:]):
            deps = ([(cur.stage - 1, "F")] if cur.kind == "F" else [] if cur.kind == "W"
                    else [(cur.stage + 1, "B"), (cur.stage + 1, "I")])
            found = [done[(st, k, cur.microbatch)] for st, k in deps if (st, k, cur.microbatch) in done]
            if not any(d.rank != cur.rank and d.end > prev.end for d in found):
                gaps.append(max(0.0, cur.start - prev.end))
    return gaps


def closed_form(schedule: str, *, p: int, m: int, v: int, costs: dict) -> float | None:
    """§1.1's form where one exists; ZB-H1's uses the stage-mean measured F, I, W (per chunk)."""
    from training.parallel.simulator import Costs, bubble_fraction, zb_h1_bubble_fraction

    if schedule in SINGLE_STAGE:
        return bubble_fraction(n_ranks=p, n_microbatches=m)
    if schedule == "interleaved1f1b":
        return bubble_fraction(n_ranks=p, n_microbatches=m, chunks=v)
    if schedule == "zero-bubble":
        mean = {k: statistics.fmean(c.of(k) for c in costs.values()) for k in "FIW"}
        return zb_h1_bubble_fraction(n_ranks=p, n_microbatches=m, chunks=v,
                                     costs=Costs.split(f=mean["F"], i=mean["I"], w=mean["W"]))
    return None


def analyse_step(spans: list, order: tuple) -> dict:
    """One recorded step: measured and simulated bubble, makespans, hop latency and per-call gaps."""
    from training.parallel.simulator import costs_from_spans, simulate
    from training.parallel.timeline import hop_latency, idle_fraction

    latency = hop_latency(spans)
    ideal = simulate(order, costs=costs_from_spans(spans))
    hops = simulate(order, costs=costs_from_spans(spans, latency=latency))
    gaps = local_gaps(spans)
    makespan = max(s.end for s in spans) - min(s.start for s in spans)
    ranks = len({s.rank for s in spans})
    return {"measured": idle_fraction(spans), "simulated": ideal.bubble_fraction, "simulated_latency":
            hops.bubble_fraction, "makespan_s": makespan, "simulated_makespan_s": ideal.makespan,
            "simulated_latency_makespan_s": hops.makespan, "hop_latency_s": latency,
            "local_gap_mean_s": statistics.fmean(gaps) if gaps else 0.0,
            "local_gap_share": sum(gaps) / (ranks * makespan), "calls_per_rank": len(spans) / ranks}


def analyse(schedule: str, data: dict, args: argparse.Namespace) -> dict:
    """Medians over the clean recorded steps (all of them if none is clean); the median step is drawn and traced."""
    from training.parallel.actions import Span, spans_from_rows
    from training.parallel.simulator import costs_from_spans, schedule_order
    from training.parallel.timeline import draw_timeline, write_chrome_trace

    world, v, records = len(data["steps"]), data["stages_per_rank"], data["steps"]
    waits = [step["core_wait"] for step in records[0]]  # all-reduced: the same on every rank
    kept = [i for i, w in enumerate(waits) if w <= args.max_core_wait] or list(range(len(waits)))
    steps = [sorted((s for r in range(world) for s in spans_from_rows(records[r][i]["spans"])), key=lambda s: s.start)
             for i in kept]
    order = schedule_order(schedule, n_ranks=world, n_microbatches=args.microbatches, stages_per_rank=v)
    per_step = [analyse_step(spans, order) for spans in steps]
    row = {k: statistics.median(s[k] for s in per_step) for k in per_step[0]}
    middle = sorted(range(len(steps)), key=lambda i: per_step[i]["measured"])[len(steps) // 2]
    spans, picked = steps[middle], per_step[middle]
    shifted = [Span(s.rank, s.stage, s.kind, s.microbatch, s.start - spans[0].start, s.end - spans[0].start)
               for s in spans]
    draw_timeline(shifted, OUT / f"pipeline_bubble_{schedule}.png",
                  title=f"{schedule}, p={world}, m={args.microbatches}, v={v}: simulated {picked['simulated']:.1%}, "
                        f"{picked['simulated_latency']:.1%} with {picked['hop_latency_s'] * 1e3:.2f} ms hops; measured")
    write_chrome_trace(shifted, OUT / f"pipeline_bubble_{schedule}.trace.json")
    costs = costs_from_spans(spans)
    row.update(schedule=schedule, v=v, per_step=per_step, kept=f"{len(kept)}/{len(waits)}",
               step_wall_s=statistics.median(max(records[r][i]["wall_s"] for r in range(world)) for i in kept),
               core_wait=max(waits[i] for i in kept), core_waits=[round(w, 4) for w in waits],
               closed_form=closed_form(schedule, p=world, m=args.microbatches, v=v, costs=costs),
               stage_costs_ms={st: {k: round(c.of(k) * 1e3, 3) for k in "FBIW"} for st, c in costs.items()})
    return row


def markdown(rows: list[dict], p2p_s: float) -> str:
    pct = lambda x: "—" if x is None else f"{x:.1%}"  # noqa: E731
    lines = ["| schedule | v | step (s) | measured | simulated (0 latency) | simulated (hop latency) | closed form | "
             "hop latency (ms) | per-call gap (ms) | per-call gaps, share of step | steps kept | core wait |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['schedule']} | {r['v']} | {r['step_wall_s']:.3f} | {pct(r['measured'])} | "
                     f"{pct(r['simulated'])} | {pct(r['simulated_latency'])} | {pct(r['closed_form'])} | "
                     f"{r['hop_latency_s'] * 1e3:.2f} | {r['local_gap_mean_s'] * 1e3:.2f} | "
                     f"{pct(r['local_gap_share'])} | {r['kept']} | {pct(r['core_wait'])} |")
    lines.append(f"\nraw gloo send/recv of one activation, one way: {p2p_s * 1e3:.2f} ms. core wait: largest share "
                 "of a kept step that a rank's main thread waited for its core (schedstat; above --max-core-wait: "
                 "not kept)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5, help="recorded steps per schedule (after the warm-up)")
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    argv = sys.argv[1:] if argv is None else argv
    result = launch("bench.train.pipeline_bubble", args, argv)
    rows = [analyse(name, result["schedules"][name], args) for name in args.schedules]
    print(f"\np={result['world']} gloo ranks on cores {args.cores}, m={args.microbatches} microbatches of "
          f"{args.rows}x{args.seq_len} tokens, dim {args.dim}, {args.layers} layers, vocab {args.vocab}; "
          f"medians of {args.steps} steps\n")
    print(markdown(rows, result["p2p_one_way_s"]))
    command = "python -m bench.train.pipeline_bubble " + " ".join(argv)
    print(f"\ncommand: {command}\ntraces and PNGs: {OUT}/pipeline_bubble_<schedule>.trace.json|png")
    return save_report("pipeline_bubble", {"machine": machine(), "command": command, "args": vars(args),
                                           "p2p_one_way_s": result["p2p_one_way_s"], "rows": rows})


if __name__ == "__main__":
    sys.exit(main())
