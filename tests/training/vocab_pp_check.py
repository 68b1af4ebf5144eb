"""Run by test_vocab_pipeline.py in spawned gloo processes: the vocabulary-parallel pipeline's loss and every
gradient against one process running the whole model (F.cross_entropy over the full logits, plain autograd).

Each rank builds the same seeded model, keeps its stages and vocabulary rows, runs one step on a fixed batch
with ignored targets, and writes its largest loss and gradient differences (each shard's rows compared with the
same rows of the reference gradient, padding rows required to be exactly zero) to <out>/rank<r>.json."""
from __future__ import annotations

import json

import torch
import torch.distributed as dist
import torch.nn.functional as F

from training.model import Llama, ModelConfig
from training.parallel.partition import balanced_layout
from training.parallel.pipeline import IGNORE, Plan
from training.parallel.vocab_pipeline import build_vocab_pipeline

SEQ = 8


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max())


def check(rank: int, world: int, case: dict) -> dict:
    dtype = torch.float64 if case["dtype"] == "float64" else torch.float32
    torch.set_default_dtype(dtype)
    try:
        cfg = ModelConfig(vocab_size=case["vocab"], dim=16, n_layers=8, n_heads=2, ffn_dim=24, max_seq_len=SEQ,
                          tie_embeddings=case["tied"])
        torch.manual_seed(0)
        full = Llama(cfg)
        g = torch.Generator().manual_seed(1)
        rows = case["rows"]
        inputs = torch.randint(0, cfg.vocab_size, (rows, SEQ), generator=g)
        targets = torch.randint(0, cfg.vocab_size, (rows, SEQ), generator=g)
        targets[0, 0] = cfg.vocab_size - 1
        targets[-1, SEQ // 2:] = IGNORE  # padding in the last row
        tokens = float((targets != IGNORE).sum())
        per_rank = 2 if case["schedule"] == "interleaved1f1b" else 1
        plan = Plan(schedule=case["schedule"], pp=world, dp=1, stages_per_rank=per_rank,
                    microbatches=case["microbatches"],
                    layout=balanced_layout(cfg, world * per_rank, seq_len=SEQ, vocab_parallel=True))
        group = dist.group.WORLD
        vocab_groups = (dist.new_group(list(range(world))), dist.new_group(list(range(world))))
        pipe = build_vocab_pipeline(full, plan, barriers=case["barriers"], seq_len=SEQ, pp_rank=rank,
                                    ranks=list(range(world)), group=group, vocab_groups=vocab_groups)
        loss = pipe.run(inputs, targets, tokens=tokens)
        # the reference: the whole model in this process
        full.zero_grad()
        logits = full(inputs)  # F.cross_entropy in the model's dtype (StepLoss would compute it in fp32)
        ref_loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), targets.reshape(-1), ignore_index=IGNORE,
                                   reduction="sum") / tokens
        ref_loss.backward()
        ref = {n: p.grad for n, p in full.named_parameters()}
        errs = {"grad": 0.0, "padding": 0.0, "params": 0}
        for part in pipe.parts:
            for n, p in part.named_parameters():
                errs["grad"] = max(errs["grad"], _err(p.grad, ref[n]))
                errs["params"] += 1
        shard = pipe.vocab.shard
        for name in {"embed.weight", "head.weight"}:
            p = dict(pipe.vocab.named_parameters(remove_duplicate=False))[name]
            want = ref["embed.weight" if cfg.tie_embeddings else name][shard.start:shard.start + shard.real_rows]
            errs["grad"] = max(errs["grad"], _err(p.grad[:shard.real_rows], want))
            errs["padding"] = max(errs["padding"], float(p.grad[shard.real_rows:].abs().sum()))
            errs["params"] += 1
        losses = [None] * world
        dist.all_gather_object(losses, loss)
        errs["loss"] = abs(sum(losses) - float(ref_loss.detach()))
        errs["loss_ranks"] = [i for i, x in enumerate(losses) if x != 0.0]
        for vg in vocab_groups:
            dist.destroy_process_group(vg)
        return errs
    finally:
        torch.set_default_dtype(torch.float32)


def worker(rank: int, world: int, port: int, cases: list[dict], out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        results = [{**case, **check(rank, world, case)} for case in cases]
        with open(f"{out}/rank{rank}.json", "w", encoding="utf-8") as f:
            json.dump(results, f)
    finally:
        dist.destroy_process_group()
