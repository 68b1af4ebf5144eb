"""Vocabulary parallelism against the layouts that keep the embedding and head on the end stages, on 4 gloo ranks.

For each vocabulary (8k, 32k, 128k, 256k by default) and each method:
  baseline   layers split evenly, embedding on the first stage, norm and head on the last (torch's 1F1B)
  cost       our cost-balanced layout (partition.py: the head counted in FLOPs; torch's 1F1B)
  vocab-1    embedding and head split by vocabulary over all 4 ranks, one barrier per microbatch (our runtime)
  vocab-2    the same with two barriers
one torchrun launch of 4 ranks runs W warm-up steps and N timed steps of `run` on a fixed batch. Per rank: the
median step time (from a barrier, the slowest rank's), the measured bubble of one traced step (idle / (ranks x
step), the same definition as the simulator's), parameter bytes (exact), and the peak resident memory of the
steps (VmHWM after resetting it through /proc/self/clear_refs once the pipeline is built, so building the whole
model on every rank does not count). From the shapes: forward FLOPs per rank (balance.py) and, from the replay,
the microbatches each stage holds at its peak.

On this machine 4 ranks share 2 cores, so a step time is that of 4 processes taking turns: the ratios between
methods hold (every method oversubscribes alike), absolute times and the bubble do not transfer to a GPU, where
the ranks run concurrently and the barriers' all-reduces overlap compute on separate streams.

python -m bench.train.vocab_parallel                       # 4 vocabularies x 4 methods, ~10 minutes
python -m bench.train.vocab_parallel --vocabs 8192 --steps 2   # a quick functional run
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from bench.common import machine, save_report, torchrun_json

METHODS = ("baseline", "cost", "vocab-1", "vocab-2")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--vocabs", nargs="+", type=int, default=[8192, 32768, 131072, 262144], help="vocabulary sizes")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="layouts / methods")
    p.add_argument("--ranks", type=int, default=4, help="pipeline ranks (gloo processes)")
    p.add_argument("--dim", type=int, default=128, help="model width h (V/h >= 20 from 8k up at 128)")
    p.add_argument("--layers", type=int, default=8, help="decoder blocks")
    p.add_argument("--heads", type=int, default=4, help="attention heads")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence")
    p.add_argument("--rows", type=int, default=1, help="sequences per microbatch")
    p.add_argument("--microbatches", type=int, default=8, help="microbatches per step")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--steps", type=int, default=3, help="timed steps (median reported)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu: gloo ranks; cuda: one GPU per rank over NCCL (a multi-GPU machine)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # torchrun's side (bench.common)
    p.add_argument("--case", nargs=2, metavar=("VOCAB", "METHOD"), default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def peak_rss_reset() -> None:
    """Reset this process's peak resident size (Linux: write 5 to clear_refs), so VmHWM covers what follows."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


def peak_rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        line = next(x for x in f if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def collectives(args: argparse.Namespace, rank: int) -> dict:
    """Seconds per call of the runtime's messages and collectives at this bench's sizes (N tokens of width d per
    microbatch), every rank entering together (a barrier first), one at a time: what they would cost a step if
    nothing overlapped them."""
    import torch
    import torch.distributed as dist

    n, d = args.rows * args.seq_len, args.dim
    shapes = {"send hidden to one rank (N x d)": ("send", (n, d)),
              "all-gather statistics, Vocab-2 (N x 3)": ("gather", (n, 3)),
              "all-gather statistics + grad terms, Vocab-1 (N x (2d+3))": ("gather", (n, 2 * d + 3)),
              "all-reduce input grad, Vocab-2 (N x d)": ("sum", (n, d)),
              "all-reduce embedding, whole batch (m N x d)": ("sum", (args.microbatches * n, d))}
    world = dist.get_world_size()
    out = {}
    for name, (op, shape) in shapes.items():
        t = torch.randn(shape)
        times = []
        for _ in range(12):
            dist.barrier()
            start = time.perf_counter()
            if op == "send":  # the last rank to rank 0, as the runtime posts it to each rank
                if rank == world - 1:
                    dist.send(t, 0)
                elif rank == 0:
                    dist.recv(t, world - 1)
            elif op == "gather":
                dist.all_gather([torch.empty_like(t) for _ in range(world)], t)
            else:
                dist.all_reduce(t)
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times[2:])
    return out


