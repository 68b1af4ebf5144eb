"""SkipPipe convergence on one CPU process: full-path training vs planned skip paths vs random skips, same tokens.

SkipPipe's convergence simulator (gensyn-ai/skippipe simulate-training/trainer.py) keeps one full model and runs
each microbatch through stage 0's layers, then the layers of its path's stages (training.parallel.paths). Here
every variant starts from the same init and sees the same microbatches in the same order:
- full: every microbatch visits every stage (skip 0);
- skippipe: K = S - round(skip S) stages per microbatch, the paths `plan(...)` returns for a geo-clustered latency
  matrix (2 nodes per stage, heterogeneous_latency, assign_stages), with one adjacent swap allowed, planned once and
  replayed every step as the reference trainer does; TC2's load cap balances how often each stage is trained;
- skippipe-inorder (optional): the same without swaps;
- random ("DT-FM Skip"): K - 1 of the stages 1..S-1 drawn at random per microbatch, in order.
Gradients of a step are the mean over its microbatches, clipped at 1.0, AdamW as configs/train/tiny.yaml.
Reported: held-out loss of the *full* model at equal tokens (the issue's criterion: within a few percent of the
full pipeline), and held-out perplexity when d of the non-first stages are dropped at inference (mean over every
choice of d stages); the paper (arXiv 2502.19913 v1) reports +7% perplexity with half the model for SkipPipe.

OMP_NUM_THREADS=1 taskset -c 0 python -m bench.train.skippipe_convergence          # demo tokens, 8 layers in 4 stages
python -m bench.train.skippipe_convergence --layers 12 --stages 6 --dim 64          # the paper's 6 stages, K = 4
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import shlex
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from bench.common import OUT, machine
from tests.training.markov import write_markov_shards
from training.config import load_config
from training.data.heldout import EvalBatches
from training.data.loader import LoaderConfig, TokenLoader
from training.model import Llama, ModelConfig, next_token_loss
from training.optim import build_optimizer, lr_at, set_lr
from training.parallel.partition import Layout, uniform_layout
from training.parallel.paths import dropped_forward, path_forward
from training.parallel.skippipe import plan
from training.parallel.skippipe_check import validate
from training.parallel.skippipe_problem import assign_stages, heterogeneous_latency, make_problem

DEMO_TOKENS = Path("output/demo/tokens")  # bash scripts/train_demo.sh writes it (werp output of a synthetic crawl)
VARIANTS = ("full", "skippipe", "skippipe-inorder", "random")
PLANNED = {"skippipe": True, "skippipe-inorder": False}  # variant -> reorder allowed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default=str(DEMO_TOKENS), help="tokenize output with train/ and valid/; "
                                                                    "Markov shards in a temp folder if missing")
    parser.add_argument("--dim", type=int, default=128, help="model width (tiny.yaml: 128)")
    parser.add_argument("--layers", type=int, default=8, help="decoder blocks (tiny.yaml: 4)")
    parser.add_argument("--stages", type=int, default=4, help="pipeline stages; layers split evenly")
    parser.add_argument("--skip", type=float, default=0.33, help="fraction of stages skipped (paper: 2/6)")
    parser.add_argument("--microbatches", type=int, default=6, help="per optimizer step, each on its own path "
                                                                    "(paper: 6)")
    parser.add_argument("--micro-batch-size", type=int, default=2, help="sequences per microbatch")
    parser.add_argument("--steps", type=int, default=160, help="optimizer steps of every variant")
    parser.add_argument("--eval-every", type=int, default=10, help="steps between held-out evaluations")
    parser.add_argument("--seed", type=int, default=0, help="init, data order, latency matrix and random paths")
    parser.add_argument("--variants", nargs="+", default=["full", "skippipe", "random"], choices=VARIANTS)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--name", default="skippipe_convergence", help="stem of the .json and .png in bench/out/")
    return parser.parse_args(argv)


def open_tokens(args: argparse.Namespace, scratch: Path) -> tuple[Path, str]:
    """The shard folder and a description of it: the demo tokens if present, else a Markov chain."""
    folder = Path(args.tokens)
    if (folder / "train").is_dir() and (folder / "valid").is_dir():
        return folder, f"{folder} (token shards from scripts/train_demo.sh)"
    write_markov_shards(scratch, vocab=512, seq_len=128, train_tokens=400_000, valid_tokens=16_384, shards=4)
    return scratch, f"Markov shards (vocab 512, seq 128; {folder} not found)"


def fixed_batches(folder: Path, args: argparse.Namespace) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every training microbatch of the run, read once so each variant sees the very same tokens."""
    loader = TokenLoader(folder / "train", LoaderConfig(batch_size=args.micro_batch_size, seed=args.seed),
                         rank=0, world=1)
    return list(islice(loader, args.steps * args.microbatches))


