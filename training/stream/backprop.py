"""StreamBP: exact backpropagation through our decoder in sequence chunks (Luo et al., NeurIPS 2025).

A layer's weight gradient is a sum over sequence chunks of that chunk's contribution, and causality means
chunk [s, e) needs only the keys and values of positions [0, e). So, per optimizer micro-batch:

1. Forward without autograd, keeping only each layer's input (as gradient checkpointing does); attention runs
   on the whole sequence in the fused causal kernel and the MLP in chunks, so nothing of size T x ffn exists.
2. Head and loss, streamed: logits exist for one chunk at a time (objectives.py), giving dL/dh of the last layer.
3. Each layer backward, last to first, streamed: keys and values of the whole sequence are recomputed once with
   autograd and detached into leaves; each chunk recomputes its queries, attention over the prefix, the MLP, and
   backpropagates its slice of dL/dh, accumulating weight gradients and the key/value leaves' gradients; a final
   backward from the keys and values finishes the layer. Only one chunk's intermediates are alive at a time.
4. The embedding backward from dL/dh of the first layer.

Differences from the reference implementation (Ledzy/StreamBP): keys and values are projected once per layer
rather than per chunk, and the model is ours, so nothing depends on a transformers version. Gradients equal
plain backprop to rounding (tests/training/test_streambp.py checks every parameter in fp64 and fp32).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from training.model import Llama
from training.model.llama import Block
from training.stream.objectives import Objective, token_logprobs


def chunk_bounds(length: int, chunk: int) -> list[tuple[int, int]]:
    if chunk < 1:
        raise ValueError(f"chunk size must be at least 1, got {chunk}")
    return [(s, min(s + chunk, length)) for s in range(0, length, chunk)]


@torch.no_grad()
def layer_forward(layer: Block, x: torch.Tensor, rope: torch.Tensor, chunk: int) -> torch.Tensor:
    """The block's output without autograd: attention over the whole sequence (fused causal kernel, no T x T
    scores kept), the token-wise MLP in chunks, so no (T, ffn) tensor is ever built."""
    k, v = layer.kv(x, rope)
    h = x + layer.attn.attend(layer.attn_norm(x), k, v, rope)
    del k, v
    for s, e in chunk_bounds(x.shape[1], chunk):
        hc = h[:, s:e]
        h[:, s:e] = hc + layer.mlp(layer.mlp_norm(hc))
    return h


def layer_backward(layer: Block, x: torch.Tensor, grad_out: torch.Tensor, rope: torch.Tensor,
                   chunk: int) -> torch.Tensor:
    """Accumulate the block's parameter gradients for output gradient grad_out; return dL/dx."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        k, v = layer.kv(x, rope)
    k_leaf, v_leaf = k.detach().requires_grad_(True), v.detach().requires_grad_(True)
    grad_x = torch.zeros_like(x)
    for s, e in chunk_bounds(x.shape[1], chunk):
        xc = x.detach()[:, s:e].requires_grad_(True)
        with torch.enable_grad():
            out = layer.forward_chunk(xc, k_leaf[:, :, :e], v_leaf[:, :, :e], rope[:, s:e])
        torch.autograd.backward(out, grad_out[:, s:e])
        grad_x[:, s:e] = xc.grad
    torch.autograd.backward((k, v), (k_leaf.grad, v_leaf.grad))  # through k/v projections and the norm, into x
    return grad_x + x.grad


def head_backward(model: Llama, h: torch.Tensor, targets: torch.Tensor, objective: Objective,
                  chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and dL/dh for the last hidden states h (B, T, d); logits exist for one chunk at a time."""
    weights = objective.weights(targets)
    bounds = chunk_bounds(h.shape[1], chunk)

    def logprobs(hc: torch.Tensor, s: int, e: int) -> torch.Tensor:
        return token_logprobs(model.head(model.norm(hc)), targets[:, s:e])

    if objective.linear:
        scale = None
    else:  # pass 1: the sums S without autograd, then dF/dS on the small (J, B) tensor
        with torch.no_grad():
            sums = sum((weights[..., s:e].to(h.dtype) * logprobs(h[:, s:e], s, e).unsqueeze(0)).sum(-1)
                       for s, e in bounds)
        sums = sums.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = objective.loss(sums)
        (scale,) = torch.autograd.grad(loss, sums)
    grad_h = torch.zeros_like(h)
    total = torch.zeros((), dtype=torch.float64, device=h.device)
    for s, e in bounds:
        hc = h.detach()[:, s:e].requires_grad_(True)
        with torch.enable_grad():
            logp = logprobs(hc, s, e)
            w = weights[..., s:e].to(logp.dtype)
            if scale is None:  # linear: F(S) = sum_j -S_j, so the chunk's loss is its own term
                part = objective.loss((w * logp.unsqueeze(0)).sum(-1))
            else:
                part = (scale.unsqueeze(-1).to(logp.dtype) * w * logp.unsqueeze(0)).sum()
        part.backward()
        grad_h[:, s:e] = hc.grad
        if scale is None:
            total += part.detach().double()
    return (total if scale is None else loss.detach()), grad_h


@dataclass(frozen=True)
class StreamConfig:
    """Sequence chunk sizes: smaller chunks hold less at once and run more, smaller kernels."""

    chunk: int
    logits_chunk: int | None = None
    """Chunk of the head and loss (None = chunk); the logits of one chunk are chunk x vocab."""


def streambp_backward(model: Llama, tokens: torch.Tensor, targets: torch.Tensor, objective: Objective,
                      cfg: StreamConfig) -> torch.Tensor:
    """Accumulate into .grad the gradients of `objective` for one micro-batch; return its loss (no graph kept)."""
    rope = model.rope_for(tokens.shape[1])
    with torch.no_grad():
        h = model.embed(tokens)
        inputs = []
        for layer in model.layers.values():
            inputs.append(h)
            h = layer_forward(layer, h, rope, cfg.chunk)
    loss, grad = head_backward(model, h, targets, objective, cfg.logits_chunk or cfg.chunk)
    del h
    layers = list(model.layers.values())
    while inputs:  # last layer first; each saved input is dropped as soon as its layer is done
        grad = layer_backward(layers[len(inputs) - 1], inputs.pop(), grad, rope, cfg.chunk)
    with torch.enable_grad():
        emb = model.embed(tokens)
    torch.autograd.backward(emb, grad)
    return loss