def child(args: argparse.Namespace) -> int:
    import gc

    import torch
    import torch.distributed as dist

    from training.model import Llama, ModelConfig
    from training.parallel.actions import Span
    from training.parallel.balance import plan_report, rank_loads  # noqa: F401 - rank_loads via plan_report
    from training.parallel.partition import balanced_layout, uniform_layout
    from training.parallel.pipeline import Plan, build_pipeline
    from training.parallel.timeline import idle_fraction
    from training.parallel.vocab_pipeline import build_vocab_pipeline

    vocab, method = int(args.case[0]), args.case[1]
    if method == "collectives":
        torch.set_num_threads(1)
        dist.init_process_group("gloo")
        timed = collectives(args, dist.get_rank())
        every = [None] * dist.get_world_size()
        dist.all_gather_object(every, timed)
        if dist.get_rank() == 0:
            print(json.dumps({k: max(x[k] for x in every) for k in timed}), flush=True)
        dist.destroy_process_group()
        return 0
    torch.set_num_threads(1)
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    cfg = ModelConfig(vocab_size=vocab, dim=args.dim, n_layers=args.layers, n_heads=args.heads,
                      ffn_dim=3 * args.dim, max_seq_len=args.seq_len)
    vp = method.startswith("vocab")
    layout = (uniform_layout if method == "baseline" else balanced_layout)(cfg, world, seq_len=args.seq_len,
                                                                           vocab_parallel=vp)
    plan = Plan(schedule="1f1b", pp=world, dp=1, stages_per_rank=1, microbatches=args.microbatches, layout=layout)
    torch.manual_seed(0)
    full = Llama(cfg)
    if vp:
        vocab_groups = (dist.new_group(list(range(world))), dist.new_group(list(range(world))))
        pipe = build_vocab_pipeline(full, plan, barriers=int(method[-1]), seq_len=args.seq_len, pp_rank=rank,
                                    ranks=list(range(world)), group=dist.group.WORLD, vocab_groups=vocab_groups,
                                    device=device)
        parts = [*pipe.parts, pipe.vocab]
    else:
        pipe = build_pipeline(full, plan, pp_rank=rank, device=device, pp_group=dist.group.WORLD)
        parts = list(pipe.parts)
    del full
    gc.collect()
    g = torch.Generator().manual_seed(1)
    rows = args.rows * args.microbatches
    inputs = torch.randint(0, vocab, (rows, args.seq_len), generator=g)
    targets = torch.randint(0, vocab, (rows, args.seq_len), generator=g)
    inputs, targets = inputs.to(device), targets.to(device)
    tokens = float(targets.numel())
    params = {id(p): p for part in parts for p in part.parameters()}
    param_bytes = sum(p.numel() * p.element_size() for p in params.values())

    def step(spans: list | None = None) -> float:
        for part in parts:
            part.zero_grad(set_to_none=True)
        dist.barrier()
        start = time.perf_counter()
        pipe.run(inputs, targets, tokens=tokens, spans=spans)
        took = time.perf_counter() - start
        if cuda:
            torch.cuda.synchronize()
            took = time.perf_counter() - start
        slowest = torch.tensor([took], dtype=torch.float64, device=device)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        return float(slowest.cpu())

    for _ in range(args.warmup):
        step()
    peak_rss_reset()
    times = [step() for _ in range(args.steps)]
    spans: list[Span] = []
    step(spans)
    rss = peak_rss_mib()
    every = [None] * world
    dist.all_gather_object(every, {"param_mib": param_bytes / 2**20, "rss_mib": rss, "spans": spans})
    if rank == 0:
        all_spans = [s for x in every for s in x["spans"]]
        report = plan_report(cfg, plan, seq_len=args.seq_len, rows=args.rows, vocab_parallel=vp,
                             barriers=int(method[-1]) if vp else 1)
        print(json.dumps({
            "vocab": vocab, "method": method, "step_s": statistics.median(times), "steps_s": times,
            "bubble_measured": idle_fraction(all_spans),
            "param_mib": [x["param_mib"] for x in every], "peak_rss_mib": [x["rss_mib"] for x in every],
            "layout": [list(s) for s in layout.stages], "balance": report}), flush=True)
    dist.destroy_process_group()
    return 0


def spread(values: list[float]) -> float:
    return max(values) / min(values)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.child:
        return child(args)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
             if k in ("dim", "layers", "heads", "seq_len", "rows", "microbatches", "warmup", "steps", "device")]
    rows = []
    for vocab in args.vocabs:
        for method in args.methods:
            t0 = time.perf_counter()
            r = torchrun_json("bench.train.vocab_parallel", args.ranks, [*flags, "--case", str(vocab), method])
            flops = [float(line.split()[3]) for line in r["balance"].splitlines()[2:2 + args.ranks]]
            r.update(param_spread=spread(r["param_mib"]), rss_spread=spread(r["peak_rss_mib"]),
                     flops_spread=spread(flops), v_over_h=vocab / args.dim, wall_s=time.perf_counter() - t0)
            rows.append(r)
            print(f"V={vocab:>6} {method:<9} step {r['step_s']:.3f} s  bubble {r['bubble_measured']:.1%}  "
                  f"FLOPs max/min {r['flops_spread']:.2f}  params max/min {r['param_spread']:.2f}  "
                  f"peak RSS max/min {r['rss_spread']:.2f} ({min(r['peak_rss_mib']):.0f}-"
                  f"{max(r['peak_rss_mib']):.0f} MiB)", file=sys.stderr, flush=True)
    comm = torchrun_json("bench.train.vocab_parallel", args.ranks, [*flags, "--case", "0", "collectives"])
    hidden = (args.ranks - 1) * comm["send hidden to one rank (N x d)"]  # the last rank posts one per rank
    per_step = {"vocab-1": args.microbatches * (hidden + comm["all-gather statistics + grad terms, Vocab-1 (N x (2d+3))"]),
                "vocab-2": args.microbatches * (hidden + comm["all-gather statistics, Vocab-2 (N x 3)"]
                                                + comm["all-reduce input grad, Vocab-2 (N x d)"])}
    per_step = {k: v + 2 * comm["all-reduce embedding, whole batch (m N x d)"] for k, v in per_step.items()}
    for k, v in per_step.items():
        print(f"{k}: collectives {v * 1e3:.1f} ms per step", file=sys.stderr, flush=True)
    by = {(r["vocab"], r["method"]): r for r in rows}
    ratios = {str(v): {m: by[(v, "cost")]["step_s"] / by[(v, m)]["step_s"] for m in args.methods if (v, m) in by}
              for v in args.vocabs if (v, "cost") in by}
    return save_report("vocab_parallel", {"machine": machine(), "args": {k: v for k, v in vars(args).items()
                                                                         if k not in ("child", "case")},
                                          "rows": rows, "speedup_over_cost_layout": ratios,
                                          "collective_s": comm, "collectives_per_step_s": per_step,
                                          "cores_per_rank": (os.cpu_count() or 1) / args.ranks})


if __name__ == "__main__":
    sys.exit(main())
