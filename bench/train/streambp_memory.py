"""StreamBP vs plain backprop vs per-layer gradient checkpointing: memory, longest sequence under a cap, time.

Each (method, sequence length) runs in a fresh process pinned to one core with one math thread: build the model,
run one untimed warm-up step at a short length, then one measured training step (forward + backward, fp32,
batch 1) at the target length. Reported per run:
- step memory: peak RSS during the step minus RSS just before it (what the step needs beyond weights);
- saved activations: peak live bytes autograd holds for backward (saved_tensors_hooks, training/memory.py)
  plus the layer inputs a method keeps itself (checkpointing and StreamBP keep one per layer);
- step time, wall seconds of forward + backward (backward dominates; both methods recompute the forward once),
  and the process's CPU seconds for the same step, which other load on the machine disturbs far less; the
  time ratios use CPU seconds.
Methods: plain; ckpt = torch.utils.checkpoint around every block (non-reentrant), full logits as in the
paper's baseline (HF gradient checkpointing); ckpt+chunked-loss = the same with the head and loss also
checkpointed in chunks of 1,024 tokens, a stronger baseline; streambp with layer and logits chunks of 1,024 tokens (the config default).

BENCH_CORE=1 python -m bench.train.streambp_memory                    # 1k..16k, ~15 minutes
python -m bench.train.streambp_memory --lengths 1024 2048 --cap-mib 512
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time

from bench.common import CORE, REPO, machine, one_core_env, save_report

METHODS = ("plain", "ckpt", "ckpt+chunked-loss", "streambp")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32768, help="a 32k vocabulary, like Llama 2 / Mistral")
    parser.add_argument("--chunk", type=int, default=1024, help="StreamBP layer chunk in tokens (streambp.chunk)")
    parser.add_argument("--logits-chunk", type=int, default=1024,
                        help="tokens per head/loss chunk for StreamBP and ckpt+chunked-loss (fixed, as the paper's "
                             "logits_chunk_size: the logits of a chunk are chunk x vocab floats)")
    parser.add_argument("--cap-mib", type=float, default=1024.0, help="memory cap for the longest-sequence table")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per (method, length), alternated; the table shows medians")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: method:T in a child
    return parser.parse_args(argv)


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    """Sample this process's RSS every 2 ms while a step runs (ru_maxrss cannot be reset between phases)."""

    def __init__(self) -> None:
        self.peak, self._stop = rss_mib(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib())
            time.sleep(0.002)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


