"""Run under torchrun by test_pipeline.py: every schedule's loss and gradients against one process, on gloo.

Each rank builds the same seeded model, keeps its stages, runs one schedule step on a fixed batch and sends
its gradients (by parameter name) to rank 0, which runs the whole model on the same batch and compares.
Prints one JSON line per case on rank 0: {"case": ..., "loss_err": ..., "grad_err": ..., "params": n}.
"""
from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

from training.model import Llama, ModelConfig
from training.parallel.partition import balanced_layout
from training.parallel.pipeline import IGNORE, Plan, StepLoss, build_pipeline


def reference(model: Llama, inputs: torch.Tensor, targets: torch.Tensor, tokens: float) -> tuple[float, dict]:
    model.zero_grad()
    loss = StepLoss(tokens)(model(inputs), targets)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}


def main() -> int:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    cases = json.loads(sys.argv[1])
    cfg = ModelConfig(vocab_size=64, dim=16, n_layers=8, n_heads=2, ffn_dim=32, max_seq_len=16)
    for case in cases:
        schedule, m, rows = case["schedule"], case["microbatches"], case["rows"]
        per_rank = 1 if schedule in ("gpipe", "1f1b") else 2
        torch.manual_seed(0)
        full = Llama(cfg)
        g = torch.Generator().manual_seed(1)
        inputs = torch.randint(0, 64, (rows, 16), generator=g)
        targets = torch.randint(0, 64, (rows, 16), generator=g)
        targets[-1, 10:] = IGNORE  # padding in the last row
        tokens = float((targets != IGNORE).sum())
        plan = Plan(schedule=schedule, pp=world, dp=1, stages_per_rank=per_rank, microbatches=m,
                    layout=balanced_layout(cfg, world * per_rank, seq_len=16))
        try:
            pipe = build_pipeline(full, plan, pp_rank=rank, device=torch.device("cpu"), pp_group=dist.group.WORLD)
        except ValueError as err:
            if rank == 0:
                print(json.dumps({"case": case, "refused": str(err)}), flush=True)
            continue
        loss = pipe.run(inputs, targets, tokens=tokens)
        grads = {n: p.grad.clone() for part in pipe.parts for n, p in part.named_parameters() if p.grad is not None}
        losses = [None] * world
        every = [None] * world
        dist.all_gather_object(losses, loss)
        dist.all_gather_object(every, grads)
        if rank == 0:
            want_loss, want = reference(full, inputs, targets, tokens)
            got = {k: v for d in every for k, v in d.items()}
            missing = sorted(set(want) - set(got))
            err = max(float((got[n] - want[n]).abs().max()) for n in want if n in got)
            print(json.dumps({"case": case, "loss_err": abs(sum(losses) - want_loss), "grad_err": err,
                              "params": len(got), "missing": missing, "ran": type(pipe.schedule).__name__}),
                  flush=True)
        dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
