"""SkipPipe's runtime (training/parallel/skippipe_runtime.py) in a real gloo group of one process (issue 16, the
full mutation run by helper E): a one-node plan of a single microbatch, and the replica sync after it. The oracle
is the whole model run with plain autograd; a sum over one replica is the gradient itself."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from training.model import Llama, ModelConfig
from training.parallel.partition import uniform_layout
from training.parallel.skippipe import plan
from training.parallel.skippipe_problem import make_problem
from training.parallel.skippipe_runtime import SkipPipeNode, microbatch_split, node_module


@pytest.mark.parametrize("tied", [False, True])
def test_one_microbatch_on_one_node_trains_and_sync_keeps_the_gradients(group, tied):
    """K = 1, M = 1: the node embeds, runs both layers and takes the loss of its only microbatch. Its gradients
    are the whole model's; syncing over groups of one node leaves them as they are."""
    torch.manual_seed(0)
    full = Llama(ModelConfig(vocab_size=31, dim=16, n_layers=2, n_heads=2, ffn_dim=32, max_seq_len=8,
                             tie_embeddings=tied))
    schedule = plan(make_problem(latency_s=[[0.0]], stages=[[0]], n_microbatches=1))
    node = SkipPipeNode(node=0, stage=0, module=node_module(full, uniform_layout(full.cfg, 1, seq_len=8), 0),
                        schedule=schedule, stage_group=group, stage0_group=group)
    gen = torch.Generator().manual_seed(2)
    inputs, targets = torch.randint(0, 31, (3, 8), generator=gen), torch.randint(0, 31, (3, 8), generator=gen)
    tokens = float(targets.numel())
    loss = node.run(microbatch_split(inputs, targets, 1), tokens=tokens)
    ref = F.cross_entropy(full(inputs).reshape(-1, 31), targets.reshape(-1), reduction="sum") / tokens
    ref.backward()
    assert math.isclose(loss, float(ref), rel_tol=1e-5)
    node.sync_replicas()
    want = {n: p.grad for n, p in full.named_parameters()}
    for name, p in node.module.named_parameters():
        torch.testing.assert_close(p.grad, want[name], rtol=1e-4, atol=1e-7)
        assert p.grad.abs().sum() > 0, name
