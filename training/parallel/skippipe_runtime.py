"""Execute a SkipPipe schedule with real stage modules over point-to-point messages (gloo or NCCL).

Every rank is one node of the plan (`training/parallel/skippipe.py`): it holds the layers of its stage, the
embedding if it is a stage-0 node, and a replica of the final norm and head, because a microbatch's loss is
computed wherever its path ends. A node replays its program in order: a forward receives the activation from
the previous node of the path (or embeds tokens), runs its layers, and sends on (or computes the loss); a
backward receives the output gradient (or starts from the loss) and sends the input gradient back. Messages
are tagged by microbatch and direction, so two nodes never deadlock on message order, and sends are
asynchronous. With `link_latency`, each message is held back until its link's latency has passed since it was
sent, emulating a geo-distributed network on one machine (the receiver waits; the sender does not).

After the iteration, replicas agree again: a stage's layers are summed over the nodes of that stage, the
norm and head over all nodes, the embedding over stage-0 nodes (over all nodes when tied to the head).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from training.model import Llama
from training.parallel.actions import Span
from training.parallel.partition import Layout
from training.parallel.paths import stage_layers
from training.parallel.skippipe import Schedule, Step

IGNORE = -100


def node_module(full: Llama, layout: Layout, stage: int) -> Llama:
    """A copy of the model holding this stage's layers, the embedding on stage 0, and the norm and head."""
    import copy

    part = copy.deepcopy(full)
    keep = {str(i) for i in stage_layers(layout)[stage]}
    for name in list(part.layers):
        if name not in keep:
            del part.layers[name]
    if stage != 0 and not full.cfg.tie_embeddings:
        part.embed = None
    return part


@dataclass
class SkipPipeNode:
    """One rank's share of a SkipPipe run."""

    node: int
    stage: int
    module: Llama
    schedule: Schedule
    link_latency: np.ndarray | None = None
    stage_group: object = None  # the nodes of this stage (replicas of its layers)
    stage0_group: object = None  # the stage-0 nodes (replicas of the embedding)
    spans: list[Span] | None = None
    _handles: list = field(default_factory=list)

    def tag(self, m: int, backward: bool) -> int:
        return 2 * (2 * m + int(backward))

    def send(self, tensor: torch.Tensor, dst: int, tag: int) -> None:
        stamp = torch.tensor([time.time()], dtype=torch.float64)
        self._handles.append(dist.isend(tensor.detach().contiguous(), dst, tag=tag))
        self._handles.append(dist.isend(stamp, dst, tag=tag + 1))

    def recv(self, shape: tuple[int, ...], src: int, tag: int, dtype: torch.dtype) -> torch.Tensor:
        out = torch.empty(shape, dtype=dtype)
        stamp = torch.empty(1, dtype=torch.float64)
        dist.recv(out, src, tag=tag)
        dist.recv(stamp, src, tag=tag + 1)
        if self.link_latency is not None:
            wait = float(stamp) + float(self.link_latency[src][self.node]) - time.time()
            if wait > 0:
                time.sleep(wait)
        return out

    def run(self, microbatches: list[tuple[torch.Tensor, torch.Tensor]], *, tokens: float,
            train: bool = True) -> float:
        """One iteration of this node's program; returns the loss this node computed (summed, / tokens).

        train=False runs the forwards only, without autograd (evaluation)."""
        m_rows, seq = microbatches[0][0].shape
        shape, dtype = (m_rows, seq, self.module.cfg.dim), torch.float32
        rope = self.module.rope_for(seq)
        saved_in: dict[int, torch.Tensor] = {}
        saved_out: dict[int, torch.Tensor] = {}
        total = 0.0
        for step in self.schedule.program(self.node):
            if not train and step.kind == "B":
                continue
            start = time.perf_counter()
            if step.kind == "F":
                with torch.set_grad_enabled(train):
                    total += self.forward(step, microbatches, shape, dtype, rope, saved_in, saved_out, tokens)
            else:
                self.backward(step, shape, dtype, saved_in, saved_out)
            if self.spans is not None:
                self.spans.append(Span(self.node, step.stage, step.kind, step.microbatch, start, time.perf_counter()))
        for handle in self._handles:
            handle.wait()
        self._handles.clear()
        saved_in.clear()
        saved_out.clear()
        return total

    def forward(self, step: Step, microbatches: list, shape: tuple, dtype: torch.dtype, rope: torch.Tensor,
                saved_in: dict, saved_out: dict, tokens: float) -> float:
        m = step.microbatch
        if step.src is None:
            h = self.module.embed(microbatches[m][0])
        else:
            h = self.recv(shape, step.src, self.tag(m, False), dtype).requires_grad_(torch.is_grad_enabled())
            saved_in[m] = h
        for layer in self.module.layers.values():
            h = layer(h, rope)
        if step.dst is None:  # the path ends here: the loss
            logits = self.module.head(self.module.norm(h))
            targets = microbatches[m][1]
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=IGNORE, reduction="sum") / tokens
            saved_out[m] = loss
            return float(loss.detach())
        self.send(h, step.dst, self.tag(m, False))
        saved_out[m] = h
        return 0.0

    def backward(self, step: Step, shape: tuple, dtype: torch.dtype, saved_in: dict, saved_out: dict) -> None:
        m = step.microbatch
        out = saved_out.pop(m)
        if step.src is None:
            out.backward()
        else:
            out.backward(self.recv(shape, step.src, self.tag(m, True), dtype))
        inp = saved_in.pop(m, None)
        if step.dst is not None and inp is not None:
            self.send(inp.grad, step.dst, self.tag(m, True))

    def replicas(self, name: str, *, stage_nodes: int, stage0_nodes: int, world: int) -> int:
        """How many nodes hold a copy of parameter `name` (to count it once in a global norm)."""
        if name.startswith("layers."):
            return stage_nodes
        if name.startswith(("norm.", "head.")) or self.module.cfg.tie_embeddings:
            return world
        return stage0_nodes

    def sync_replicas(self) -> None:
        """Sum gradients over the replicas of each part, so every replica takes the same optimizer step."""
        groups = []
        for name, p in self.module.named_parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            if name.startswith("layers."):
                groups.append((p, self.stage_group))
            elif name.startswith(("norm.", "head.")) or self.module.cfg.tie_embeddings:
                groups.append((p, None))  # every node holds the norm and head
            else:
                groups.append((p, self.stage0_group))
        for p, group in groups:
            dist.all_reduce(p.grad, group=group)


def microbatch_split(inputs: torch.Tensor, targets: torch.Tensor, m: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """m equal microbatches (rows padded with ignored targets when the batch does not divide)."""
    from training.parallel.pipeline import pad_to_microbatches

    inputs, targets = pad_to_microbatches(inputs, targets, m)
    return list(zip(inputs.chunk(m), targets.chunk(m)))
