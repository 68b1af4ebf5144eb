"""Peak memory of one training step, local learning vs backprop, each in a fresh process.

Saved-activation bytes (bench/train/local_lm.py) count what autograd keeps; this counts what the process really
holds at its peak: ru_maxrss after building the model, one step's forward + backward (and the optimizer step),
minus the resident size just before the step. The difference is the step's transient memory — activations,
logits, gradients and optimizer state — which is what local learning promises to shrink. Children run with
MALLOC_MMAP_THRESHOLD_=65536 so glibc returns freed tensors at once and the peak RSS is the peak of live memory
(by default glibc raises its mmap threshold after the first big free and keeps freed blocks in the heap, so RSS
would show the allocator's retention — like a GPU caching allocator's reserved, not its allocated, bytes). Our decoder, untied,
vocabulary 4,096; K = 2 and 4 for each method.

python -m bench.train.local_memory                       # 8 layers, dim 256, 8 x 512 tokens
python -m bench.train.local_memory --layers 12 --rows 16
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys


METHODS = ("greedy", "auglocal", "man")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--rows", type=int, default=8, help="sequences per step")
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--blocks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "K"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def rss_mib() -> float:
    """Current resident set size (Linux /proc), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(args: argparse.Namespace, method: str, k: int) -> dict:
    import torch

    from training.local.core import LocalModel, backprop_step, local_step, plan_modules, trainable
    from training.local.lm_backbone import aux_builder, backbone, lm_loss
    from training.model import Llama, ModelConfig

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=args.vocab, dim=args.dim, n_layers=args.layers, n_heads=4, n_kv_heads=2,
                      ffn_dim=3 * args.dim, max_seq_len=args.seq, tie_embeddings=False)
    llama = Llama(cfg)
    model = llama if method == "backprop" else LocalModel(backbone(llama), groups=plan_modules(args.layers, k),
                                                           aux=aux_builder(method, aux_depth=2))
    optimizer = torch.optim.AdamW(trainable(model), lr=1e-4)
    x = torch.randint(0, cfg.vocab_size, (args.rows, args.seq))
    before = rss_mib()
    step = backprop_step if method == "backprop" else local_step
    step(model, x, x.roll(-1, 1), loss_fn=lm_loss())
    optimizer.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    params = sum(p.numel() for p in model.parameters())
    return {"method": method, "K": k, "before_mib": before, "peak_mib": peak, "step_mib": peak - before,
            "params_m": params / 1e6}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args, args.child[0], int(args.child[1]))))
        return 0
    from bench.common import REPO, machine, save_report

    base = [sys.executable, "-m", "bench.train.local_memory", f"--layers={args.layers}", f"--dim={args.dim}", f"--vocab={args.vocab}",
            f"--rows={args.rows}", f"--seq={args.seq}"]
    runs = [("backprop", 1)] + [(m, k) for k in args.blocks for m in METHODS]
    rows = []
    for method, k in runs:
        out = subprocess.run([*base, "--child", method, str(k)], check=True, capture_output=True, text=True, cwd=REPO,
                             env={**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"})
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    bp = rows[0]["step_mib"]
    print(f"\n`python -m bench.train.local_memory {' '.join(argv if argv is not None else sys.argv[1:])}`: {args.layers} "
          f"layers, dim {args.dim}, vocab {args.vocab}, {args.rows} x {args.seq} tokens, one step + AdamW, fresh "
          f"process each\n")
    print("| method | K | parameters | peak RSS | step's own memory (peak − before) | vs backprop |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['K']} | {r['params_m']:.1f} M | {r['peak_mib']:,.0f} MiB | "
              f"{r['step_mib']:,.0f} MiB | {r['step_mib'] / bp:.2f}× |")
    save_report("local_memory", {"machine": machine(), "args": vars(args), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
