"""Decoupled pipelining of local learning: each rank runs one gradient-isolated module and never waits for a
backward pass from later stages.

Rank k receives microbatch j's activation from rank k−1 (rank 0 embeds tokens), runs its module, sends the
detached output on at once, then takes its local loss (aux net, or the real head on the last rank) and
backpropagates inside the module. The only waiting is the fill — rank k starts after k forwards — and there is
no drain: a backprop pipeline's ranks idle (p−1)(F+B) per step, these (p−1)·F.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

import torch
import torch.distributed as dist
from torch import nn

from training.local.core import LocalModel, LossFn
from training.parallel.actions import Span


@dataclass
class DecoupledStage:
    """One module of a LocalModel on its own rank, with its aux net (or the real head on the last stage)."""

    stage: int
    part: nn.Module  # the module's blocks; stage 0's first block embeds tokens
    head: nn.Module  # the local head: an aux net, or the real head on the last stage
    loss_fn: LossFn  # loss of one microbatch's logits, already normalised for the step
    hidden: int
    prev: int | None = None  # global rank that sends this stage its inputs (None: the first stage)
    next: int | None = None  # global rank this stage sends its outputs to (None: the last stage)
    group: object = None
    _sends: list = field(default_factory=list)

    @classmethod
    def of(cls, model: LocalModel, rank: int, *, loss_fn: LossFn, hidden: int, group: object = None) -> "DecoupledStage":
        """Stage `rank` of a whole LocalModel laid out one module per rank, ranks 0..K-1 (tests, benchmarks)."""
        last = len(model.parts) - 1
        return cls(stage=rank, part=model.parts[rank], head=model.head if rank == last else model.auxes[rank],
                   loss_fn=loss_fn, hidden=hidden, prev=rank - 1 if rank else None,
                   next=rank + 1 if rank < last else None, group=group)

    def receive(self, tokens: torch.Tensor, tag: int) -> torch.Tensor:
        """This stage's input for a microbatch: the tokens on the first stage, else the previous stage's output."""
        if self.prev is None:
            return tokens
        inputs = torch.empty(*tokens.shape, self.hidden, device=tokens.device)
        dist.recv(inputs, self.prev, group=self.group, tag=tag)
        return inputs

    def send(self, h: torch.Tensor, tag: int) -> None:
        if self.next is not None:
            self._sends.append(dist.isend(h.detach().float().contiguous(), self.next, group=self.group, tag=tag))

    def drain_sends(self) -> None:
        for handle in self._sends:
            handle.wait()
        self._sends.clear()

    def run(self, microbatches: list[tuple[torch.Tensor, torch.Tensor]], *, spans: list[Span] | None = None) -> float:
        """One step over the microbatches: gradients accumulate in this stage's module and head; returns the loss."""
        total = 0.0
        for j, (tokens, targets) in enumerate(microbatches):
            inputs = self.receive(tokens, j)  # waiting here is idle time, not part of the forward span
            start = time.perf_counter()
            h = self.part(inputs)
            self.send(h, j)
            mid = time.perf_counter()
            loss = self.loss_fn(self.head(h), targets)
            loss.backward()
            total += loss.item()
            if spans is not None:
                spans.append(Span(self.stage, self.stage, "F", j, start, mid))
                spans.append(Span(self.stage, self.stage, "B", j, mid, time.perf_counter()))
        self.drain_sends()
        return total

    @torch.no_grad()
    def infer(self, tokens: torch.Tensor, tag: int = 0) -> torch.Tensor | None:
        """Forward one batch through the whole pipeline; the last stage returns the real head's logits."""
        h = self.part(self.receive(tokens, tag))
        self.send(h, tag)
        self.drain_sends()
        return self.head(h) if self.next is None else None


def send_flat(tensors: Iterable[torch.Tensor], dst: int, *, tag: int, group: object = None) -> object:
    """Start sending tensors as one flat fp32 message (parameters, statistics); wait on the returned handle."""
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
    return dist.isend(flat, dst, group=group, tag=tag)


def receive_flat(like: list[torch.Tensor], src: int, *, tag: int, group: object = None) -> list[torch.Tensor]:
    """Receive a send_flat message into tensors shaped (and typed) like `like`."""
    flat = torch.empty(sum(t.numel() for t in like), device=like[0].device)
    dist.recv(flat, src, group=group, tag=tag)
    out, offset = [], 0
    for t in like:
        out.append(flat[offset:offset + t.numel()].view_as(t).to(t.dtype))
        offset += t.numel()
    return out
