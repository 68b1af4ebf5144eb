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

import torch
import torch.distributed as dist
from torch import nn

from training.local.core import LocalModel, LossFn
from training.parallel.actions import Span


@dataclass
class DecoupledStage:
    """Module `rank` of a LocalModel on its own rank, with its aux net (or the real head on the last rank)."""

    rank: int
    model: LocalModel
    loss_fn: LossFn
    hidden: int
    group: object = None
    _sends: list = field(default_factory=list)

    @property
    def last(self) -> bool:
        return self.rank == len(self.model.parts) - 1

    def local_head(self) -> nn.Module:
        return self.model.head if self.last else self.model.auxes[self.rank]

    def run(self, microbatches: list[tuple[torch.Tensor, torch.Tensor]], *, spans: list[Span] | None = None) -> float:
        """One step over the microbatches: gradients accumulate in this rank's module and head (mean over them)."""
        part, head, total = self.model.parts[self.rank], self.local_head(), 0.0
        for j, (tokens, targets) in enumerate(microbatches):
            start = time.perf_counter()
            if self.rank == 0:
                inputs = tokens
            else:
                inputs = torch.empty(tokens.shape[0], tokens.shape[1], self.hidden)
                dist.recv(inputs, self.rank - 1, group=self.group, tag=j)
            h = part(inputs)
            if not self.last:
                self._sends.append(dist.isend(h.detach().contiguous(), self.rank + 1, group=self.group, tag=j))
            mid = time.perf_counter()
            loss = self.loss_fn(head(h), targets) / len(microbatches)
            loss.backward()
            total += loss.item()
            if spans is not None:
                spans.append(Span(self.rank, self.rank, "F", j, start, mid))
                spans.append(Span(self.rank, self.rank, "B", j, mid, time.perf_counter()))
        for handle in self._sends:
            handle.wait()
        self._sends.clear()
        return total
