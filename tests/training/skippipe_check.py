"""Run under torchrun by test_skippipe_runtime.py: one SkipPipe iteration over gloo against one process.

Every rank is a node; the plan's paths skip and may reorder stages. After the replica sync, every node's
gradients must equal those of a single process that runs each microbatch through the same stages in the same
order. Prints one JSON line on rank 0.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from training.model import Llama, ModelConfig
from training.parallel.partition import balanced_layout
from training.parallel.skippipe import plan
from training.parallel.skippipe_problem import heterogeneous_latency, make_problem
from training.parallel.paths import path_forward
from training.parallel.skippipe_runtime import IGNORE, SkipPipeNode, microbatch_split, node_module


def main() -> int:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    settings = json.loads(sys.argv[1])
    sizes, skip, reorder, tied = settings["sizes"], settings["skip"], settings["reorder"], settings["tied"]
    cfg = ModelConfig(vocab_size=64, dim=16, n_layers=len(sizes) * 2, n_heads=2, ffn_dim=32, max_seq_len=16,
                      tie_embeddings=tied)
    layout = balanced_layout(cfg, len(sizes), seq_len=16)
    nodes = np.cumsum([0, *sizes])
    stages = [list(range(nodes[s], nodes[s + 1])) for s in range(len(sizes))]
    problem = make_problem(latency_s=heterogeneous_latency(world, seed=3), stages=stages, n_microbatches=4,
                           skip=skip, reorder=reorder)
    schedule = plan(problem, seed=0)
    groups = [dist.new_group(nodes_of) for nodes_of in stages]  # every rank creates every group, in order
    my_stage = next(s for s, nodes_of in enumerate(stages) if rank in nodes_of)
    torch.manual_seed(0)
    full = Llama(cfg)
    g = torch.Generator().manual_seed(1)
    inputs, targets = torch.randint(0, 64, (8, 16), generator=g), torch.randint(0, 64, (8, 16), generator=g)
    targets[-1, 12:] = IGNORE
    tokens = float((targets != IGNORE).sum())
    node = SkipPipeNode(node=rank, stage=my_stage, module=node_module(full, layout, my_stage), schedule=schedule,
                        stage_group=groups[my_stage], stage0_group=groups[0])
    micro = microbatch_split(inputs, targets, 4)
    loss = node.run(micro, tokens=tokens)
    node.sync_replicas()
    losses, grads = [None] * world, [None] * world
    dist.all_gather_object(losses, loss)
    dist.all_gather_object(grads, {n: p.grad for n, p in node.module.named_parameters()})
    if rank == 0:
        full.zero_grad()
        want_loss = 0.0
        for m, path in enumerate(schedule.paths):  # the same stages in the same order, in one process
            logits = path_forward(full, micro[m][0], path=path, layout=layout)
            loss_m = F.cross_entropy(logits.reshape(-1, 64), micro[m][1].reshape(-1), ignore_index=IGNORE,
                                     reduction="sum") / tokens
            loss_m.backward()
            want_loss += loss_m.item()
        want = {n: p.grad if p.grad is not None else torch.zeros_like(p) for n, p in full.named_parameters()}
        err = max(float((gr[n] - want[n]).abs().max()) for gr in grads for n in gr)
        covered = sorted({n for gr in grads for n in gr})
        print(json.dumps({"loss_err": abs(sum(losses) - want_loss), "grad_err": err, "covered": len(covered),
                          "params": len(want), "paths": [[s for s, _ in p] for p in schedule.paths]}), flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
