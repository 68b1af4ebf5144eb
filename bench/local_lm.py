"""Local learning on our language model: held-out perplexity at equal tokens vs backprop, and activation memory.

Quality: `python -m training.pretrain` trains the same model (the tiny shape, untied, 8 layers) on the same
token shards, same seed, same steps and tokens, with backprop and with each local method at K = 2 and 4;
we read the final held-out loss of each (real head, whole network) and report the perplexity gap to backprop.
Memory: peak saved-activation bytes of one training step (saved_tensors_hooks, training/memory.py) of each
local method vs backprop on the same model and batch.

python bench/local_lm.py                                     # demo shards (scripts/train_demo.sh), 300 steps
python bench/local_lm.py --data output/tokens --steps 1000
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine, save_report  # noqa: E402

METHODS = ("greedy", "auglocal", "man")
MODEL = ["model.tie_embeddings=false", "model.n_layers=8", "model.dim=128", "model.n_heads=4", "model.n_kv_heads=2",
         "model.ffn_dim=384"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="output/demo/tokens", help="token shards (train/ and valid/)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--blocks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    return parser.parse_args(argv)


def train(args: argparse.Namespace, run: Path, extra: list[str]) -> float:
    """Final held-out loss of one run."""
    from training.metrics import read_metrics

    cmd = [sys.executable, "-m", "training.pretrain", "--config", "tiny", f"data.path={args.data}", f"output={run}",
           f"train.steps={args.steps}", "train.threads=1", "eval.every=0", "checkpoint.every=0",
           "log.tensorboard=false", "log.progress=false", *MODEL, *extra]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return next(r["eval_loss"] for r in read_metrics(run) if r.get("summary"))


def memory(method: str, k: int) -> tuple[int, int]:
    """(local, backprop) peak saved-activation bytes for one step on a batch of 8 x 256 tokens."""
    import torch

    from training.local.core import LocalModel, backprop_step, local_step, plan_modules
    from training.local.llama import aux_builder, backbone, lm_loss
    from training.memory import SavedActivations
    from training.model import Llama, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=1537, dim=128, n_layers=8, n_heads=4, n_kv_heads=2, ffn_dim=384, max_seq_len=256)
    llama = Llama(cfg)
    model = LocalModel(backbone(llama), groups=plan_modules(8, k), aux=aux_builder(method, aux_depth=2))
    x = torch.randint(0, cfg.vocab_size, (8, 256))
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
        base = train(args, Path(tmp) / "bp", [])
        rows.append({"method": "backprop", "K": 1, "eval_loss": base, "ppl": math.exp(base)})
        for k in args.blocks:
            for method in args.methods:
                loss = train(args, Path(tmp) / f"{method}{k}", ["--trainer=local", f"--method={method}",
                                                                f"--blocks={k}"])
                local_b, full_b = memory(method, k)
                rows.append({"method": method, "K": k, "eval_loss": loss, "ppl": math.exp(loss),
                             "ppl_gap_pct": 100 * (math.exp(loss) / math.exp(base) - 1),
                             "activation_ratio": local_b / full_b, "local_mib": local_b / 2**20,
                             "backprop_mib": full_b / 2**20})
                print(rows[-1], flush=True)
    print(f"\n`python bench/local_lm.py {' '.join(argv if argv is not None else sys.argv[1:])}`: tiny shape, 8 layers, "
          f"untied, {args.steps} steps on {args.data}, same tokens and seed for every run\n")
    print("| method | K | held-out loss | perplexity | gap to backprop | activation memory vs backprop |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        gap = f"{r['ppl_gap_pct']:+.1f} %" if "ppl_gap_pct" in r else "–"
        mem = f"{r['activation_ratio']:.2f}× ({r['local_mib']:.0f} / {r['backprop_mib']:.0f} MiB)" \
            if "activation_ratio" in r else "1.00×"
        print(f"| {r['method']} | {r['K']} | {r['eval_loss']:.4f} | {r['ppl']:.3f} | {gap} | {mem} |")
    save_report("local_lm", {"machine": machine(), "args": vars(args), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
