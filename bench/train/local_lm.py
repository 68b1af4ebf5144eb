"""Local learning on our language model: held-out perplexity at equal tokens vs backprop, and activation memory.

Quality: `python -m training.pretrain` trains the same model (the tiny shape, untied, 8 layers) on the same
token shards, same seed, same steps and tokens, with backprop and with each local method at K = 2 and 4;
we read the final held-out loss of each (real head, whole network) and report the perplexity gap to backprop.
Memory: peak saved-activation bytes of one training step (saved_tensors_hooks, training/memory.py) of each
local method vs backprop on the same model and batch.

python -m bench.train.local_lm                                     # demo shards (scripts/train_demo.sh), 300 steps
python -m bench.train.local_lm --data output/tokens --steps 1000
python -m bench.train.local_lm --data output/real/tokens --dim 256 --ffn 768 --micro-batch 4 --steps 440 --eval-batches 120
                                                             # real shards (scripts/real_shards.sh), a wider model
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, save_report

METHODS = ("greedy", "auglocal", "man")


def model_overrides(args: argparse.Namespace) -> list[str]:
    """The model's shape as training.pretrain overrides (defaults: the tiny shape with 8 layers, untied)."""
    return ["model.tie_embeddings=false", f"model.n_layers={args.layers}", f"model.dim={args.dim}",
            f"model.n_heads={args.heads}", f"model.n_kv_heads={args.kv_heads}", f"model.ffn_dim={args.ffn}"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="output/demo/tokens", help="token shards (train/ and valid/)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--blocks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--ffn", type=int, default=384, help="SwiGLU hidden size")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="sequences per step (default: the tiny config's, 8); also the memory probe's batch")
    parser.add_argument("--eval-batches", type=int, default=None,
                        help="held-out batches of the final eval (default: the tiny config's, 16)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep each run's folder (metrics.jsonl: the training curve) under this folder")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more training.pretrain overrides for every run, e.g. optim.lr=1e-3 optim.warmup_steps=50")
    return parser.parse_args(argv)


def run_overrides(args: argparse.Namespace) -> list[str]:
    """Overrides shared by every run: same tokens, seed and schedule for each method."""
    extra = model_overrides(args)
    if args.micro_batch is not None:
        extra.append(f"train.micro_batch_size={args.micro_batch}")
    if args.eval_batches is not None:
        extra.append(f"eval.batches={args.eval_batches}")
    return extra + list(args.set)


def train(args: argparse.Namespace, run: Path, extra: list[str]) -> dict:
    """The summary of one run: final held-out loss, last train loss, tokens, wall and train seconds."""
    from training.metrics import read_metrics

    cmd = [sys.executable, "-m", "training.pretrain", "--config", "tiny", f"data.path={args.data}", f"output={run}",
           f"train.steps={args.steps}", "train.threads=1", "eval.every=0", "checkpoint.every=0",
           "checkpoint.resume=false", "--overwrite", "log.tensorboard=false", "log.progress=false", *run_overrides(args), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stderr[-3000:]}")
    summary = next(r for r in read_metrics(run) if r.get("summary"))
    return {"eval_loss": summary["eval_loss"], "eval_tokens": summary.get("eval_tokens"),
            "final_train_loss": summary.get("final_loss"), "tokens": summary.get("tokens"),
            "train_s": summary.get("train_s"), "wall_s": round(time.perf_counter() - start, 1)}


def data_shape(data: str) -> tuple[int, int]:
    """(vocab size, seq_len) of the token shards (manifest.json of pipelines.tokenize)."""
    meta = json.loads((Path(data) / "manifest.json").read_text())
    return meta["vocab_size"], meta["seq_len"]


def memory(args: argparse.Namespace, method: str, k: int) -> tuple[int, int]:
    """(local, backprop) peak saved-activation bytes for one step of the run's model on one micro-batch."""
    import torch

    from training.local.core import LocalModel, backprop_step, local_step, plan_modules
    from training.local.lm_backbone import aux_builder, backbone, lm_loss
    from training.memory import SavedActivations
    from training.model import Llama, ModelConfig

    torch.manual_seed(0)
    vocab, seq_len = data_shape(args.data)
    cfg = ModelConfig(vocab_size=vocab, dim=args.dim, n_layers=args.layers, n_heads=args.heads,
                      n_kv_heads=args.kv_heads, ffn_dim=args.ffn, max_seq_len=seq_len)
    llama = Llama(cfg)
    model = LocalModel(backbone(llama), groups=plan_modules(args.layers, k), aux=aux_builder(method, aux_depth=2))
    x = torch.randint(0, cfg.vocab_size, (args.micro_batch or 8, seq_len))
    with SavedActivations(model) as local:
        local_step(model, x, x.roll(-1, 1), loss_fn=lm_loss())
    with SavedActivations(llama) as full:
        backprop_step(llama, x, x.roll(-1, 1), loss_fn=lm_loss())
    return local.peak_bytes, full.peak_bytes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (Path(args.data) / "train").is_dir():
        print(f"{args.data}/train not found: run `bash scripts/train_demo.sh` first or pass --data", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = str(args.keep)
        run = train(args, Path(tmp) / "bp", [])
        base = run["eval_loss"]
        rows.append({"method": "backprop", "K": 1, **run, "ppl": math.exp(base)})
        print(rows[-1], flush=True)
        for k in args.blocks:
            for method in args.methods:
                run = train(args, Path(tmp) / f"{method}{k}", ["--trainer=local", f"--method={method}",
                                                               f"--blocks={k}"])
                loss = run["eval_loss"]
                local_b, full_b = memory(args, method, k)
                rows.append({"method": method, "K": k, **run, "ppl": math.exp(loss),
                             "ppl_gap_pct": 100 * (math.exp(loss) / math.exp(base) - 1),
                             "activation_ratio": local_b / full_b, "local_mib": local_b / 2**20,
                             "backprop_mib": full_b / 2**20})
                print(rows[-1], flush=True)
    vocab, seq_len = data_shape(args.data)
    print(f"\n`python -m bench.train.local_lm {' '.join(argv if argv is not None else sys.argv[1:])}`: {args.layers} layers, "
          f"dim {args.dim}, {args.heads} heads ({args.kv_heads} kv), SwiGLU {args.ffn}, untied, vocab {vocab}, "
          f"seq {seq_len}; {args.steps} steps of {rows[0]['tokens'] // args.steps:,} tokens on {args.data}, same "
          f"tokens and seed for every run; held-out loss over {rows[0]['eval_tokens']:,} tokens\n")
    print("| method | K | held-out loss | perplexity | gap to backprop | activation memory vs backprop |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        gap = f"{r['ppl_gap_pct']:+.1f} %" if "ppl_gap_pct" in r else "–"
        mem = f"{r['activation_ratio']:.2f}× ({r['local_mib']:.0f} / {r['backprop_mib']:.0f} MiB)" \
            if "activation_ratio" in r else "1.00×"
        print(f"| {r['method']} | {r['K']} | {r['eval_loss']:.4f} | {r['ppl']:.3f} | {gap} | {mem} |")
    save_report("local_lm", {"machine": machine(), "args": {k: str(v) if isinstance(v, Path) else v
                                                             for k, v in vars(args).items()}, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
