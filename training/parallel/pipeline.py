"""Pipeline parallelism on torch.distributed.pipelining: stage modules, schedules, the step, timing spans.

A stage is a copy of the whole model with the parts it does not hold removed (Llama's forward passes
through missing parts), so parameter names stay those of the whole model. Stage indices per rank follow
torch: loop placement (rank, rank + p, ...) for single and interleaved schedules, V placement (rank and
2p − 1 − rank) for ZB-V and DualPipeV.

Two pitfalls are handled here rather than left to users:
- gradient scaling: torch's schedules divide gradients by the microbatch count (`scale_grads=True`), which
  is wrong under gradient accumulation or uneven microbatches (torchtitan #1733). We pass scale_grads=False
  and the loss is the sum over the microbatch's tokens divided by the tokens of the whole optimizer step.
- uneven microbatches: a batch that does not split into equal microbatches is padded with rows whose
  targets are ignored (they add nothing to loss or gradients), because stages infer buffer shapes from the
  first microbatch (pytorch #126600).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
import torch.distributed.pipelining.schedules as torch_schedules
import torch.nn.functional as F
from torch.distributed.pipelining import PipelineStage

from training.model import Llama
from training.parallel.actions import Span
from training.parallel.partition import EMBED, HEAD, NORM, Layout
from training.parallel.schedules import SCHEDULES, SINGLE_STAGE, V_PLACEMENT

IGNORE = -100
SCHEDULE_CLASSES = {name: getattr(torch_schedules, info.torch_class) for name, info in SCHEDULES.items()}


@dataclass(frozen=True)
class Plan:
    """Where every stage runs: schedule, pipeline and data-parallel degrees, stages per rank, the layout."""

    schedule: str
    pp: int
    dp: int
    stages_per_rank: int
    microbatches: int
    layout: Layout

    @property
    def n_stages(self) -> int:
        return self.pp * self.stages_per_rank

    def stages_of(self, pp_rank: int) -> list[int]:
        if self.schedule in V_PLACEMENT:
            return [pp_rank, 2 * self.pp - 1 - pp_rank]
        return [pp_rank + k * self.pp for k in range(self.stages_per_rank)]

    def rank_of(self, stage: int) -> int:
        return next(r for r in range(self.pp) if stage in self.stages_of(r))

    def runtime_schedule(self) -> str:
        """1F1B with fewer microbatches than stages is exactly GPipe's order; torch refuses it, so run GPipe."""
        if self.schedule == "1f1b" and self.microbatches < self.n_stages:
            return "gpipe"
        return self.schedule


def check_plan(plan: Plan) -> None:
    """Refuse what a schedule cannot run before any process waits on another (no hangs)."""
    if plan.schedule not in SCHEDULE_CLASSES:
        raise ValueError(f"unknown schedule {plan.schedule!r}; choose one of {', '.join(SCHEDULE_CLASSES)}")
    if plan.schedule in SINGLE_STAGE and plan.stages_per_rank != 1:
        raise ValueError(f"{plan.schedule} runs one stage per rank; set pipeline.stages_per_rank=1 or use "
                         "interleaved1f1b")
    if plan.schedule in V_PLACEMENT and plan.stages_per_rank != 2:
        raise ValueError(f"{plan.schedule} places exactly 2 stages per rank (V shape); set pipeline.stages_per_rank=2")
    if plan.schedule == "dualpipev" and plan.microbatches < plan.n_stages:
        raise ValueError(f"dualpipev needs at least as many microbatches as stages ({plan.n_stages}), got "
                         f"{plan.microbatches}; raise pipeline.microbatches or use zbv")
    if plan.microbatches < 1:
        raise ValueError("pipeline.microbatches must be at least 1")
    if len(plan.layout.stages) != plan.n_stages:
        raise ValueError(f"the layout has {len(plan.layout.stages)} stages, the plan {plan.n_stages} "
                         f"({plan.pp} ranks × {plan.stages_per_rank})")


def stage_module(full: Llama, units: tuple[str, ...]) -> Llama:
    """A copy of the model holding only `units` (names kept), for one pipeline stage."""
    return keep_units(copy.deepcopy(full), units)


def keep_units(part: Llama, units: tuple[str, ...]) -> Llama:
    """Drop, in place, every unit of the model not in `units`; parameter names stay those of the whole model."""
    keep = {u.split(".", 1)[1] for u in units if u.startswith("layers.")}
    for name in list(part.layers):
        if name not in keep:
            del part.layers[name]
    if EMBED not in units:
        part.embed = None
    if NORM not in units:
        part.norm = None
    if HEAD not in units:
        part.head = None
    return part


