"""Run under torchrun by test_local_lm.py: the decoupled pipeline's gradients equal one process's local steps."""
from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist

from training.local.core import LocalModel, local_step, plan_modules
from training.local.llama import aux_builder, backbone, lm_loss
from training.local.pipeline import DecoupledStage
from training.model import Llama, ModelConfig


def build(method: str, k: int) -> LocalModel:
    torch.manual_seed(0)
    llama = Llama(ModelConfig(vocab_size=64, dim=16, n_layers=4, n_heads=2, ffn_dim=32, max_seq_len=16))
    return LocalModel(backbone(llama), groups=plan_modules(4, k), aux=aux_builder(method, aux_depth=1))


def main() -> int:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    method = sys.argv[1]
    g = torch.Generator().manual_seed(1)
    data, targets = torch.randint(0, 64, (8, 16), generator=g), torch.randint(0, 64, (8, 16), generator=g)
    micro = list(zip(data.chunk(4), targets.chunk(4)))
    model = build(method, world)
    DecoupledStage(rank=rank, model=model, loss_fn=lm_loss(), hidden=16).run(micro)
    mine = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    every = [None] * world
    dist.all_gather_object(every, mine)
    if rank == 0:
        reference = build(method, world)
        for x, y in micro:
            local_step(reference, x, y, loss_fn=lm_loss(1.0 / len(micro)))
        want = {n: p.grad for n, p in reference.named_parameters() if p.grad is not None}
        got = {n: v for d in every for n, v in d.items()}
        err = max(float((got[n] - want[n]).abs().max()) for n in want)
        print(json.dumps({"grad_err": err, "missing": sorted(set(want) - set(got))}), flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
