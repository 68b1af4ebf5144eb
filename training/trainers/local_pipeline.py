"""The decoupled pipeline (`--trainer=pipeline --schedule=decoupled --method=greedy|auglocal|man`): local learning
with one gradient-isolated module per pipeline rank (training/local/pipeline.py).

Each rank receives a microbatch's activation, runs its module, sends the output on at once and backpropagates its
own local loss, so no rank waits for a backward pass from a later stage: the pipeline fills but never drains.
Ranks form a dp × pp mesh as in the pipeline trainer; local.blocks must equal pp. The model is initialised as in
the one-process local trainer (same seed, same aux nets), each rank keeps only its module, its aux net (or the
real head) and their optimizer state, and the run follows `--trainer=local` step for step. MAN's EMA copy of the
next block lives on the previous rank: after every optimizer step each rank passes its first block's parameters
back one stage. Checkpoints use the one-process trainer's keys, so `training.export` works on them alike.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from training.config import RunConfig
from training.distributed import Dist, all_reduce_grads, all_reduce_sum
from training.local.aux import MomentumAux
from training.local.core import trainable
from training.local.llama import lm_loss
from training.local.pipeline import DecoupledStage, pass_back_parameters
from training.model import next_token_loss
from training.parallel.actions import Span
from training.parallel.partition import EMBED, HEAD, NORM
from training.parallel.pipeline import IGNORE, keep_units, pad_to_microbatches
from training.trainers.baseline import Batch
from training.trainers.local import AuxNets, LocalTrainer, build_local
from training.trainers.pipeline import gather_spans, mesh_groups, pipeline_degrees, reduce_over


class DecoupledPipelineTrainer(LocalTrainer):
    name = "local-decoupled"

    @classmethod
    def data_parallel(cls, cfg: RunConfig, d: Dist) -> tuple[int, int]:
        dp, pp = pipeline_degrees(cfg, d.world)
        return d.rank // pp, dp

    def build_parts(self) -> list[nn.Module]:
        cfg, d = self.cfg, self.d
        self.dp, self.pp = pipeline_degrees(cfg, d.world)
        if cfg.local.blocks != self.pp:
            raise ValueError(f"the decoupled pipeline runs one local module per pipeline rank: local.blocks "
                             f"({cfg.local.blocks}) must equal the ranks per replica ({self.pp} = {d.world} ranks / "
                             f"pipeline.dp {self.dp}); pass --blocks={self.pp} or launch {cfg.local.blocks * self.dp} "
                             "processes")
        self.pp_rank = k = d.rank % self.pp
        last = self.pp - 1
        self.pp_group, self.dp_group = mesh_groups(d, self.dp, self.pp)
        full, local = build_local(self, self.pp)  # every rank builds the same seeded model, then keeps its module
        units = (*(f"layers.{i}" for i in local.groups[k]), *((EMBED,) if k == 0 else ()),
                 *((NORM, HEAD) if k == last else ()))
        self.llama = self.model = keep_units(full, units).to(d.device)
        head = local.head if k == last else local.auxes[k].to(d.device)
        self.stage = DecoupledStage(stage=k, part=local.parts[k], head=head, loss_fn=lm_loss(), hidden=full.cfg.dim,
                                    prev=d.rank - 1 if k > 0 else None, next=d.rank + 1 if k < last else None)
        self.man = cfg.local.method == "man"
        self.trace: list[Span] | None = None
        self.module_losses = []
        parts: list[nn.Module] = [self.llama]
        if k < last:
            parts.append(AuxNets({k: head}))
        return parts

    def forward_backward(self, micro_batches: list[Batch]) -> torch.Tensor:
        """Every accumulation micro-batch is one pass of the pipeline over pipeline.microbatches microbatches."""
        m = self.cfg.pipeline.microbatches
        local = float(sum(int((t != IGNORE).sum()) for _, t in micro_batches))
        tokens = reduce_over(self.dp_group, self.dp, [local])[0]
        self.stage.loss_fn = lm_loss(1.0 / max(tokens, 1.0), reduction="sum")  # the step's token mean over replicas
        total = 0.0
        for i, (inputs, targets) in enumerate(micro_batches):
            x, y = pad_to_microbatches(inputs, targets, m)
            with self.autocast():
                total += self.stage.run(list(zip(x.chunk(m), y.chunk(m))), spans=self.trace if i == 0 else None)
        if self.dp > 1:
            all_reduce_grads(self.d, self.params(), group=self.dp_group)
        self.module_losses = [total if j == self.pp_rank else 0.0 for j in range(self.pp)]
        return torch.tensor(total if self.stage.next is None else 0.0)

    def params(self) -> list[nn.Parameter]:
        return trainable(self.parts)

    def reduce_loss(self, loss: float) -> float:
        """Only last-stage ranks hold the real head's loss, each its replica's share of the global mean."""
        return all_reduce_sum(self.d, [loss])[0]

    def clip(self) -> float:
        """Global gradient norm over the pipeline's ranks (as the one-process trainer computes it), then clip."""
        params = [p for p in self.params() if p.grad is not None]
        sq = sum(float(p.grad.detach().double().pow(2).sum()) for p in params)
        return self.clip_grads(params, reduce_over(self.pp_group, self.pp, [sq])[0] ** 0.5)

    def eval_sums(self) -> tuple[float, float]:
        """Each batch flows forward through the stages; the last stage's real head scores it."""
        loss_sum, count = 0.0, 0.0
        for batch in self.eval_loader:
            inputs, targets = self.to_device(batch)
            with self.autocast():
                logits = self.stage.infer(inputs)
            if logits is not None:
                loss_sum += float(next_token_loss(logits, targets, reduction="sum"))
                count += float((targets != IGNORE).sum())
        return loss_sum, count

    def before_step(self) -> None:
        self.trace = [] if self.step + 1 in self.cfg.pipeline.trace_steps else None

    def after_step(self) -> dict[str, float]:
        """MAN's EMA follows the next rank's first block; module losses and traced steps are logged."""
        if self.man:
            self.follow_next_block()
        out: dict[str, float] = {}
        if self.trace is not None:
            out.update(self.write_trace())
        if self.step % self.cfg.log.every == 0:
            losses = all_reduce_sum(self.d, self.module_losses)
            out.update({f"local_loss_{j}": v for j, v in enumerate(losses)})
        return out

    def follow_next_block(self) -> None:
        ema_aux = self.stage.head if isinstance(self.stage.head, MomentumAux) else None
        if ema_aux is not None and len(ema_aux.sources) != 1:
            raise ValueError("the decoupled pipeline's MAN follows one block of the next stage; got "
                             f"{len(ema_aux.sources)}")
        first_block = self.stage.part[0]
        got = pass_back_parameters(first_block.parameters(), prev=self.stage.prev, next_=self.stage.next,
                                   receive_into=list(ema_aux.ema.parameters()) if ema_aux is not None else None)
        if got is not None:
            ema_aux.follow(got)

    def write_trace(self) -> dict[str, float]:
        """Gather the traced step's spans to rank 0: Chrome trace, PNG and the measured idle fraction."""
        from training.parallel.timeline import draw_timeline, idle_fraction, write_chrome_trace

        replica, self.trace = gather_spans(self.d, self.trace, self.pp), None
        if replica is None:
            return {}
        folder = Path(self.cfg.output) / "pipeline"
        folder.mkdir(parents=True, exist_ok=True)
        measured = idle_fraction(replica)
        write_chrome_trace(replica, folder / f"step-{self.step}.trace.json")
        draw_timeline(replica, folder / f"step-{self.step}.png",
                      title=f"decoupled {self.cfg.local.method}, {self.pp} ranks, {self.cfg.pipeline.microbatches} "
                            f"microbatches; measured idle {measured:.1%}")
        return {"pp_bubble_measured": measured}

    def describe(self) -> str:
        return (super().describe() + f"; decoupled pipeline of {self.pp} local modules ({self.cfg.local.method}) × "
                f"{self.dp} replicas, {self.cfg.pipeline.microbatches} microbatches")
