"""SkipPipe's runtime (training/parallel/skippipe_runtime.py) on cases the mutation run of issue 16 found
untested: a plan of one microbatch, and a skipping plan over three nodes whose steps are replayed in one process
through a mailbox that stands in for torch.distributed's point-to-point calls (a message is delivered only to the
receiver that asks for the sender, itself and the tag it was sent with). Losses and gradients are checked against
the whole model run along the same stages with plain autograd, written out here."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.model import Llama, ModelConfig
from training.parallel import skippipe_runtime
from training.parallel.partition import uniform_layout
from training.parallel.skippipe import plan
from training.parallel.skippipe_problem import make_problem
from training.parallel.skippipe_runtime import IGNORE, SkipPipeNode, microbatch_split, node_module

V = 31  # vocabulary


def tiny(n_layers: int) -> Llama:
    torch.manual_seed(0)
    return Llama(ModelConfig(vocab_size=V, dim=16, n_layers=n_layers, n_heads=2, ffn_dim=32, max_seq_len=8))


def batch(rows: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    gen = torch.Generator().manual_seed(1)
    inputs = torch.randint(0, V, (rows, 8), generator=gen)
    targets = torch.randint(0, V, (rows, 8), generator=gen)
    targets[0, :3] = IGNORE
    return inputs, targets, float((targets != IGNORE).sum())


def test_a_plan_of_one_microbatch_runs():
    """M = 1 on one node: the node embeds, runs both layers and computes the loss of the whole batch."""
    full = tiny(2)
    schedule = plan(make_problem(latency_s=[[0.0]], stages=[[0]], n_microbatches=1))
    node = SkipPipeNode(node=0, stage=0, module=node_module(full, uniform_layout(full.cfg, 1, seq_len=8), 0),
                        schedule=schedule)
    inputs, targets, tokens = batch(3)
    loss = node.run(microbatch_split(inputs, targets, 1), tokens=tokens)
    want = F.cross_entropy(full(inputs).detach().reshape(-1, V), targets.reshape(-1), reduction="sum") / tokens
    assert math.isclose(loss, float(want), rel_tol=1e-5)


class _Mailbox:
    """isend/recv between nodes of one process: a message waits under (sender, receiver, tag) until received."""

    def __init__(self):
        self.box: dict[tuple[int, int, int], torch.Tensor] = {}
        self.current = -1  # the node whose step runs now
        self.delivered = 0

    def isend(self, tensor, dst, tag):
        key = (self.current, dst, tag)
        assert key not in self.box, f"a second message on {key} before the first was received"
        self.box[key] = tensor.clone()
        return SimpleNamespace(wait=lambda: None)

    def recv(self, tensor, src, tag):
        key = (src, self.current, tag)
        assert key in self.box, f"node {self.current} waits for {key}, never sent; pending {sorted(self.box)}"
        tensor.copy_(self.box.pop(key))
        self.delivered += 1


def test_a_skipping_plan_replayed_step_by_step_gives_the_whole_models_loss_and_gradients(monkeypatch):
    """Three stages of two layers, one node each, K = 2 of 3 (paths 0 -> 1 or 0 -> 2), 3 microbatches, free
    links. Every step of every node runs in the order of its planned start, which the plan makes causal. The
    reference runs each microbatch through the whole model's embedding, the layers of its path's stages, the norm
    and the head, and back-propagates the summed token loss / tokens; the nodes' gradients must equal it (head
    and norm summed over the nodes, since a path ends on either stage)."""
    wire = _Mailbox()
    monkeypatch.setattr(skippipe_runtime.dist, "isend", wire.isend)
    monkeypatch.setattr(skippipe_runtime.dist, "recv", wire.recv)
    full = tiny(6)
    layout = uniform_layout(full.cfg, 3, seq_len=8)
    problem = make_problem(latency_s=np.zeros((3, 3)), stages=[[0], [1], [2]], n_microbatches=3, skip=1 / 3)
    schedule = plan(problem)
    assert {tuple(s for s, _ in p) for p in schedule.paths} == {(0, 1), (0, 2)}  # both skips are used
    nodes = [SkipPipeNode(node=s, stage=s, module=node_module(full, layout, s), schedule=schedule) for s in range(3)]
    assert [list(n.module.layers) for n in nodes] == [["0", "1"], ["2", "3"], ["4", "5"]]

    inputs, targets, tokens = batch(6)
    micro = microbatch_split(inputs, targets, 3)
    shape, rope = (2, 8, 16), full.rope_for(8)
    saved = [({}, {}) for _ in nodes]
    total = 0.0
    for step in sorted(schedule.steps, key=lambda s: (s.start_s, s.node)):
        wire.current, node, (saved_in, saved_out) = step.node, nodes[step.node], saved[step.node]
        if step.kind == "F":
            total += node.forward(step, micro, shape, torch.float32, rope, saved_in, saved_out, tokens)
        else:
            node.backward(step, shape, torch.float32, saved_in, saved_out)
    assert wire.box == {} and wire.delivered == 2 * 2 * 3  # (activation + stamp) x (F + B) x 3 one-hop paths
    assert all(saved_in == {} and saved_out == {} for saved_in, saved_out in saved)

    want = 0.0
    for (x, y), path in zip(micro, schedule.paths):
        h = full.embed(x)
        for stage, _ in path:
            for i in (2 * stage, 2 * stage + 1):
                h = full.layers[str(i)](h, rope)
        loss = F.cross_entropy(full.head(full.norm(h)).reshape(-1, V), y.reshape(-1), reduction="sum") / tokens
        loss.backward()
        want += float(loss.detach())
    assert math.isclose(total, want, rel_tol=1e-5)

    for name, p in full.named_parameters():
        if name.startswith("layers."):
            holder = nodes[int(name.split(".")[1]) // 2].module
            got = holder.get_parameter(name).grad
            got = torch.zeros_like(p) if got is None else got
        elif name.startswith("embed."):
            got = nodes[0].module.get_parameter(name).grad
        else:
            grads = [n.module.get_parameter(name).grad for n in nodes]
            got = sum(g for g in grads if g is not None)
        want_grad = torch.zeros_like(p) if p.grad is None else p.grad
        torch.testing.assert_close(got, want_grad, rtol=1e-5, atol=1e-7, msg=name)