def skippipe_paths(args: argparse.Namespace) -> tuple[dict[str, list[list[int]]], dict[str, float]]:
    """Stage sequences SkipPipe's planner picks for one step's microbatches (per planned variant), and makespans."""
    lat = heterogeneous_latency(2 * args.stages, seed=args.seed)
    common = dict(latency_s=lat, stages=assign_stages(lat, [2] * args.stages, seed=args.seed),
                  n_microbatches=args.microbatches)
    paths, makespan_s = {}, {"full": plan(make_problem(**common), seed=args.seed).makespan_s}
    for variant, reorder in PLANNED.items():
        problem = make_problem(**common, skip=args.skip, reorder=reorder)
        schedule = plan(problem, seed=args.seed)
        if errors := validate(schedule, problem):
            raise AssertionError(f"planner broke its constraints: {errors[:3]}")
        paths[variant] = [[s for s, _ in path] for path in schedule.paths]
        makespan_s[variant] = schedule.makespan_s
    return paths, makespan_s


def path_chooser(variant: str, args: argparse.Namespace, planned: dict[str, list[list[int]]]):
    """step, microbatch -> stage path for one variant."""
    every, k = list(range(args.stages)), len(planned["skippipe"][0])
    rng = np.random.default_rng(args.seed + 1)
    if variant == "full":
        return lambda step, m: every
    if variant in planned:
        return lambda step, m: planned[variant][m]
    return lambda step, m: [0, *sorted(int(s) for s in rng.choice(every[1:], size=k - 1, replace=False))]


@torch.no_grad()
def held_out(model: Llama, evals: EvalBatches, layout: Layout, keep: list[int]) -> float:
    """Mean next-token loss over every held-out token with only the `keep` stages run."""
    total, count = 0.0, 0
    for x, y in evals:
        logits = dropped_forward(model, x, keep_stages=keep, layout=layout)
        total += next_token_loss(logits, y, reduction="sum").item()
        count += y.numel()
    return total / count


