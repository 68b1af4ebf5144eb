"""Step time of our Pipeline against plain torch.distributed.pipelining on the same schedule, model and group.

"ours" is `build_pipeline` + `Pipeline.run`: TimedStage with spans=None, padding to equal microbatches, the
token-normalised summed loss and scale_grads=False. "plain" is what a torch user writes by hand: a
`PipelineStage` per stage over the very same stage modules, the schedule class with scale_grads=True and a
mean cross-entropy. Both run in the same torchrun processes (2 gloo ranks, one core each, one math thread)
on the same batch, alternating step by step (ours, plain, ours, plain, ...) so drift hits both alike. A
step is timed from a barrier to the rank's end; its time is the slower rank's. Before timing, one step of
each from zero gradients checks that both compute the same loss and gradients. Target: ours / plain <= 1.05.

python -m bench.train.pipeline_vs_torch                                 # 1f1b and interleaved1f1b, ~2.5 min
python -m bench.train.pipeline_vs_torch --schedules gpipe 1f1b interleaved1f1b zero-bubble zbv dualpipev  # ~7 min
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from bench.common import machine, save_report
from bench.train.pipeline_bubble import SINGLE_STAGE, batch, build, launch, parser, runqueue_wait_s, setup_rank

VARIANTS = ("ours", "plain")


def mean_loss(logits, targets):  # noqa: ANN001, ANN201 - the loss a plain torch user passes
    import torch.nn.functional as F

    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def plain_schedule(pipe, rank: int):  # noqa: ANN001, ANN201
    """torch's own stages and schedule class around our stage modules, with torch's default gradient scaling."""
    import torch
    import torch.distributed as dist
    from torch.distributed.pipelining import PipelineStage

    from training.parallel.pipeline import SCHEDULE_CLASSES

    plan = pipe.plan
    stages = [PipelineStage(part, index, plan.n_stages, torch.device("cpu"), group=dist.group.WORLD)
              for part, index in zip(pipe.parts, plan.stages_of(rank))]
    name = plan.runtime_schedule()
    kwargs = dict(n_microbatches=plan.microbatches, loss_fn=mean_loss, scale_grads=True)
    return SCHEDULE_CLASSES[name](stages[0], **kwargs) if name in SINGLE_STAGE else SCHEDULE_CLASSES[name](
        stages, **kwargs)


def runners(pipe, plain, inputs, targets) -> dict:  # noqa: ANN001
    """variant -> a step that returns this rank's loss (the step's mean token loss on the last stage, else 0)."""
    tokens = float(targets.numel())
    args = (inputs,) if pipe.has_first else ()
    target = targets if pipe.has_last else None

    def plain_step() -> float:
        losses = []
        plain.step(*args, target=target, losses=losses)
        return sum(float(x.detach()) for x in losses) / len(losses) if losses else 0.0

    return {"ours": lambda: pipe.run(inputs, targets, tokens=tokens), "plain": plain_step}


def same_result(pipe, run: dict) -> tuple[float, float]:  # noqa: ANN001
    """One step of each from zero gradients: (|loss ours - loss plain|, max |grad ours - grad plain|) on this rank."""
    out = {}
    for name in VARIANTS:
        for part in pipe.parts:
            part.zero_grad(set_to_none=True)
        loss = run[name]()
        out[name] = loss, {n: p.grad.clone() for part in pipe.parts for n, p in part.named_parameters()}
    (loss_a, grads_a), (loss_b, grads_b) = out["ours"], out["plain"]
    return abs(loss_a - loss_b), max(float((grads_a[n] - grads_b[n]).abs().max()) for n in grads_a)


def timed_pairs(pipe, run: dict, args) -> tuple[dict, list[float]]:  # noqa: ANN001
    """ABAB...: pairs (ours, plain) of steps, each from zeroed gradients and a barrier. A pair counts only if no
    rank's main thread waited more than --max-core-wait of it for its core (else it is retried, up to 4x steps
    pairs). This rank's seconds per step and the core wait of every pair after the warm-up."""
    import torch
    import torch.distributed as dist

    times, waits = {name: [] for name in VARIANTS}, []
    for i in range(args.warmup + 4 * args.steps):
        pair, queued, began = {}, runqueue_wait_s(), time.perf_counter()
        for name in VARIANTS:
            for part in pipe.parts:
                part.zero_grad(set_to_none=True)
            dist.barrier()
            start = time.perf_counter()
            run[name]()
            pair[name] = time.perf_counter() - start
        share = torch.tensor([(runqueue_wait_s() - queued) / (time.perf_counter() - began)])
        dist.all_reduce(share, op=dist.ReduceOp.MAX)  # every rank takes the same decision
        if i < args.warmup:
            continue
        waits.append(float(share))
        for name in VARIANTS:
            times[name].append(pair[name])
        if sum(w <= args.max_core_wait for w in waits) == args.steps:
            break
    return times, waits


