"""SkipPipe training (`--trainer=skippipe`): microbatches take planned paths that skip stages.

Every rank is a node hosting one stage (several nodes may host the same stage). The path planner
(training/parallel/skippipe.py) chooses, for the node latency matrix, which stages each microbatch visits and
when, under SkipPipe's constraints; the point-to-point runtime (training/parallel/skippipe_runtime.py) executes
it. All ranks read the same batch, split into `pipeline.microbatches` microbatches. Evaluation runs the full
model: every microbatch through all stages in order, forwards only.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from training.config import RunConfig
from training.distributed import Dist, all_reduce_sum
from training.model import Llama
from training.parallel.partition import balanced_layout
from training.parallel.skippipe import plan
from training.parallel.skippipe_problem import full_pipeline, make_problem
from training.parallel.skippipe_runtime import IGNORE, SkipPipeNode, microbatch_split, node_module
from training.trainers.baseline import Batch, Trainer


def stage_nodes(world: int, n_stages: int) -> list[list[int]]:
    """Ranks dealt to stages in contiguous runs (stage 0 gets the remainder first)."""
    if n_stages < 1 or n_stages > world:
        raise ValueError(f"pipeline.skip_stages = {n_stages} must be between 1 and the number of ranks ({world})")
    per, extra = divmod(world, n_stages)
    out, start = [], 0
    for s in range(n_stages):
        count = per + (1 if s < extra else 0)
        out.append(list(range(start, start + count)))
        start += count
    return out


def load_latency(path: str | None, world: int) -> np.ndarray:
    if path is None:
        return np.zeros((world, world))
    matrix = np.asarray(json.loads(Path(path).read_text()), dtype=float)
    if matrix.shape != (world, world):
        raise ValueError(f"pipeline.latency {path}: a {matrix.shape} matrix for {world} ranks; give {world} x {world} "
                         "seconds")
    return matrix


class SkipPipeTrainer(Trainer):
    name = "skippipe"
    wrap_ddp = False

    @classmethod
    def data_parallel(cls, cfg: RunConfig, d: Dist) -> tuple[int, int]:
        return 0, 1  # every node reads the same batch; the microbatches are the parallelism

    def build_parts(self) -> list[nn.Module]:
        cfg, d = self.cfg.pipeline, self.d
        n_stages = cfg.skip_stages or d.world
        self.stages = stage_nodes(d.world, n_stages)
        latency = load_latency(cfg.latency, d.world)
        self.layout = balanced_layout(self.model_cfg, n_stages, seq_len=self.seq_len)
        settings = dict(latency_s=latency, stages=self.stages, n_microbatches=cfg.microbatches)
        self.problem = make_problem(**settings, skip=cfg.skip, reorder=cfg.reorder)
        self.train_plan = plan(self.problem, seed=self.cfg.train.seed)
        self.eval_plan = plan(full_pipeline(self.problem), seed=self.cfg.train.seed)
        groups = [dist.new_group(nodes) if d.initialized else None for nodes in self.stages]
        self.my_stage = next(s for s, nodes in enumerate(self.stages) if d.rank in nodes)
        full = Llama(self.model_cfg)
        self.node = SkipPipeNode(node=d.rank, stage=self.my_stage, module=node_module(full, self.layout, self.my_stage),
                                 schedule=self.train_plan, link_latency=latency if cfg.inject_latency else None,
                                 stage_group=groups[self.my_stage], stage0_group=groups[0])
        del full
        self.node.module.to(d.device)
        if d.is_main:
            paths = ", ".join("-".join(str(s) for s, _ in p) for p in self.train_plan.paths)
            print(f"skippipe: {n_stages} stages on nodes {self.stages}; paths {paths}; planned iteration "
                  f"{self.train_plan.makespan_s:.3g} (full pipeline {self.eval_plan.makespan_s:.3g}) in the "
                  "latency matrix's units", flush=True)
        return [self.node.module]

    def forward_backward(self, micro_batches: list[Batch]) -> torch.Tensor:
        tokens = float(sum(int((t != IGNORE).sum()) for _, t in micro_batches))
        self.node.schedule = self.train_plan
        total = 0.0
        for inputs, targets in micro_batches:
            total += self.node.run(microbatch_split(inputs, targets, self.cfg.pipeline.microbatches), tokens=tokens)
        if self.d.initialized:
            self.node.sync_replicas()
        return torch.tensor(total)

    def reduce_loss(self, loss: float) -> float:
        return all_reduce_sum(self.d, [loss])[0]

    def clip(self) -> float:
        """Global norm with every replicated parameter counted once, then clip on every node."""
        sq = 0.0
        kw = dict(stage_nodes=len(self.stages[self.my_stage]), stage0_nodes=len(self.stages[0]), world=self.d.world)
        for name, p in self.node.module.named_parameters():
            if p.grad is not None:
                sq += float(p.grad.detach().double().pow(2).sum()) / self.node.replicas(name, **kw)
        return self.clip_grads(list(self.node.module.parameters()), math.sqrt(all_reduce_sum(self.d, [sq])[0]))

    def eval_sums(self) -> tuple[float, float]:
        """The full model: every microbatch through all stages in order, forwards only; rank 0 counts tokens."""
        self.node.schedule = self.eval_plan
        loss_sum, count = 0.0, 0.0
        for inputs, targets in self.eval_loader:
            micro = microbatch_split(inputs, targets, self.cfg.pipeline.microbatches)
            loss_sum += self.node.run(micro, tokens=1.0, train=False)
            count += float((targets != IGNORE).sum()) if self.d.is_main else 0.0
        self.node.schedule = self.train_plan
        return loss_sum, count
