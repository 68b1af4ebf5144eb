"""Decoupled local-learning pipeline vs a backprop pipeline: measured bubble (idle fraction) per step.

torchrun starts p ranks; the same model (8 layers, dim 256, seq 128) is cut into p stages. Backprop: our
pipeline runtime with 1F1B (and GPipe). Local: K = p gradient-isolated modules with greedy aux heads, each rank
updating locally as soon as its module's forward is sent on (training/local/pipeline.py). Each step's F/B spans
are recorded; we report the median idle fraction over steps and the step time, and draw one step of each.

python bench/local_pipeline.py                  # 2 ranks, 8 microbatches, 6 measured steps
python bench/local_pipeline.py --ranks 4 --microbatches 8
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--microbatches", type=int, default=8)
    parser.add_argument("--rows", type=int, default=2, help="sequences per microbatch")
    parser.add_argument("--steps", type=int, default=6, help="measured steps (after 2 warm-up steps)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from training.local.core import LocalModel, plan_modules
    from training.local.llama import aux_builder, backbone, lm_loss
    from training.local.pipeline import DecoupledStage
    from training.model import Llama, ModelConfig
    from training.parallel.partition import uniform_layout
    from training.parallel.pipeline import Plan, build_pipeline
    from training.parallel.timeline import draw_timeline, idle_fraction

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    cfg = ModelConfig(vocab_size=2048, dim=256, n_layers=8, n_heads=4, ffn_dim=683, max_seq_len=128)
    m, rows = args.microbatches, args.rows
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, cfg.vocab_size, (m * rows, 128), generator=g)
    targets = data.roll(-1, 1)
    results = {}
    for name in ("1f1b", "gpipe", "local"):
        torch.manual_seed(0)
        llama = Llama(cfg)
        if name == "local":
            model = LocalModel(backbone(llama), groups=plan_modules(cfg.n_layers, world), aux=aux_builder("greedy",
                                                                                                      aux_depth=1))
            stage = DecoupledStage.of(model, rank, loss_fn=lm_loss(1.0 / m), hidden=cfg.dim)
            micro = list(zip(data.chunk(m), targets.chunk(m)))

            def step(spans):  # noqa: ANN001
                return stage.run(micro, spans=spans)
        else:
            plan = Plan(schedule=name, pp=world, dp=1, stages_per_rank=1, microbatches=m,
                        layout=uniform_layout(cfg, world, seq_len=128))
            pipe = build_pipeline(llama, plan, pp_rank=rank, device=torch.device("cpu"), pp_group=dist.group.WORLD)

            def step(spans):  # noqa: ANN001
                return pipe.run(data, targets, tokens=float(targets.numel()), spans=spans)
        idles, times, keep = [], [], None
        for i in range(args.steps + 2):
            spans: list = []
            dist.barrier()
            t0 = time.perf_counter()
            step(spans)
            dist.barrier()
            elapsed = time.perf_counter() - t0
            gathered = [None] * world
            dist.all_gather_object(gathered, spans)
            every = [s for ss in gathered for s in ss]
            if i >= 2:
                idles.append(idle_fraction(every))
                times.append(elapsed)
                keep = every
        results[name] = {"idle": statistics.median(idles), "step_s": statistics.median(times)}
        if rank == 0:
            out = Path("bench/out")
            out.mkdir(parents=True, exist_ok=True)
            draw_timeline(keep, out / f"local_pipeline_{name}_p{world}.png",
                          title=f"{name}, {world} ranks, {m} microbatches")
    if rank == 0:
        print(json.dumps({"ranks": world, "microbatches": m, "results": results}), flush=True)
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    from bench.common import machine, save_report, torchrun_json

    result = torchrun_json(__file__, args.ranks, [f"--microbatches={args.microbatches}", f"--rows={args.rows}",
                                                  f"--steps={args.steps}"])
    p, m = result["ranks"], result["microbatches"]
    print(f"`python bench/local_pipeline.py {' '.join(argv if argv is not None else sys.argv[1:])}`: {p} ranks, "
          f"{m} microbatches, 8 layers dim 256 seq 128\n")
    print("| pipeline | measured bubble (idle fraction) | step time | closed form |")
    print("|---|---:|---:|---|")
    forms = {"1f1b": f"(p−1)/(m+p−1) = {(p - 1) / (m + p - 1):.1%}", "gpipe": f"{(p - 1) / (m + p - 1):.1%}",
             "local": "(p−1)F / (m(F+B) + (p−1)F): fill only"}
    for name, r in result["results"].items():
        print(f"| {name} | {r['idle']:.1%} | {r['step_s'] * 1e3:,.0f} ms | {forms[name]} |")
    save_report(f"local_pipeline_p{p}", {"machine": machine(), "args": vars(args), **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
