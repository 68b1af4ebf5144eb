"""Training tokens/s (and MFU on a GPU) of the baseline trainer, against what the loader can deliver.

Synthetic shards of uniform random token ids (speed does not depend on content) are written to a temporary
folder; `python -m training.pretrain` trains on them with the named config and logs tokens/s per window of
`--log-every` steps; we quote the median window after the first (compilation and allocator warm-up). In
the same process, the loader alone is timed on the same batch shape, so the two rates are comparable.

CPU, the tiny config (one core):  BENCH_CORE=0 python -m bench.train.train_speed --config tiny
GPU, the 150M config with MFU:     python -m bench.train.train_speed --config 150m --steps 60 --tokens 60000000
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
from itertools import islice
from pathlib import Path

import numpy as np

from bench.common import machine, pin_one_core, save_report
from core.shards import ShardMeta, pack, shard_name, write_shard
from training.config import load_config
from training.data.loader import LoaderConfig, TokenLoader
from training.metrics import read_metrics


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", help="configs/train/<name>.yaml or a YAML path")
    parser.add_argument("--vocab", type=int, default=None, help="vocabulary of the synthetic shards "
                                                                  "(default 2048 for tiny, 32768 otherwise)")
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default 256 tiny, 2048)")
    parser.add_argument("--tokens", type=int, default=4_000_000, help="tokens in the synthetic train split")
    parser.add_argument("--steps", type=int, default=120, help="training steps")
    parser.add_argument("--log-every", type=int, default=10, help="steps per tokens/s window")
    parser.add_argument("--ranks", type=int, default=1,
                        help="data-parallel ranks (torchrun, gloo on CPU); >1 on CPU uses one core per rank, unpinned")
    parser.add_argument("--set", nargs="*", default=[], metavar="key=value", help="extra config overrides")
    return parser.parse_args(argv)


def write_synthetic(folder: Path, *, tokens: int, vocab: int, seq_len: int) -> None:
    rng = np.random.default_rng(0)
    for split, n, count in (("train", tokens, 4), ("valid", max(seq_len * 64, tokens // 100), 1)):
        meta = ShardMeta(seq_len=seq_len, vocab_size=vocab, eos_id=0, tokenizer_sha256="0" * 64, split=split)
        for i in range(count):
            rows, _ = pack(rng.integers(0, vocab, n // count + 1, dtype=np.int32), seq_len)
            write_shard(folder / split / shard_name(i, count), rows, meta, row_group_rows=256)


def loader_rate(folder: Path, *, batch_size: int, seconds: float = 5.0) -> float:
    """Input tokens/s of the in-process loader (W=0) on the trainer's batch shape."""
    loader = TokenLoader(folder / "train", LoaderConfig(batch_size=batch_size), rank=0, world=1)
    it = iter(loader)
    next(it)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        inputs, _ = next(it)
        n += inputs.numel()
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    on_gpu = torch.cuda.is_available()
    if not on_gpu:  # one core per rank with one math thread, like every CPU figure in BENCHMARKS.md
        if args.ranks == 1:
            pin_one_core()
        args.set = [*args.set, "train.threads=1", "train.compile=false"]
    cfg = load_config(args.config, args.set)
    tiny = cfg.name == "tiny"
    vocab = args.vocab or (2048 if tiny else 32768)
    seq_len = args.seq_len or (256 if tiny else 2048)
    with tempfile.TemporaryDirectory() as tmp:
        data, run = Path(tmp) / "tokens", Path(tmp) / "run"
        write_synthetic(data, tokens=args.tokens, vocab=vocab, seq_len=seq_len)
        launcher = [sys.executable] if args.ranks == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.ranks}"]
        cmd = [*launcher, "-m", "training.pretrain", "--config", args.config, f"data.path={data}",
               f"output={run}", f"train.steps={args.steps}", f"log.every={args.log_every}", "eval.every=0",
               "eval.batches=2", "checkpoint.every=0", "log.progress=false", "log.tensorboard=false",
               f"model.max_seq_len={seq_len}", *args.set]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ})
        wall = time.perf_counter() - started
        records = [r for r in read_metrics(run) if "tokens_per_s" in r and not r.get("summary")]
        windows = records[1:] or records
        rate = statistics.median(r["tokens_per_s"] for r in windows)
        mfu = [r["mfu"] for r in windows if "mfu" in r]
        summary = next(r for r in read_metrics(run) if r.get("summary"))
        load = loader_rate(data, batch_size=cfg.train.micro_batch_size)
    row = {"config": args.config, "ranks": args.ranks, "vocab": vocab, "seq_len": seq_len, "steps": args.steps,
           "train_tokens_per_s": round(rate), "mfu": round(statistics.median(mfu), 4) if mfu else None,
           "mem_peak_mib": round(windows[-1]["mem_peak_mib"]), "loader_tokens_per_s": round(load),
           "loader_headroom": round(load / rate, 1), "wall_s": round(wall, 1), "final_loss": summary["final_loss"]}
    print(f"device: {torch.cuda.get_device_name() if on_gpu else 'CPU, one core per rank'}")
    print("| config | ranks | seq | vocab | train tokens/s | MFU | peak MiB | loader tokens/s | loader / train |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.config} | {args.ranks} | {seq_len} | {vocab} | {rate:,.0f} | "
          f"{row['mfu'] if row['mfu'] is not None else 'n/a (CPU)'} | {row['mem_peak_mib']:,} | {load:,.0f} | "
          f"{load / rate:,.0f}× |")
    print("command: python -m bench.train.train_speed " + " ".join(argv if argv is not None else sys.argv[1:]))
    save_report(f"train_speed_{args.config}_r{args.ranks}", {"machine": machine(), "rows": [row], "argv": sys.argv[1:]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
