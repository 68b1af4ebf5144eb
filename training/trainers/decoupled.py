"""The decoupled pipeline (`--trainer=decoupled --method=greedy|auglocal|man`): local learning
with one gradient-isolated module per pipeline rank (training/local/decoupled.py).

Each rank receives a microbatch's activation, runs its module, sends the output on at once and backpropagates its
own local loss, so no rank waits for a backward pass from a later stage: the pipeline fills once and never drains.
Nothing else makes a stage wait for a later one either: gradients are clipped per module (local.clip=auto), the
per-module losses and norms flow forward to the last stage, which reports them, and MAN's EMA copy of the next
block (on the previous rank) follows that block as it was when the step began, sent back at the step's start.
Ranks form a dp × pp mesh as in the pipeline trainer; local.blocks must equal pp. The model is initialised as in
the one-process local trainer (same seed, same aux nets), each rank keeps only its module, its aux net (or the
real head) and their optimizer state; with the same clipping the run is `--trainer=local` step for step (MAN up
to its EMA's one-step-older source). Checkpoints use the one-process trainer's keys, so `training.export` and a
resume under either trainer work alike.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from training.config import RunConfig
from training.distributed import Dist, all_reduce_grads
from training.local.aux_nets import MomentumAux
from training.local.core import trainable
from training.local.decoupled import DecoupledStage, receive_flat, send_flat
from training.local.lm_backbone import lm_loss
from training.model import next_token_loss
from training.parallel.actions import Span
from training.parallel.partition import EMBED, HEAD, NORM
from training.parallel.pipeline import IGNORE, keep_units, pad_to_microbatches
from training.trainers.baseline import Batch
from training.trainers.local import AuxNets, LocalTrainer, build_local, joint_norm, module_record
from training.trainers.mesh import gather_spans, mesh_groups, pipeline_degrees, reduce_over


PARAMS_TAG, STATS_TAG = 1 << 20, 1 << 21  # message tags above any microbatch index


class DecoupledPipelineTrainer(LocalTrainer):
    name = "decoupled"
    decoupled = True
    lagged_guard = True  # a global verdict per step would make every stage wait for the last one

    @property
    def reporter(self) -> bool:
        """The last stage of replica 0: it holds the real head's loss and is the last to finish each step."""
        return self.pp_rank == self.pp - 1 and self.dp_rank == 0

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
        self.dp_rank = d.rank // self.pp
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
        self.window: list[Span] = []
        self.own_loss, self.own_norm = 0.0, 0.0
        self.module_losses, self.module_norms = [], []
        self.sends: dict[int, object] = {}
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
        self.own_loss = reduce_over(self.dp_group, self.dp, [total])[0]  # this module's loss over the replicas
        return torch.tensor(total if self.stage.next is None else 0.0)

    def params(self) -> list[nn.Parameter]:
        return trainable(self.parts)

    def health(self, loss: float, grad_norm: float) -> tuple[float, float]:
        """This module's own loss and the norm it was clipped by (its own, or the pipeline's with local.clip=global):
        a module skips its update on its own numbers, which its data-parallel replicas share."""
        return self.own_loss, self.own_norm

    def reduce_loss(self, loss: float) -> float:
        """The real head's loss: the last stages' shares summed over replicas (no earlier stage takes part)."""
        return reduce_over(self.dp_group, self.dp, [loss])[0] if self.stage.next is None else 0.0

    def clip(self) -> float:
        """Per-module clipping without waiting (or one norm over the pipeline, local.clip=global); the module's
        loss and norm go to the reporter, which returns the whole network's norm."""
        params = [p for p in self.params() if p.grad is not None]
        if self.clip_scope() == "module":
            own = self.own_norm = self.clip_params(params)
        else:
            sq = sum(float(p.grad.detach().double().pow(2).sum()) for p in params)
            whole = self.own_norm = reduce_over(self.pp_group, self.pp, [sq])[0] ** 0.5
            self.clip_grads(params, whole)
            own = sq ** 0.5
        if self.dp_rank != 0 or self.pp == 1:
            self.module_losses, self.module_norms = [self.own_loss], [own] if self.clip_scope() == "module" else []
            return joint_norm(self.module_norms) if self.module_norms else own
        if not self.reporter:
            self.send(STATS_TAG + self.pp_rank, [torch.tensor([self.own_loss, own], device=self.d.device)], self.pp - 1)
            return own
        like = [torch.empty(2, device=self.d.device)]  # NCCL moves device tensors only
        stats = [receive_flat(like, j, tag=STATS_TAG + j)[0].tolist() for j in range(self.pp - 1)]
        self.module_losses = [v for v, _ in stats] + [self.own_loss]
        if self.clip_scope() != "module":
            self.module_norms = []
            return whole
        self.module_norms = [n for _, n in stats] + [own]
        return joint_norm(self.module_norms)

    def send(self, tag: int, tensors: list[torch.Tensor], dst: int) -> None:
        """Send without waiting; the previous message of this kind must have gone first (bounded buffering)."""
        if tag in self.sends:
            self.sends.pop(tag).wait()
        self.sends[tag] = send_flat(tensors, dst, tag=tag)

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
        """MAN: send this stage's first block back to the previous stage's EMA; collect spans on traced steps."""
        if self.man and self.stage.prev is not None:
            self.send(PARAMS_TAG, list(self.stage.part[0].parameters()), self.stage.prev)
        self.trace = self.window if self.step + 1 in self.cfg.pipeline.trace_steps else None

    def after_step(self) -> dict[str, float]:
        """MAN's EMA follows the next block as it began this step; module losses and the traced window are logged."""
        if self.man and self.stage.next is not None:
            ema_aux = self.stage.head
            if not isinstance(ema_aux, MomentumAux) or len(ema_aux.sources) != 1:
                raise ValueError("the decoupled pipeline's MAN follows exactly one block of the next stage")
            ema_aux.follow(receive_flat(list(ema_aux.ema.parameters()), self.stage.next, tag=PARAMS_TAG))
        out: dict[str, float] = {}
        if self.cfg.pipeline.trace_steps and self.step == max(self.cfg.pipeline.trace_steps):
            out.update(self.write_trace())
        if self.step % self.cfg.log.every == 0:
            out.update(module_record(self.module_losses, self.module_norms))
        return out

    def write_trace(self) -> dict[str, float]:
        """Gather the traced steps' spans to rank 0: one window (the pipeline runs across step boundaries), written
        as a Chrome trace and a PNG; the measured idle fraction counts the one fill and every gap between steps."""
        from training.parallel.timeline import draw_timeline, idle_fraction, write_chrome_trace

        replica, self.window = gather_spans(self.d, self.window, self.pp), []
        if not self.reporter:
            return {}
        folder = Path(self.cfg.output) / "pipeline"
        folder.mkdir(parents=True, exist_ok=True)
        steps = sorted(self.cfg.pipeline.trace_steps)
        name = f"steps-{steps[0]}-{steps[-1]}" if len(steps) > 1 else f"step-{steps[0]}"
        write_chrome_trace(replica, folder / f"{name}.trace.json")
        draw_timeline(replica, folder / f"{name}.png",
                      title=f"decoupled {self.cfg.local.method}, {self.pp} ranks, {self.cfg.pipeline.microbatches} "
                            f"microbatches, steps {steps[0]}-{steps[-1]}")
        return {"pp_bubble_measured": idle_fraction(replica), "pp_traced_steps": len(steps)}

    def describe(self) -> str:
        return (super().describe() + f"; decoupled pipeline of {self.pp} local modules ({self.cfg.local.method}) × "
                f"{self.dp} replicas, {self.cfg.pipeline.microbatches} microbatches")