def train(variant: str, *, args: argparse.Namespace, cfg: ModelConfig, layout: Layout, batches: list,
          evals: EvalBatches, planned: dict[str, list[list[int]]]) -> tuple[Llama, dict]:
    """One variant from the shared init; returns the model and its held-out curve, train losses and layer passes."""
    run = load_config("tiny", [f"optim.warmup_steps={max(1, args.steps // 10)}"])  # tiny: 30 of 300 steps
    torch.manual_seed(args.seed)
    model = Llama(cfg)
    optimizer = build_optimizer(model, run.optim)
    choose = path_chooser(variant, args, planned)
    every = list(range(args.stages))
    curve, losses, passes, started = [], [], 0, time.perf_counter()
    for step in range(args.steps):
        set_lr(optimizer, lr_at(step, run.optim, args.steps))
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for m in range(args.microbatches):
            x, y = batches[step * args.microbatches + m]
            path = choose(step, m)
            passes += len(path)
            loss = next_token_loss(path_forward(model, x, path=path, layout=layout), y) / args.microbatches
            loss.backward()
            step_loss += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), run.optim.grad_clip)
        optimizer.step()
        losses.append(step_loss)
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            tokens = (step + 1) * args.microbatches * batches[0][1].numel()
            curve.append({"step": step + 1, "tokens": tokens, "held_out_loss": held_out(model, evals, layout, every)})
    print(f"{variant}: held-out {curve[-1]['held_out_loss']:.4f} after {args.steps} steps, "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return model, {"curve": curve, "train_loss": losses, "stage_passes": passes,
                   "wall_s": round(time.perf_counter() - started, 1)}


def drop_curve(model: Llama, evals: EvalBatches, layout: Layout, n_stages: int) -> list[dict]:
    """Held-out perplexity with d = 0.. S-1 non-first stages dropped, over every choice of the d stages."""
    rows = []
    for d in range(n_stages):
        ppl = [math.exp(held_out(model, evals, layout, [0, *kept]))
               for kept in itertools.combinations(range(1, n_stages), n_stages - 1 - d)]
        rows.append({"dropped": d, "kept_fraction": (n_stages - d) / n_stages, "ppl_mean": float(np.mean(ppl)),
                     "ppl_min": min(ppl), "ppl_max": max(ppl), "choices": len(ppl)})
    return rows


def tables(report: dict) -> str:
    """Markdown: held-out loss at equal tokens, then perplexity against stages dropped."""
    runs = report["runs"]
    base = runs["full"]["curve"][-1]["held_out_loss"] if "full" in runs else None
    lines = ["| variant | stages per microbatch | stage passes | held-out loss | gap vs full (equal tokens) "
             "| held-out ppl | full at equal stage passes |", "|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        loss = run["curve"][-1]["held_out_loss"]
        gap = f"{100 * (loss / base - 1):+.2f}%" if base else "-"
        lines.append(f"| {name} | {run['path_len']} of {report['stages']} | {run['stage_passes']} | {loss:.4f} "
                     f"| {gap} | {math.exp(loss):.2f} | {equal_compute(runs, run)} |")
    lines += ["", "| stages dropped (kept) | " + " | ".join(f"{n} ppl (vs 0 dropped)" for n in runs) + " |",
              "|---|" + "---|" * len(runs)]
    for d in range(report["stages"]):
        cells = []
        for run in runs.values():
            row, zero = run["drop"][d], run["drop"][0]["ppl_mean"]
            cells.append(f"{row['ppl_mean']:.2f} ({100 * (row['ppl_mean'] / zero - 1):+.1f}%)")
        lines.append(f"| {d} ({report['stages'] - d}/{report['stages']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def equal_compute(runs: dict, run: dict) -> str:
    """The full path's held-out loss after as many stage passes as `run` made (interpolated on its curve)."""
    if "full" not in runs or run is runs["full"]:
        return "-"
    full = runs["full"]
    tokens = full["curve"][-1]["tokens"] * run["stage_passes"] / full["stage_passes"]
    curve = full["curve"]
    if tokens < curve[0]["tokens"]:
        return "-"
    return f"{np.interp(tokens, [c['tokens'] for c in curve], [c['held_out_loss'] for c in curve]):.4f}"


def draw(report: dict, path: Path) -> None:
    """Left: held-out loss against tokens; right: perplexity against stages dropped at inference."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # drawing only; no global backend switch
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    for name, run in report["runs"].items():
        left.plot([c["tokens"] for c in run["curve"]], [c["held_out_loss"] for c in run["curve"]], marker="o",
                  label=name)
        right.plot([r["dropped"] for r in run["drop"]], [r["ppl_mean"] for r in run["drop"]], marker="o", label=name)
    left.set(xlabel="training tokens", ylabel="held-out loss (full model)", title="convergence at equal tokens")
    right.set(xlabel=f"non-first stages dropped of {report['stages']}", ylabel="held-out perplexity (mean)",
              yscale="log", title="inference with stages dropped")
    right.set_xticks(range(report["stages"]))
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python -m bench.train.skippipe_convergence " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        folder, source = open_tokens(args, Path(scratch))
        batches = fixed_batches(folder, args)
        evals = EvalBatches(folder / "valid", batch_size=2)
        meta = evals.infos[0].meta
        tiny = load_config("tiny").model
        cfg = ModelConfig(vocab_size=meta.vocab_size, dim=args.dim, n_layers=args.layers, n_heads=tiny.n_heads,
                          n_kv_heads=tiny.n_kv_heads, ffn_dim=3 * args.dim, max_seq_len=meta.seq_len,
                          tie_embeddings=tiny.tie_embeddings)
        layout = uniform_layout(cfg, args.stages, seq_len=meta.seq_len)
        planned, makespan_s = skippipe_paths(args)
        print(f"data: {source}; SkipPipe paths {planned}; planned iteration s {makespan_s}", flush=True)
        runs = {}
        for variant in args.variants:
            model, runs[variant] = train(variant, args=args, cfg=cfg, layout=layout, batches=batches, evals=evals,
                                         planned=planned)
            runs[variant]["path_len"] = args.stages if variant == "full" else len(planned["skippipe"][0])
            runs[variant]["drop"] = drop_curve(model, evals, layout, args.stages)
        report = {"command": command, "data": source, "args": vars(args), "model": dataclasses.asdict(cfg),
                  "stages": args.stages, "layout": [list(s) for s in layout.stages], "skippipe_paths": planned,
                  "planned_iteration_s": makespan_s,
                  "held_out_tokens": len(evals) * evals.batch_size * meta.seq_len,
                  "tokens_per_variant": len(batches) * batches[0][1].numel(), "runs": runs, "machine": machine(),
                  "wall_s": round(time.perf_counter() - started, 1)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.name}.json").write_text(json.dumps(report, indent=2, default=str))
    draw(report, OUT / f"{args.name}.png")
    print(f"\n{command}\n\n{tables(report)}\n\nwrote {OUT / args.name}.json and .png "
          f"({report['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
