"""SkipPipe's runtime without a process group: message tags, the latency hold-back, replica counts, microbatch
padding, stage modules, and a one-node plan (no messages) run end to end against the model's own forward."""
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


def tiny(tied: bool = False, n_layers: int = 4) -> Llama:
    torch.manual_seed(0)
    return Llama(ModelConfig(vocab_size=31, dim=16, n_layers=n_layers, n_heads=2, ffn_dim=32, max_seq_len=8,
                             tie_embeddings=tied))


def test_ignored_targets_are_torchs_default():
    assert IGNORE == -100  # F.cross_entropy's default ignore_index, and what padding writes


def test_tags_of_messages_and_their_stamps_never_collide():
    """Each message takes tag t and its send-time stamp t + 1: over microbatches and both directions all differ."""
    node = SkipPipeNode(node=0, stage=0, module=None, schedule=None)
    used = [t for m in range(16) for back in (False, True) for t in (node.tag(m, back), node.tag(m, back) + 1)]
    assert len(set(used)) == len(used) and min(used) >= 0


def test_recv_holds_a_message_back_until_its_link_latency_has_passed(monkeypatch):
    """Sent at 100.0 (the stamp), link 2 -> 0 takes 0.5 s, received at 100.3: the receiver waits 0.2 s more."""
    slept = []
    clock = SimpleNamespace(time=lambda: 100.3, sleep=slept.append, perf_counter=lambda: 0.0)
    monkeypatch.setattr(skippipe_runtime, "time", clock)

    def fake_recv(tensor, src, tag):
        tensor.fill_(100.0 if tensor.dtype == torch.float64 else 7.0)

    monkeypatch.setattr(skippipe_runtime.dist, "recv", fake_recv)
    latency = np.zeros((3, 3))
    latency[2][0] = 0.5
    node = SkipPipeNode(node=0, stage=1, module=None, schedule=None, link_latency=latency)
    out = node.recv((2, 3), src=2, tag=4, dtype=torch.float32)
    assert torch.equal(out, torch.full((2, 3), 7.0)) and slept == [pytest.approx(0.2)]
    latency[2][0] = 0.1  # already arrived: no wait
    node.recv((1,), src=2, tag=4, dtype=torch.float32)
    assert len(slept) == 1


def test_replicas_count_the_nodes_holding_each_parameter():
    """Layers live on their stage's nodes, norm and head on every node, the embedding on the stage-0 nodes (on
    every node when tied to the head)."""
    for tied, embed in ((False, 2), (True, 7)):
        node = SkipPipeNode(node=0, stage=0, module=tiny(tied), schedule=None)
        counts = {name: node.replicas(name, stage_nodes=3, stage0_nodes=2, world=7)
                  for name in ("layers.1.attn.q_proj.weight", "norm.weight", "head.weight", "embed.weight")}
        assert counts == {"layers.1.attn.q_proj.weight": 3, "norm.weight": 7, "head.weight": 7,
                          "embed.weight": embed}


def test_node_module_keeps_its_stage_layers_and_the_embedding_only_on_stage_0():
    full = tiny()
    layout = uniform_layout(full.cfg, 2, seq_len=8)
    first, second = node_module(full, layout, 0), node_module(full, layout, 1)
    assert list(first.layers) == ["0", "1"] and first.embed is not None
    assert list(second.layers) == ["2", "3"] and second.embed is None
    assert second.norm is not None and second.head is not None  # a path may end on any stage
    tied = tiny(tied=True)
    assert node_module(tied, uniform_layout(tied.cfg, 2, seq_len=8), 1).embed is not None


def test_microbatch_split_pads_with_ignored_rows():
    inputs, targets = torch.arange(15).reshape(5, 3), torch.arange(15).reshape(5, 3) + 100
    parts = microbatch_split(inputs, targets, 3)
    assert [tuple(x.shape) for x, _ in parts] == [(2, 3)] * 3
    assert torch.equal(torch.cat([x for x, _ in parts])[:5], inputs)
    assert torch.equal(torch.cat([t for _, t in parts])[:5], targets)
    assert parts[2][1][1].tolist() == [-100] * 3