class TimedStage(PipelineStage):
    """A PipelineStage that records F / B / I / W spans of its microbatches while `spans` is a list."""

    spans: list[Span] | None = None
    rank: int = 0

    def _timed(self, kind: str, chunk: int, run):  # noqa: ANN001 - a bound super() method
        if self.spans is None:
            return run()
        start = time.perf_counter()
        out = run()
        self.spans.append(Span(self.rank, self.stage_index, kind, chunk, start, time.perf_counter()))
        return out

    def forward_one_chunk(self, fwd_chunk_id: int, *args, **kwargs):  # noqa: ANN002, ANN003
        return self._timed("F", fwd_chunk_id, lambda: super(TimedStage, self).forward_one_chunk(
            fwd_chunk_id, *args, **kwargs))

    def backward_one_chunk(self, bwd_chunk_id: int, *args, **kwargs):  # noqa: ANN002, ANN003
        full = kwargs.get("full_backward", args[1] if len(args) > 1 else True)
        return self._timed("B" if full else "I", bwd_chunk_id, lambda: super(TimedStage, self).backward_one_chunk(
            bwd_chunk_id, *args, **kwargs))

    def backward_weight_one_chunk(self, bwd_chunk_id: int, *args, **kwargs):  # noqa: ANN002, ANN003
        return self._timed("W", bwd_chunk_id, lambda: super(TimedStage, self).backward_weight_one_chunk(
            bwd_chunk_id, *args, **kwargs))


@dataclass
class StepLoss:
    """Loss of one microbatch: summed token cross-entropy over the tokens of the whole step (set per step)."""

    tokens: float = 1.0

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=IGNORE, reduction="sum") / self.tokens


@dataclass
class Pipeline:
    """This rank's stages and the schedule that drives them."""

    plan: Plan
    pp_rank: int
    stages: list[TimedStage]
    parts: list[Llama]
    schedule: object
    loss: StepLoss = field(default_factory=StepLoss)

    @property
    def has_first(self) -> bool:
        return 0 in [s.stage_index for s in self.stages]

    @property
    def has_last(self) -> bool:
        return self.plan.n_stages - 1 in [s.stage_index for s in self.stages]

    def run(self, inputs: torch.Tensor, targets: torch.Tensor, *, tokens: float, train: bool = True,
            spans: list[Span] | None = None) -> float:
        """One schedule step over a batch (padded to equal microbatches); returns this rank's summed loss."""
        inputs, targets = pad_to_microbatches(inputs, targets, self.plan.microbatches)
        self.loss.tokens = tokens
        for stage in self.stages:
            stage.spans = spans
        losses: list[torch.Tensor] = []
        args = (inputs,) if self.has_first else ()
        target = targets if self.has_last else None
        if train:
            self.schedule.step(*args, target=target, losses=losses)
        elif self.plan.schedule in V_PLACEMENT:
            # torch 2.13's eval() of V-placement schedules fails ("can't steal_bwd_input if this stage doesn't
            # have backward"); a full step gives the same loss, and its gradients are dropped
            with torch.enable_grad():
                self.schedule.step(*args, target=target, losses=losses)
            for part in self.parts:
                part.zero_grad(set_to_none=True)
        else:
            self.schedule.eval(*args, target=target, losses=losses)
        for stage in self.stages:
            stage.spans = None
        return float(sum(float(x.detach()) for x in losses)) if losses else 0.0


def pad_to_microbatches(inputs: torch.Tensor, targets: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows added so the batch splits into m equal microbatches; padded targets are ignored."""
    extra = (-inputs.shape[0]) % m
    if extra == 0:
        return inputs, targets
    pad_in = inputs[:1].expand(extra, -1)
    pad_t = torch.full((extra, targets.shape[1]), IGNORE, dtype=targets.dtype, device=targets.device)
    return torch.cat([inputs, pad_in]), torch.cat([targets, pad_t])


def build_pipeline(full: Llama, plan: Plan, *, pp_rank: int, device: torch.device, pp_group: object) -> Pipeline:
    """Stage modules for this rank (weights from `full`, which every rank built with the same seed) + schedule."""
    check_plan(plan)
    loss = StepLoss()
    stages, parts = [], []
    for index in plan.stages_of(pp_rank):
        part = stage_module(full, plan.layout.stages[index]).to(device)
        stage = TimedStage(part, index, plan.n_stages, device, group=pp_group)
        stage.rank = pp_rank
        stages.append(stage)
        parts.append(part)
    tie_local_copies(parts, full.cfg.tie_embeddings)
    name = plan.runtime_schedule()
    cls = SCHEDULE_CLASSES[name]
    kwargs = dict(n_microbatches=plan.microbatches, loss_fn=loss, scale_grads=False)
    try:
        schedule = cls(stages[0], **kwargs) if name in SINGLE_STAGE else cls(stages, **kwargs)
    except ValueError as err:  # a microbatch count the schedule cannot order
        raise ValueError(f"{name} with {plan.microbatches} microbatches on {plan.n_stages} stages: {err}") from err
    return Pipeline(plan=plan, pp_rank=pp_rank, stages=stages, parts=parts, schedule=schedule, loss=loss)


def tie_local_copies(parts: list[Llama], tied: bool) -> None:
    """When one rank holds both the embedding and the head (V placement), they share one tensor again."""
    if not tied:
        return
    embeds = [p.embed for p in parts if p.embed is not None]
    heads = [p for p in parts if p.head is not None]
    if embeds and heads:
        heads[0].head.weight = embeds[0].weight
