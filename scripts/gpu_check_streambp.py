"""StreamBP on the GPU check's device: exactness against plain backprop (the CPU tests' model, batch and tolerances,
tests/training/test_streambp.py, run on CUDA), then peak memory and time of one step against plain backprop at
long sequences in the 150m shape, bf16 autocast as the streambp trainer runs it."""
from __future__ import annotations

import time

import torch

from training.model import Llama, ModelConfig
from training.stream import NextToken, StreamConfig, reference_loss, streambp_backward
from training.stream.objectives import IGNORE

EXACT_CHUNKS = (8, 24, 64)  # of the tests' T = 64: eighths, an uneven last chunk, one chunk
GPU_LENGTHS = (4096, 16384, 32768)
CHUNK = 1024  # streambp.chunk and logits_chunk, the config default


def exactness(device: torch.device) -> list[dict]:
    """Largest relative gradient error of StreamBP against plain backprop over every parameter, per dtype/chunk."""
    from tests.training.test_streambp import TOL, batch, grads, model

    rows = []
    for dtype in (torch.float64, torch.float32):
        m = model(dtype).to(device)
        tokens, targets = (t.to(device) for t in batch())
        objective = NextToken(normalizer=float((targets != IGNORE).sum()))
        want_loss = reference_loss(objective, m(tokens), targets)
        want_loss.backward()
        want = grads(m)
        for chunk in EXACT_CHUNKS:
            loss = streambp_backward(m, tokens, targets, objective, StreamConfig(chunk=chunk))
            got = grads(m)
            err = max(float((got[n] - want[n]).abs().max() / want[n].abs().max().clamp_min(1e-30)) for n in want)
            rows.append({"dtype": str(dtype).removeprefix("torch."), "chunk": chunk, "max_rel_grad_err": err,
                         "loss_rel_err": abs(float(loss) - want_loss.item()) / abs(want_loss.item()),
                         "tol": TOL[dtype], "exact": err <= TOL[dtype]})
    return rows


def one_step(model: Llama, tokens: torch.Tensor, method: str) -> float:
    """Forward and backward of one batch-1 sequence; returns the loss."""
    targets = tokens.roll(-1, dims=1)
    objective = NextToken(normalizer=float(tokens.numel()))
    with torch.autocast(tokens.device.type, dtype=torch.bfloat16, enabled=tokens.device.type == "cuda"):
        if method == "streambp":
            return float(streambp_backward(model, tokens, targets, objective, StreamConfig(chunk=CHUNK)))
        loss = reference_loss(objective, model(tokens), targets)
    loss.backward()
    return float(loss)


def memory(device: torch.device, *, lengths: tuple[int, ...], shape: dict) -> list[dict]:
    """Peak allocated memory above the weights and seconds of one step, plain backprop vs StreamBP."""
    cfg = ModelConfig(**shape, max_seq_len=max(lengths))
    model = Llama(cfg).to(device)
    cuda = device.type == "cuda"
    rows = []
    for method in ("plain", "streambp"):
        one_step(model, torch.randint(0, cfg.vocab_size, (1, 256), device=device), method)  # warm-up: kernels
        for seq in lengths:
            model.zero_grad(set_to_none=True)
            tokens = torch.randint(0, cfg.vocab_size, (1, seq), device=device)
            if cuda:
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device) if cuda else 0
            start = time.perf_counter()
            loss = one_step(model, tokens, method)
            if cuda:
                torch.cuda.synchronize(device)
            rows.append({"method": method, "seq": seq, "seconds": round(time.perf_counter() - start, 3), "loss": loss,
                         "peak_mib": round((torch.cuda.max_memory_allocated(device) - base) / 2**20) if cuda else None})
    return rows


def streambp_part(*, dry_run: bool) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() and not dry_run else "cpu")
    shape = ({"vocab_size": 512, "dim": 64, "n_layers": 2, "n_heads": 4} if dry_run else
             {"vocab_size": 32768, "dim": 768, "n_layers": 12, "n_heads": 12, "ffn_dim": 2048})  # configs/train/150m
    exact = exactness(device)
    mem = memory(device, lengths=(256, 512) if dry_run else GPU_LENGTHS, shape=shape)
    by = {(r["method"], r["seq"]): r for r in mem}
    ratios = {seq: round(by[("streambp", seq)]["peak_mib"] / by[("plain", seq)]["peak_mib"], 3)
              for _, seq in by if by[("plain", seq)]["peak_mib"]}
    return {"device": str(device), "exact": all(r["exact"] for r in exact), "exactness": exact, "memory": mem,
            "shape": shape, "chunk": CHUNK, "streambp_over_plain_peak": ratios}
