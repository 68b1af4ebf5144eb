"""Decoupled local-learning pipeline vs a backprop pipeline: measured bubble (idle fraction) per step.

torchrun starts p ranks; the same model (8 layers, dim 256, seq 128) is cut into p stages. Backprop: our
pipeline runtime with 1F1B (and GPipe). Local: K = p gradient-isolated modules with greedy aux heads, each rank
updating locally as soon as its module's forward is sent on (training/local/decoupled.py). Each step's F/B spans
are recorded; we report the median idle fraction over steps and the step time, and draw one step of each.

With --trainer the same comparison runs through `python -m training.pretrain` on token shards: the pipeline trainer
with 1F1B / GPipe against `--trainer=decoupled` (the local trainer's modules, one per rank), traced steps giving
the measured idle fraction and the untraced ones the step time.

python -m bench.train.local_pipeline                  # 2 ranks, 8 microbatches, 6 measured steps
python -m bench.train.local_pipeline --ranks 4 --microbatches 8
python -m bench.train.local_pipeline --trainer --data output/demo/tokens    # through the trainers (scripts/train_demo.sh)
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path



def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--microbatches", type=int, default=8)
    parser.add_argument("--rows", type=int, default=2, help="sequences per microbatch")
    parser.add_argument("--steps", type=int, default=6, help="measured steps (after 2 warm-up steps)")
    parser.add_argument("--trainer", action="store_true", help="measure through training.pretrain on --data")
    parser.add_argument("--data", default="output/demo/tokens", help="token shards for --trainer")
    parser.add_argument("--method", default="greedy", help="local method of the decoupled run (--trainer)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from training.local.core import LocalModel, plan_modules
    from training.local.lm_backbone import aux_builder, backbone, lm_loss
    from training.local.decoupled import DecoupledStage
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


def via_trainer(args: argparse.Namespace) -> dict:
    """Idle fraction and step time (median of steps 4, 6, 8) of each schedule run by the trainers.

    A backprop pipeline drains every step, so its idle fraction is the median over traced steps 3, 5 and 7; the
    decoupled one runs across step boundaries, so steps 3-7 are traced as one window (one fill, every gap)."""
    import os
    import subprocess
    import tempfile

    from training.metrics import read_metrics

    if not (Path(args.data) / "train").is_dir():
        raise SystemExit(f"{args.data}/train not found: run `bash scripts/train_demo.sh` first or pass --data")
    common = ["--config", "tiny", f"data.path={args.data}", "model.n_layers=8", "model.dim=256", "model.n_heads=4",
              "model.ffn_dim=683", "model.tie_embeddings=false", f"train.micro_batch_size={args.microbatches * args.rows}",
              f"--microbatches={args.microbatches}", "train.steps=8", "train.threads=1",
              "eval.every=0", "eval.batches=1", "checkpoint.every=0", "log.every=1", "log.tensorboard=false",
              "log.progress=false", f"--method={args.method}", f"--blocks={args.ranks}"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for schedule in ("1f1b", "gpipe", "decoupled"):
            run = Path(tmp) / schedule
            subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            f"--nproc-per-node={args.ranks}", "-m", "training.pretrain", *common,
                            *(["--trainer=decoupled"] if schedule == "decoupled" else
                              ["--trainer=pipeline", f"--schedule={schedule}"]), f"output={run}",
                            f"pipeline.trace_steps={'[3,4,5,6,7]' if schedule == 'decoupled' else '[3,5,7]'}"],
                           check=True, capture_output=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
            records = read_metrics(run)
            idle = [r["pp_bubble_measured"] for r in records if "pp_bubble_measured" in r]
            times = [r["step_time_s"] for r in records if r.get("step") in (4, 6, 8) and "step_time_s" in r
                     and not r.get("summary")]
            results[schedule] = {"idle": statistics.median(idle), "step_s": statistics.median(times)}
            (Path("bench/out") / "local_pipeline_trainer").mkdir(parents=True, exist_ok=True)
            png = run / "pipeline" / ("steps-3-7.png" if schedule == "decoupled" else "step-7.png")
            if png.is_file():
                (Path("bench/out") / "local_pipeline_trainer" / f"{schedule}_p{args.ranks}.png").write_bytes(
                    png.read_bytes())
    return {"ranks": args.ranks, "microbatches": args.microbatches, "results": results}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    if args.trainer:
        from bench.common import machine, save_report

        result = via_trainer(args)
        print(f"`python -m bench.train.local_pipeline {' '.join(argv if argv is not None else sys.argv[1:])}`: "
              f"{args.ranks} ranks, {args.microbatches} microbatches of {args.rows} rows, 8 layers dim 256, "
              f"through training.pretrain\n")
        print("| trainer | measured bubble (idle fraction) | step time |")
        print("|---|---:|---:|")
        for name, r in result["results"].items():
            label = f"local ({args.method}), decoupled" if name == "decoupled" else f"backprop, {name}"
            print(f"| {label} | {r['idle']:.1%} | {r['step_s'] * 1e3:,.0f} ms |")
        save_report(f"local_pipeline_trainer_p{args.ranks}", {"machine": machine(), "args": vars(args), **result})
        return 0
    from bench.common import machine, save_report, torchrun_json

    result = torchrun_json("bench.train.local_pipeline", args.ranks, [f"--microbatches={args.microbatches}", f"--rows={args.rows}",
                                                  f"--steps={args.steps}"])
    p, m = result["ranks"], result["microbatches"]
    print(f"`python -m bench.train.local_pipeline {' '.join(argv if argv is not None else sys.argv[1:])}`: {p} ranks, "
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