def test_one_node_plan_trains_on_the_summed_token_loss():
    """One stage on one node (K = 1): every microbatch embeds, runs all layers and computes its loss there, so the
    node's loss is sum over microbatches of the token cross-entropy sum / tokens, as the whole model gives it."""
    full = tiny(n_layers=2)
    layout = uniform_layout(full.cfg, 1, seq_len=8)
    schedule = plan(make_problem(latency_s=[[0.0]], stages=[[0]], n_microbatches=2))
    node = SkipPipeNode(node=0, stage=0, module=node_module(full, layout, 0), schedule=schedule, spans=[])
    gen = torch.Generator().manual_seed(1)
    inputs = torch.randint(0, 31, (4, 8), generator=gen)
    targets = torch.randint(0, 31, (4, 8), generator=gen)
    targets[0, :3] = IGNORE
    tokens = float((targets != IGNORE).sum())
    loss = node.run(microbatch_split(inputs, targets, 2), tokens=tokens)
    want = F.cross_entropy(full(inputs).detach().reshape(-1, 31), targets.reshape(-1), reduction="sum") / tokens
    assert math.isclose(loss, float(want), rel_tol=1e-5)
    assert all(p.grad is not None for p in node.module.parameters())
    assert [(s.kind, s.microbatch) for s in node.spans] == [(st.kind, st.microbatch) for st in schedule.program(0)]
    node.module.zero_grad(set_to_none=True)
    assert math.isclose(node.run(microbatch_split(inputs, targets, 2), tokens=tokens, train=False), float(want),
                        rel_tol=1e-5)
    assert all(p.grad is None for p in node.module.parameters())  # evaluation runs no backward


class _Wire:
    """Stands in for torch.distributed's point-to-point calls: records what is sent and received."""

    def __init__(self, fill: float = 1.0):
        self.sent, self.received, self.fill = [], [], fill

    def isend(self, tensor, dst, tag):
        self.sent.append((tensor.clone(), dst, tag))
        return SimpleNamespace(wait=lambda: None)

    def recv(self, tensor, src, tag):
        self.received.append((src, tag, tuple(tensor.shape)))
        tensor.fill_(self.fill)


def test_a_message_and_its_stamp_go_on_consecutive_tags(monkeypatch):
    wire = _Wire()
    monkeypatch.setattr(skippipe_runtime.dist, "isend", wire.isend)
    monkeypatch.setattr(skippipe_runtime.dist, "recv", wire.recv)
    monkeypatch.setattr(skippipe_runtime, "time", SimpleNamespace(time=lambda: 42.0, sleep=None, perf_counter=None))
    node = SkipPipeNode(node=1, stage=1, module=None, schedule=None)
    node.send(torch.ones(2, 2), dst=3, tag=6)
    assert [(dst, tag) for _, dst, tag in wire.sent] == [(3, 6), (3, 7)]
    assert torch.equal(wire.sent[0][0], torch.ones(2, 2)) and wire.sent[1][0].tolist() == [42.0]
    node.recv((2, 2), src=0, tag=8, dtype=torch.float32)
    assert wire.received == [(0, 8, (2, 2)), (0, 9, (1,))]


def test_a_middle_node_backward_sends_its_input_gradient_back(monkeypatch):
    """Stage 1 of a path 0 -> 1 -> 2: B receives dL/d(out) from node 2 (ones), backs up out = 2 * in, and sends
    dL/d(in) = 2 to node 0 on the backward tag of its microbatch."""
    from training.parallel.skippipe import Step

    wire = _Wire(fill=1.0)
    monkeypatch.setattr(skippipe_runtime.dist, "isend", wire.isend)
    monkeypatch.setattr(skippipe_runtime.dist, "recv", wire.recv)
    node = SkipPipeNode(node=1, stage=1, module=None, schedule=None)
    inp = torch.zeros(1, 2, 3, requires_grad=True)
    saved_in, saved_out = {5: inp}, {5: inp * 2}
    node.backward(Step("B", 5, 1, 1, 2, 0, 0.0, 1.0), (1, 2, 3), torch.float32, saved_in, saved_out)
    assert wire.received[0][:2] == (2, node.tag(5, True))
    assert [(dst, tag) for _, dst, tag in wire.sent] == [(0, node.tag(5, True)), (0, node.tag(5, True) + 1)]
    assert torch.equal(wire.sent[0][0], torch.full((1, 2, 3), 2.0))
    assert saved_in == {} and saved_out == {}
