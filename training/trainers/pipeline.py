"""The pipeline trainer: the baseline loop with the model cut into stages across ranks (training/parallel/).

Ranks form a 2-D mesh dp × pp: each data-parallel replica is a full pipeline. Per optimizer step every
micro-batch goes through one schedule step; the loss is normalised by the tokens of the whole step over all
replicas, gradients are summed over the dp group, the two copies of a tied embedding (first and last stage
on different ranks) have their gradients summed between the owning ranks (Megatron's embedding group), and
the clipping norm is taken over the pipeline group, counting a tied weight once.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from training.config import RunConfig
from training.distributed import Dist, all_reduce_grads, all_reduce_sum
from training.local.core import trainable
from training.model import Llama, ModelConfig
from training.parallel.balance import plan_report
from training.parallel.actions import Span
from training.parallel.partition import EMBED, HEAD, balanced_layout, explicit_layout, uniform_layout
from training.parallel.pipeline import IGNORE, Pipeline, Plan, build_pipeline
from training.parallel.schedules import SCHEDULES
from training.parallel.vocab_pipeline import VocabPipeline, build_vocab_pipeline, check_vocab_plan
from training.trainers.baseline import Batch, Trainer
from training.trainers.mesh import gather_spans, mesh_groups, pipeline_degrees, reduce_over


def plan_for(cfg: RunConfig, model_cfg: ModelConfig, *, world: int, seq_len: int) -> Plan:
    """The pipeline plan of a run: schedule, degrees, stages per rank and the layout (explicit, uniform or cost)."""
    section = cfg.pipeline
    dp, pp = pipeline_degrees(cfg, world)
    per_rank = section.stages_per_rank or SCHEDULES[section.schedule].stages_per_rank
    n_stages = pp * per_rank
    vocab = dict(seq_len=seq_len, vocab_parallel=section.vocab_parallel)
    if section.layout:
        layout = explicit_layout(model_cfg, [list(s) for s in section.layout], **vocab)
    elif section.balance == "uniform":
        layout = uniform_layout(model_cfg, n_stages, **vocab)
    else:
        layout = balanced_layout(model_cfg, n_stages, **vocab)
    return Plan(schedule=section.schedule, pp=pp, dp=dp, stages_per_rank=per_rank, microbatches=section.microbatches,
                layout=layout)


def balance_report(cfg: RunConfig, model_cfg: ModelConfig, *, world: int, seq_len: int) -> str:
    """Per-rank parameters, FLOPs and estimated peak activations of this run's pipeline (balance.py)."""
    plan = plan_for(cfg, model_cfg, world=world, seq_len=seq_len)
    rows = -(-cfg.train.micro_batch_size // plan.microbatches)
    return plan_report(model_cfg, plan, seq_len=seq_len, rows=rows, vocab_parallel=cfg.pipeline.vocab_parallel,
                       barriers=cfg.pipeline.vocab_barriers)


class PipelineTrainer(Trainer):
    name = "pipeline"
    wrap_ddp = False

    @classmethod
    def data_parallel(cls, cfg: RunConfig, d: Dist) -> tuple[int, int]:
        dp, pp = pipeline_degrees(cfg, d.world)
        return d.rank // pp, dp

    def build_parts(self) -> list[nn.Module]:
        cfg, d = self.cfg.pipeline, self.d
        dp, pp = pipeline_degrees(self.cfg, d.world)
        self.plan = plan_for(self.cfg, self.model_cfg, world=d.world, seq_len=self.seq_len)  # build_* check it
        self.pp_rank, self.dp_rank = d.rank % pp, d.rank // pp
        self.pp_group, self.dp_group = mesh_groups(d, dp, pp)
        full = Llama(self.model_cfg)  # every rank builds the same seeded model, then keeps its stages
        self.trace: list[Span] | None = None
        if cfg.vocab_parallel:
            check_vocab_plan(self.plan)
            self.pipe = build_vocab_pipeline(full, self.plan, barriers=cfg.vocab_barriers, seq_len=self.seq_len,
                                             pp_rank=self.pp_rank, ranks=self.replica_ranks(), group=self.pp_group,
                                             vocab_groups=(self.vocab_group(dp, pp), self.vocab_group(dp, pp)),
                                             device=d.device)
            self.tied_group = None  # a tied shard is one tensor on its rank
            return [*self.pipe.parts, self.pipe.vocab]
        self.pipe = build_pipeline(full, self.plan, pp_rank=self.pp_rank, device=d.device, pp_group=self.pp_group)
        del full
        self.tied_group = self.tied_embedding_group(dp, pp)
        return list(self.pipe.parts)

    def replica_ranks(self) -> list[int]:
        """Global ranks of this replica's pipeline, in pipeline order (the mesh is dp-major)."""
        pp = self.plan.pp
        return [self.dp_rank * pp + r for r in range(pp)]

    def vocab_group(self, dp: int, pp: int) -> object | None:
        """Another group over this replica's pipeline ranks, for one kind of vocabulary collective (vocab_pipeline.py)."""
        if not self.d.initialized:
            return None
        mine = None
        for replica in range(dp):  # every rank takes part in creating every group
            group = dist.new_group([replica * pp + r for r in range(pp)])
            if replica == self.dp_rank:
                mine = group
        return mine

    def describe(self) -> str:
        return super().describe() + "\n" + balance_report(self.cfg, self.model_cfg, world=self.d.world,
                                                          seq_len=self.seq_len)

    def tied_embedding_group(self, dp: int, pp: int) -> object | None:
        """The group {embedding rank, head rank} of this replica when a tied weight lives on two ranks."""
        if not self.model_cfg.tie_embeddings or not self.d.initialized:
            return None
        first = self.plan.rank_of(self.plan.layout.stage_of(EMBED))
        last = self.plan.rank_of(self.plan.layout.stage_of(HEAD))
        if first == last:
            return None
        mine = None
        for replica in range(dp):  # every rank takes part in creating every group
            group = dist.new_group([replica * pp + first, replica * pp + last])
            if replica == self.dp_rank and self.pp_rank in (first, last):
                mine = group
        return mine

    def tied_param(self) -> torch.Tensor | None:
        """This rank's copy of a tied embedding that lives on two ranks, if it holds one."""
        if self.tied_group is None:
            return None
        for part in self.parts:
            if part.embed is not None:
                return part.embed.weight
            if part.head is not None:
                return part.head.weight
        return None

    def forward_backward(self, micro_batches: list[Batch]) -> torch.Tensor:
        local = float(sum(int((t != IGNORE).sum()) for _, t in micro_batches))
        tokens = self.all_reduce_dp([local])[0]
        total = 0.0
        for i, (inputs, targets) in enumerate(micro_batches):  # a trace shows the step's first schedule run
            total += self.pipe.run(inputs, targets, tokens=max(tokens, 1.0), spans=self.trace if i == 0 else None)
        if self.dp_group is not None and self.plan.dp > 1:
            all_reduce_grads(self.d, self.params(), group=self.dp_group)
        tied = self.tied_param()
        if tied is not None and tied.grad is not None:
            dist.all_reduce(tied.grad, group=self.tied_group)
        return torch.tensor(total)

    def all_reduce_dp(self, values: list[float]) -> list[float]:
        return reduce_over(self.dp_group, self.plan.dp, values)

    def params(self) -> list[nn.Parameter]:
        return trainable(self.parts)  # a tied weight held twice by one rank counts once

    def reduce_loss(self, loss: float) -> float:
        """Only last-stage ranks hold loss, each its replica's share of the global mean: the sum is the mean."""
        return all_reduce_sum(self.d, [loss])[0]

    def clip(self) -> float:
        """Global gradient norm over the pipeline (a tied weight counted once), then clip on every rank."""
        params = [p for p in self.params() if p.grad is not None]
        tied = self.tied_param()
        counted = [p for p in params if not (tied is not None and p is tied and self.pipe.has_last
                                             and not self.pipe.has_first)]
        sq = torch.zeros((), dtype=torch.float64)
        for p in counted:
            sq += p.grad.detach().double().pow(2).sum().cpu()
        if self.pp_group is not None:
            dist.all_reduce(sq, group=self.pp_group)
        return self.clip_grads(params, float(sq.sqrt()))

    def eval_sums(self) -> tuple[float, float]:
        """Loss and tokens live on the last-stage ranks; the others add zeros."""
        loss_sum, count = 0.0, 0.0
        for batch in self.eval_loader:
            inputs, targets = self.to_device(batch)
            loss_sum += self.pipe.run(inputs, targets, tokens=1.0, train=False)
            count += float((targets != IGNORE).sum()) if self.pipe.has_last else 0.0
        return loss_sum, count

    def before_step(self) -> None:
        """Record F/B/W spans on the configured steps."""
        self.trace = [] if self.step + 1 in self.cfg.pipeline.trace_steps else None

    def after_step(self) -> dict[str, float]:
        """Gather a traced step's spans to rank 0: Chrome trace, PNG, measured vs simulated bubble."""
        if self.trace is None:
            return {}
        replica, self.trace = gather_spans(self.d, self.trace, self.plan.pp), None
        if not self.d.is_main:
            return {}
        from training.parallel.simulator import costs_from_spans, schedule_order, simulate
        from training.parallel.timeline import draw_timeline, hop_latency, idle_fraction, write_chrome_trace

        folder = Path(self.cfg.output) / "pipeline"
        folder.mkdir(parents=True, exist_ok=True)
        measured = idle_fraction(replica)
        order = schedule_order(self.plan.runtime_schedule(), n_ranks=self.plan.pp,
                               n_microbatches=self.plan.microbatches, stages_per_rank=self.plan.stages_per_rank)
        latency = hop_latency(replica)
        if isinstance(self.pipe, VocabPipeline):  # the vocabulary passes replayed too (vocab_schedule.py)
            from training.parallel.vocab_schedule import costs_from_vocab_spans, simulate_vocab

            def replay(hop: float) -> float:
                costs, vocab = costs_from_vocab_spans(replica, latency=hop)
                return simulate_vocab(order, barriers=self.pipe.barriers, costs=costs, vocab=vocab).bubble_fraction

            ideal, with_latency = replay(0.0), replay(latency)
        else:
            ideal = simulate(order, costs=costs_from_spans(replica)).bubble_fraction
            with_latency = simulate(order, costs=costs_from_spans(replica, latency=latency)).bubble_fraction
        write_chrome_trace(replica, folder / f"step-{self.step}.trace.json")
        draw_timeline(replica, folder / f"step-{self.step}.png",
                      title=f"{self.plan.schedule}, {self.plan.pp} ranks, {self.plan.microbatches} microbatches "
                            f"(simulated {ideal:.1%}, {with_latency:.1%} with {latency * 1e3:.2f} ms hops); measured")
        return {"pp_bubble_measured": measured, "pp_bubble_simulated": ideal,
                "pp_bubble_simulated_latency": with_latency, "pp_hop_latency_s": latency}