def one_run(method: str, seq: int, args: argparse.Namespace) -> dict:
    import torch
    from torch.utils.checkpoint import checkpoint

    from training.memory import SavedActivations
    from training.model import Llama, ModelConfig
    from training.stream import NextToken, StreamConfig, reference_loss, streambp_backward
    from training.stream.objectives import token_logprobs

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=args.vocab, dim=args.dim, n_layers=args.layers, n_heads=args.heads,
                      ffn_dim=int(8 * args.dim / 3), max_seq_len=max(args.lengths))
    model = Llama(cfg)
    layer_inputs = args.layers * seq * args.dim * 4  # what ckpt and StreamBP keep per layer (batch 1, fp32)

    def step(tokens: torch.Tensor, meter: SavedActivations | None) -> float:
        targets = tokens.roll(-1, dims=1)
        objective = NextToken(normalizer=float(tokens.numel()))
        t = tokens.shape[1]
        if method == "streambp":
            loss = streambp_backward(model, tokens, targets, objective,
                                     StreamConfig(chunk=args.chunk, logits_chunk=args.logits_chunk))
            if meter is not None:
                meter.add_held(layer_inputs)
            return float(loss)
        if method == "plain":
            loss = reference_loss(objective, model(tokens), targets)
        else:
            h = model.embed(tokens)
            rope = model.rope_for(t)
            for layer in model.layers.values():
                h = checkpoint(layer, h, rope, use_reentrant=False)
            if meter is not None and method != "plain":
                meter.add_held(layer_inputs)
            if method == "ckpt":
                loss = reference_loss(objective, model.head(model.norm(h)), targets)
            else:
                chunk = args.logits_chunk

                def chunk_loss(hc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
                    return -token_logprobs(model.head(model.norm(hc)), yc).sum() / t

                loss = sum(checkpoint(chunk_loss, h[:, s:s + chunk], targets[:, s:s + chunk], use_reentrant=False)
                           for s in range(0, t, chunk))
        loss.backward()
        return float(loss)

    step(torch.randint(0, args.vocab, (1, 256)), None)  # warm-up: kernels, allocator
    model.zero_grad(set_to_none=False)
    tokens = torch.randint(0, args.vocab, (1, seq))
    before = rss_mib()
    with PeakRss() as peak, SavedActivations(model) as meter:
        start, cpu = time.perf_counter(), time.process_time()
        loss = step(tokens, meter)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"method": method, "seq": seq, "step_mib": round(peak.peak - before, 1),
            "saved_mib": round(meter.peak_bytes / 2**20, 1), "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3), "loss": loss}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        method, seq = args.one.rsplit(":", 1)
        print(json.dumps(one_run(method, int(seq), args)))
        return 0
    rows = []
    passthrough = [f"--dim={args.dim}", f"--layers={args.layers}", f"--heads={args.heads}", f"--vocab={args.vocab}",
                   f"--chunk={args.chunk}", f"--logits-chunk={args.logits_chunk}", "--lengths", *map(str, args.lengths)]
    # methods alternate within each repetition, so drift hits every method alike
    for seq, _rep, method in ((s, r, m) for s in args.lengths for r in range(args.repeats) for m in args.methods):
        out = subprocess.run(["taskset", "-c", str(CORE), sys.executable, "-m", "bench.train.streambp_memory",
                              f"--one={method}:{seq}", *passthrough], capture_output=True, text=True, cwd=REPO,
                             env=one_core_env())
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            rows.append({"method": method, "seq": seq, "error": out.returncode})
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{method:18s} T={seq:6d} step {r['step_mib']:8.1f} MiB  saved {r['saved_mib']:8.1f} MiB  "
              f"{r['seconds']:7.2f} s ({r['cpu_seconds']:.2f} s CPU)", flush=True)
    by = {}
    for key in {(r["method"], r["seq"]) for r in rows if "error" not in r}:
        runs = sorted((r for r in rows if "error" not in r and (r["method"], r["seq"]) == key),
                      key=lambda r: r["cpu_seconds"])
        by[key] = {**runs[len(runs) // 2], "step_mib": max(r["step_mib"] for r in runs)}  # median time, worst memory
    print(f"\n`BENCH_CORE={CORE} python -m bench.train.streambp_memory "
          + " ".join(argv if argv is not None else sys.argv[1:])
          + f"`: {args.layers} layers, dim {args.dim}, {args.heads} heads, vocab {args.vocab}, batch 1, fp32, "
          f"StreamBP chunk {args.chunk}, logits chunk {args.logits_chunk}\n")
    print("| T | " + " | ".join(f"{m} MiB (saved) / CPU s" for m in args.methods) + " | streambp / ckpt time |")
    print("|---:|" + "---:|" * (len(args.methods) + 1))
    for seq in args.lengths:
        cells = []
        for m in args.methods:
            r = by.get((m, seq))
            cells.append(f"{r['step_mib']:,.0f} ({r['saved_mib']:,.0f}) / {r['cpu_seconds']:.2f}" if r else "–")
        ratio = (by[("streambp", seq)]["cpu_seconds"] / by[("ckpt", seq)]["cpu_seconds"]
                 if ("streambp", seq) in by and ("ckpt", seq) in by else None)
        print(f"| {seq:,} | " + " | ".join(cells) + f" | {ratio:.2f}× |" if ratio else " | – |")
    longest = {m: max((s for s in args.lengths if (m, s) in by and by[(m, s)]["step_mib"] <= args.cap_mib), default=0)
               for m in args.methods}
    print(f"\nlongest measured sequence whose step fits in {args.cap_mib:,.0f} MiB: "
          + ", ".join(f"{m} {v:,}" for m, v in longest.items()))
    save_report("streambp_memory", {"machine": machine(), "args": vars(args), "rows": rows, "longest": longest})
    return 0


if __name__ == "__main__":
    sys.exit(main())
