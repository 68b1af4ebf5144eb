"""Vocabulary-parallel cross-entropy and embedding (training/parallel/vocab.py) on real gloo groups of 2 and 4
processes against the dense computation: F.cross_entropy on the full logits and autograd through the full
(V, d) matrix. Loss, ∂/∂x and every row of ∂/∂W, in fp64 (≤ 1e-12) and fp32 (≤ 1e-6), with a vocabulary that
the ranks do not divide, ignored targets, a shard of padding only, and tied embedding + output weights."""
from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from training.parallel.vocab import (IGNORE, VocabShard, shard_of, unshard, vocab_cross_entropy, vocab_embedding)

TOL = {torch.float64: 1e-12, torch.float32: 1e-6}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data(vocab: int, dtype: torch.dtype, tokens: int = 24, dim: int = 8):
    g = torch.Generator().manual_seed(vocab)
    x = torch.randn(tokens, dim, generator=g, dtype=torch.float64).to(dtype)
    w = torch.randn(vocab, dim, generator=g, dtype=torch.float64).to(dtype)
    targets = torch.randint(0, vocab, (tokens,), generator=g)
    targets[::5] = IGNORE
    targets[1] = vocab - 1  # the last real row, next to the padding
    inputs = torch.randint(0, vocab, (tokens,), generator=g)
    inputs[2] = vocab - 1
    scale = torch.rand(tokens, generator=g, dtype=torch.float64).to(dtype)  # a weighted sum tests grad_loss
    mix = torch.randn(dim, dim, generator=g, dtype=torch.float64).to(dtype) / dim ** 0.5
    return x, w, targets, inputs, scale, mix


def _gathered(grad_shard: torch.Tensor, vocab: int, group: object) -> torch.Tensor:
    parts = [torch.empty_like(grad_shard) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, grad_shard.contiguous(), group=group)
    return unshard(parts, vocab)


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference relative to the reference's scale (at least 1): fp32 losses near 10 round at ~1e-6."""
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / max(1.0, float(b.abs().max())))


def _case(rank: int, world: int, vocab: int, dtype: torch.dtype, barriers: int) -> dict:
    group = dist.group.WORLD
    shard = VocabShard(vocab, world, rank)
    x, w, targets, inputs, scale, mix = _data(vocab, dtype)
    # the dense oracle
    xd, wd = x.clone().requires_grad_(), w.clone().requires_grad_()
    dense = F.cross_entropy(xd @ wd.t(), targets, ignore_index=IGNORE, reduction="none")
    (dense * scale).sum().backward()
    # the sharded output layer
    xs, ws = x.clone().requires_grad_(), shard_of(w, shard).requires_grad_()
    loss = vocab_cross_entropy(xs, ws, targets, shard, group, barriers=barriers)
    (loss * scale).sum().backward()
    out = {"loss": _err(loss, dense), "grad_x": _err(xs.grad, xd.grad),
           "grad_w": _err(_gathered(ws.grad, vocab, group), wd.grad),
           "ignored_zero": float(loss[targets == IGNORE].abs().max()),
           "padding_grad": float(ws.grad[shard.real_rows:].abs().max()) if shard.real_rows < shard.rows else 0.0}
    # tied: tokens -> embedding -> a nonlinear map -> output layer with the same matrix; the map runs on the first
    # rank only, as in a pipeline (the others feed the output layer a copy and backpropagate zeros to the embedding)
    wt = w.clone().requires_grad_()
    h = torch.tanh(wt[inputs] @ mix)
    (F.cross_entropy(h @ wt.t(), targets, ignore_index=IGNORE, reduction="none") * scale).sum().backward()
    ws2 = shard_of(w, shard).requires_grad_()
    h0 = vocab_embedding(inputs, ws2, shard, group)
    hs = torch.tanh(h0 @ mix)
    x_in = hs if rank == 0 else hs * 0 + hs.detach()  # ranks > 0: the broadcast copy, no gradient to the embedding
    tied_loss = vocab_cross_entropy(x_in, ws2, targets, shard, group, barriers=barriers)
    grad_x = torch.autograd.grad((tied_loss * scale).sum(), x_in, retain_graph=True)[0]
    dist.broadcast(grad_x, src=0, group=group)  # the last stage's ∂/∂x (all ranks hold it; check they agree)
    out["grad_x_agree"] = _err(grad_x, torch.autograd.grad((tied_loss * scale).sum(), x_in)[0])
    ws2.grad = None
    h0 = vocab_embedding(inputs, ws2, shard, group)
    hs = torch.tanh(h0 @ mix)
    x_in = hs if rank == 0 else hs * 0 + hs.detach()
    (vocab_cross_entropy(x_in, ws2, targets, shard, group, barriers=barriers) * scale).sum().backward()
    out["tied_grad_w"] = _err(_gathered(ws2.grad, vocab, group), wt.grad)
    return out


def _worker(rank: int, world: int, port: int, path: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        results = []
        for vocab in (4 * 7, 37, 6):  # divisible; not divisible; so small that a 4-rank group has a padding-only shard
            for dtype in (torch.float64, torch.float32):
                for barriers in (1, 2):
                    results.append({"vocab": vocab, "dtype": str(dtype), "barriers": barriers,
                                    **_case(rank, world, vocab, dtype, barriers)})
        with open(f"{path}/rank{rank}.json", "w", encoding="utf-8") as f:
            json.dump(results, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 4])
def test_sharded_vocabulary_layers_equal_the_dense_ones(tmp_path, world):
    mp.spawn(_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=True)
    for rank in range(world):
        for r in json.loads((tmp_path / f"rank{rank}.json").read_text(encoding="utf-8")):
            tol = TOL[torch.float64] if r["dtype"] == "torch.float64" else TOL[torch.float32]
            where = f"rank {rank} of {world}, {r}"
            for key in ("loss", "grad_x", "grad_w", "tied_grad_w", "grad_x_agree"):
                assert r[key] <= tol, where
            assert r["ignored_zero"] == 0.0, where
            assert r["padding_grad"] == 0.0, where


def test_shards_cover_the_vocabulary_once_padded_to_the_ranks():
    # V = 37 over 4 ranks: 40 rows of 10; the last rank holds 7 real rows and 3 of padding (hand count)
    shards = [VocabShard(37, 4, r) for r in range(4)]
    assert [(s.start, s.end, s.real_rows) for s in shards] == [(0, 10, 10), (10, 20, 10), (20, 30, 10), (30, 40, 7)]
    assert VocabShard(6, 4, 3).real_rows == 0 and VocabShard(6, 4, 2).real_rows == 2  # rows of 2: 0-1, 2-3, 4-5, pad
    w = torch.arange(37 * 2, dtype=torch.float64).reshape(37, 2)
    parts = [shard_of(w, s) for s in shards]
    assert parts[3][7:].abs().sum() == 0
    assert torch.equal(unshard(parts, 37), w)
    with pytest.raises(ValueError, match="rank 4 of 4"):
        VocabShard(37, 4, 4)
