"""Tokens/s the training loader delivers (training.data.loader.TokenLoader) with W = 0, 1, 2 DataLoader workers.

Synthetic shards: uniform random token ids below a GPT-2-sized vocabulary (50,257), packed into rows of
seq_len + 1 and written with core.shards.write_shard (zstd, 1,024-row groups like pipelines.tokenize),
~50M tokens in a temporary folder. Random ids compress worse than text tokens, so decoding here is a little
heavier than on real shards. Each setting is timed from a fresh loader: the first batch (worker start and the
first row group) separately, then the steady rate over the following batches. The rate is input tokens,
batch_size x seq_len per batch, i.e. what a trainer consumes. Peak RSS is the loader process plus its workers.

python -m bench.train.loader_speed                      # ~50M tokens, seq_len 2048, batch 8, 20 s per setting
python -m bench.train.loader_speed --tokens 5000000 --seconds 5
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from bench.common import machine, save_report
from core.shards import ShardMeta, pack, shard_name, write_shard
from training.data.loader import LoaderConfig, TokenLoader

VOCAB = 50_257  # GPT-2's vocabulary size, a typical byte-level BPE


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=50_000_000, help="tokens in the synthetic train split")
    parser.add_argument("--shards", type=int, default=8, help="files the tokens are spread over")
    parser.add_argument("--seq-len", type=int, default=2048, help="tokens per training sequence")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per batch (one rank)")
    parser.add_argument("--row-group-rows", type=int, default=1024, help="rows per Parquet row group")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader workers to time")
    parser.add_argument("--seconds", type=float, default=20.0, help="steady-state time per setting")
    return parser.parse_args(argv)


def write_synthetic(folder: Path, args: argparse.Namespace) -> ShardMeta:
    """`args.tokens` random tokens as `args.shards` shards; returns their metadata."""
    meta = ShardMeta(seq_len=args.seq_len, vocab_size=VOCAB, eos_id=0, tokenizer_sha256="0" * 64)
    rng = np.random.default_rng(0)
    per_shard = args.tokens // args.shards
    for i in range(args.shards):
        rows, _ = pack(rng.integers(0, VOCAB, per_shard + 1, dtype=np.int32), args.seq_len)
        write_shard(folder / shard_name(i, args.shards), rows, meta, row_group_rows=args.row_group_rows)
    return meta


def tree_rss_mib() -> float:
    """Resident memory of this process and its children (the DataLoader workers)."""
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def time_loader(folder: Path, args: argparse.Namespace, workers: int) -> dict:
    """First-batch latency, steady tokens/s and peak RSS of one fresh loader."""
    loader = TokenLoader(folder, LoaderConfig(batch_size=args.batch_size, num_workers=workers), rank=0, world=1)
    start = time.perf_counter()
    batches = iter(loader)
    next(batches)
    first_s = time.perf_counter() - start
    count, peak, steady = 0, tree_rss_mib(), time.perf_counter()
    while time.perf_counter() - steady < args.seconds:
        inputs, _ = next(batches)
        count += 1
        if count % 50 == 0:
            peak = max(peak, tree_rss_mib())
    elapsed = time.perf_counter() - steady
    batches.close()
    tokens = count * args.batch_size * args.seq_len
    return {"workers": workers, "first_batch_s": round(first_s, 3), "batches": count,
            "tokens_per_s": round(tokens / elapsed), "batches_per_s": round(count / elapsed, 1),
            "peak_rss_mib": round(peak), "epoch_reached": loader.position().epoch}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="loader_speed.") as tmp:
        folder = Path(tmp) / "train"
        started = time.perf_counter()
        write_synthetic(folder, args)
        write_s = time.perf_counter() - started
        size_mib = sum(p.stat().st_size for p in folder.glob("*.parquet")) / 2**20
        results = [time_loader(folder, args, w) for w in args.workers]
    command = "python -m bench.train.loader_speed " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"\n`{command.strip()}`: {args.tokens:,} tokens in {args.shards} shards ({size_mib:.0f} MiB zstd, "
          f"written in {write_s:.0f} s), seq_len {args.seq_len}, batch {args.batch_size}, "
          f"{args.row_group_rows}-row groups\n")
    print("| workers | first batch (s) | batches/s | tokens/s | peak RSS (MiB) |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['workers']} | {r['first_batch_s']:.2f} | {r['batches_per_s']:.1f} | {r['tokens_per_s']:,} "
              f"| {r['peak_rss_mib']:,} |")
    print()
    return save_report("loader_speed", {"command": command.strip(), "machine": machine(), "tokens": args.tokens,
                                        "shards": args.shards, "size_mib": round(size_mib), "seq_len": args.seq_len,
                                        "batch_size": args.batch_size, "row_group_rows": args.row_group_rows,
                                        "results": results})


if __name__ == "__main__":
    sys.exit(main())