def child(args) -> None:  # noqa: ANN001
    """Torchrun side: per schedule, the equality check and the alternating timed steps; rank 0 writes all."""
    import json

    import torch.distributed as dist

    rank, world = setup_rank(args)
    inputs, targets = batch(args)
    result = {"world": world, "schedules": {}}
    for schedule in args.schedules:
        pipe = build(schedule, args, rank, world)
        run = runners(pipe, plain_schedule(pipe, rank), inputs, targets)
        loss_err, grad_err = same_result(pipe, run)
        times, waits = timed_pairs(pipe, run, args)
        every = [None] * world
        dist.all_gather_object(every, {"loss_err": loss_err, "grad_err": grad_err, "times": times,
                                       "core_waits": waits})
        result["schedules"][schedule] = {"v": pipe.plan.stages_per_rank, "ranks": every}
    if rank == 0:
        Path(args.child).write_text(json.dumps(result), encoding="utf-8")
    dist.destroy_process_group()


def summarise(schedule: str, data: dict, max_core_wait: float) -> dict:
    """Per kept pair the slower rank's time; medians, the ratio of medians and the median of paired ratios."""
    ranks, waits = data["ranks"], data["ranks"][0]["core_waits"]  # all-reduced: the same on every rank
    kept = [i for i, w in enumerate(waits) if w <= max_core_wait] or list(range(len(waits)))
    step = {name: [max(r["times"][name][i] for r in ranks) for i in kept] for name in VARIANTS}
    ours, plain = statistics.median(step["ours"]), statistics.median(step["plain"])
    return {"schedule": schedule, "v": data["v"], "ours_s": ours, "plain_s": plain, "ratio": ours / plain,
            "paired_ratio": statistics.median(a / b for a, b in zip(step["ours"], step["plain"])),
            "ours_iqr_s": iqr(step["ours"]), "plain_iqr_s": iqr(step["plain"]),
            "loss_err": max(r["loss_err"] for r in ranks), "grad_err": max(r["grad_err"] for r in ranks),
            "dropped_pairs": sum(w > max_core_wait for w in waits), "core_waits": [round(w, 4) for w in waits],
            "core_wait": max(waits[i] for i in kept),
            "steps": step}


def iqr(values: list[float]) -> float:
    """Interquartile range; 0.0 for a single kept pair (a busy machine can leave only one under --max-core-wait)."""
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def markdown(rows: list[dict]) -> str:
    lines = ["| schedule | v | ours (s) | plain torch (s) | ours / plain | paired ratio (median) | "
             "IQR ours / plain (ms) | max grad diff | loss diff | pairs dropped | core wait |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['schedule']} | {r['v']} | {r['ours_s']:.3f} | {r['plain_s']:.3f} | {r['ratio']:.3f} | "
                     f"{r['paired_ratio']:.3f} | {r['ours_iqr_s'] * 1e3:.0f} / {r['plain_iqr_s'] * 1e3:.0f} | "
                     f"{r['grad_err']:.1e} | {r['loss_err']:.1e} | {r['dropped_pairs']} | {r['core_wait']:.1%} |")
    lines.append("\ncore wait: largest share of a kept pair that a rank's main thread waited for its core (schedstat); "
                 "pairs above --max-core-wait were dropped and rerun")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(schedules=["1f1b", "interleaved1f1b"])
    p.add_argument("--steps", type=int, default=20, help="timed steps per variant and schedule (after the warm-up)")
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    argv = sys.argv[1:] if argv is None else argv
    result = launch("bench.train.pipeline_vs_torch", args, argv)
    rows = [summarise(name, result["schedules"][name], args.max_core_wait) for name in args.schedules]
    print(f"\np={result['world']} gloo ranks on cores {args.cores}, m={args.microbatches} microbatches of "
          f"{args.rows}x{args.seq_len} tokens, dim {args.dim}, {args.layers} layers, vocab {args.vocab}; "
          f"median of {args.steps} steps each, alternating\n")
    print(markdown(rows))
    command = "python -m bench.train.pipeline_vs_torch " + " ".join(argv)
    print(f"\ncommand: {command}")
    return save_report("pipeline_vs_torch", {"machine": machine(), "command": command, "args": vars(args),
                                             "rows": rows})


if __name__ == "__main__":
    sys.exit(main())
