"""Run a pipeline whose embedding and output layer are split by vocabulary over all its ranks (vocab.py), in the
order vocab_schedule.py slots passes S and T into the base schedule.

torch.distributed.pipelining's stages and schedules cannot run an action that every rank takes part in (its IR
has compute, send/receive and resharding actions only, all per stage), so this runtime drives the stage modules
itself, as the SkipPipe runtime does: activations, gradients and the final hidden state (from the last stage to
every rank) travel by tagged point-to-point messages on the pipeline group; the vocabulary collectives run on
two more groups over the same ranks (barrier 1's all-gathers, barrier 2's all-reduces), so that no collective's
internal tag can meet a message tag on one connection and each kind is started in one order on every rank. They
are started asynchronously and waited for only where their result is needed (pass T, the last stage's B, the
end of the step), so the other ranks go on computing meanwhile. Per step: one embedding all-reduce for the
whole batch, then the order (F/B of this rank's stages, S/T of every microbatch), then one all-reduce of the
embedding's gradient. The loss is summed over a microbatch's tokens and divided by the tokens of the whole optimizer step,
as pipeline.py's StepLoss does.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from training.model import Llama
from training.parallel.actions import VOCAB_STAGE, Action, Span
from training.parallel.partition import HEAD, unit_cost
from training.parallel.pipeline import IGNORE, Plan, pad_to_microbatches, stage_module
from training.parallel.simulator import Costs, schedule_order
from training.parallel.vocab import (OutputPass, Pending, VocabShard, embed_backward, embed_forward, finish,
                                     output_backward, output_forward, shard_of)
from training.parallel.vocab_schedule import VocabCosts, vocab_order

SCHEDULES = ("gpipe", "1f1b", "interleaved1f1b")  # F/B orders; the I/W split of zero-bubble is not run here
HIDDEN_TAG = 1 << 24  # message tags of the final hidden state (+ microbatch), above every stage message's tag


class VocabLayers(nn.Module):
    """This rank's rows of the embedding and of the output layer (one tensor when tied), named as in the model."""

    def __init__(self, full: Llama, shard: VocabShard, mesh: object | None = None) -> None:
        super().__init__()
        self.shard = shard
        self.mesh = mesh  # the pipeline's ranks as a 1-D DeviceMesh (None in one process: nothing is split)
        self.embed = nn.Module()
        self.embed.weight = nn.Parameter(shard_of(full.embed.weight.detach(), shard))
        if full.cfg.tie_embeddings:
            self.head = self.embed
        else:
            self.head = nn.Module()
            self.head.weight = nn.Parameter(shard_of(full.head.weight.detach(), shard))

    def _ours(self, key: str, value: object) -> bool:
        return torch.is_tensor(value) and ("embed.weight" in key or "head.weight" in key) and \
            tuple(value.shape) == (self.shard.rows, self.embed.weight.shape[1])

    def to_checkpoint(self, state: dict) -> dict:
        """Entries of this rank's rows (weights, optimizer moments) as row-sharded DTensors of the whole (V, d)
        matrix, padding dropped: the ranks' checkpoints then form one model, which export reads whole and DCP
        reshards on resume."""
        if self.mesh is None:
            return state
        from torch.distributed.tensor import DTensor, Shard

        real, (v, d) = self.shard.real_rows, (self.shard.vocab_size, self.embed.weight.shape[1])
        return {k: DTensor.from_local(x[:real], self.mesh, [Shard(0)], run_check=False, shape=torch.Size([v, d]),
                                      stride=(d, 1)) if self._ours(k, x) else x for k, x in state.items()}

    def from_checkpoint(self, state: dict) -> dict:
        """The inverse of `to_checkpoint`: each DTensor's local rows, padded back to the shard."""
        from torch.distributed.tensor import DTensor

        out = {}
        for k, x in state.items():
            if isinstance(x, DTensor):
                local = x.to_local()
                x = local.new_zeros(self.shard.rows, local.shape[1])
                x[:len(local)] = local
            out[k] = x
        return out


def check_vocab_plan(plan: Plan) -> None:
    """Refuse what the vocabulary-parallel runtime cannot run, before any rank waits on another."""
    if plan.schedule not in SCHEDULES:
        raise ValueError(f"pipeline.vocab_parallel runs the schedules {', '.join(SCHEDULES)}; got {plan.schedule!r}")
    if len(plan.layout.stages) != plan.n_stages:
        raise ValueError(f"the layout has {len(plan.layout.stages)} stages, the plan {plan.n_stages}")


def unit_costs(plan: Plan, head_cost: float) -> tuple[Costs, VocabCosts]:
    """The costs the placement replay uses: a mean stage's forward is 1, backward 2; each rank's vocabulary
    passes are its 1/p share of the output layer's FLOPs (`head_cost`, in the layout's units), T twice S."""
    share = head_cost / plan.pp / (sum(plan.layout.costs) / len(plan.layout.costs))
    return Costs(f=1.0, b=2.0), VocabCosts(s=share, t=2 * share)


@dataclass
class VocabPipeline:
    """This rank's stages, vocabulary rows and the order that drives them."""

    plan: Plan
    barriers: int
    pp_rank: int
    ranks: list[int]  # global rank of each pipeline rank (p2p addresses)
    parts: list[Llama]  # this rank's stage modules, in stage order
    vocab: VocabLayers
    order: tuple[Action, ...]
    group: object  # the pipeline group (messages)
    vocab_group: object  # the same ranks: the statistics' all-gathers (barrier 1) and the embedding's all-reduces
    grad_group: object  # the same ranks again: barrier 2's all-reduces, started in their own order
    _sends: list = field(default_factory=list)
    _local: dict = field(default_factory=dict)  # messages between two stages of this rank (one-rank pipelines)

    @property
    def stages(self) -> list[int]:
        return self.plan.stages_of(self.pp_rank)

    @property
    def last_stage(self) -> int:
        return self.plan.n_stages - 1

    @property
    def has_first(self) -> bool:
        return 0 in self.stages

    @property
    def has_last(self) -> bool:
        return self.last_stage in self.stages

    def module(self, stage: int) -> Llama:
        return self.parts[self.stages.index(stage)]

    def tag(self, stage: int, microbatch: int, backward: bool) -> int:
        return 2 * (microbatch * self.plan.n_stages + stage) + int(backward)

    def send(self, t: torch.Tensor, stage: int, microbatch: int, backward: bool) -> None:
        """Post `t` for `stage`'s action on `microbatch` (F: the activation, B: the gradient), without waiting."""
        tag = self.tag(stage, microbatch, backward)
        if self.plan.rank_of(stage) == self.pp_rank:
            self._local[tag] = t.detach().clone()
            return
        dst = self.ranks[self.plan.rank_of(stage)]
        self._sends.append(dist.isend(t.detach().contiguous(), dst, group=self.group, tag=tag))

    def recv(self, like: torch.Tensor, stage: int, microbatch: int, backward: bool) -> torch.Tensor:
        """The tensor for `stage`'s action on `microbatch`, from the rank of its neighbour stage."""
        tag = self.tag(stage, microbatch, backward)
        src = self.plan.rank_of(stage + 1 if backward else stage - 1)
        if src == self.pp_rank:
            return self._local.pop(tag)
        out = torch.empty_like(like)
        dist.recv(out, self.ranks[src], group=self.group, tag=tag)
        return out

    def share_hidden(self, x: torch.Tensor, microbatch: int) -> torch.Tensor:
        """The last stage's final hidden state on every rank (the input of pass S): posted by the last stage's rank
        to each other rank as a tagged message, so no rank waits for any but that one."""
        tag = HIDDEN_TAG + microbatch
        last = self.plan.rank_of(self.last_stage)
        if self.pp_rank == last:
            for r in range(self.plan.pp):
                if r != last:
                    self._sends.append(dist.isend(x.contiguous(), self.ranks[r], group=self.group, tag=tag))
            return x
        dist.recv(x, self.ranks[last], group=self.group, tag=tag)
        return x

    def run(self, inputs: torch.Tensor, targets: torch.Tensor, *, tokens: float, train: bool = True,
            spans: list[Span] | None = None) -> float:
        """One step over a batch (padded to equal microbatches); returns the loss this rank adds (last stage)."""
        m = self.plan.microbatches
        inputs, targets = pad_to_microbatches(inputs, targets, m)
        shard, weight_in, weight_out = self.vocab.shard, self.vocab.embed.weight, self.vocab.head.weight
        h0 = embed_forward(inputs, weight_in, shard, self.vocab_group).chunk(m)  # every rank: one collective
        targets_mb = targets.chunk(m)
        like = h0[0].detach()
        saved: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        states: dict[int, OutputPass] = {}  # pass S done, its statistics in flight or combined
        hidden: dict[int, torch.Tensor] = {}  # last stage: the final hidden state, waiting for S
        grad_hidden: dict[int, Pending] = {}  # last stage: ∂loss/∂hidden from pass T (two barriers)
        in_flight: list[Pending] = []  # other ranks' shares of barrier 2, waited for at the end of the step
        grad_h0: dict[int, torch.Tensor] = {}
        scale = torch.tensor(1.0 / tokens, device=like.device)
        total = 0.0
        t_done: set[int] = set()
        b_done: set[int] = set()

        def release(i: int) -> None:
            """Drop pass S's state once T has run and (one barrier, last stage) B has taken ∂x from it."""
            if i in t_done and (self.barriers == 2 or not self.has_last or i in b_done):
                del states[i]

        for a in self.order:
            if not train and a.kind in ("B", "T"):
                continue
            start = time.perf_counter()  # spans start after their input arrived (the wait is bubble)
            end = None  # and end before their output is sent, so a receiver can never start before the sender ended
            if a.kind == "F":
                x = h0[a.microbatch].detach() if a.stage == 0 else self.recv(like, a.stage, a.microbatch, False)
                start = time.perf_counter()
                x.requires_grad_(train)
                with torch.set_grad_enabled(train):
                    out = self.module(a.stage)(x)
                if a.stage == self.last_stage:
                    hidden[a.microbatch] = out
                else:
                    end = time.perf_counter()
                    self.send(out, a.stage + 1, a.microbatch, False)
                if train:
                    saved[(a.stage, a.microbatch)] = (x, out)
            elif a.kind == "S":
                x = hidden[a.microbatch].detach() if self.has_last else torch.empty_like(like)
                x = self.share_hidden(x, a.microbatch)
                start = time.perf_counter()
                if not train:
                    hidden.pop(a.microbatch, None)
                states[a.microbatch] = output_forward(x, weight_out, targets_mb[a.microbatch], shard,
                                                      self.vocab_group, barriers=self.barriers)
            elif a.kind == "T":
                state = finish(states[a.microbatch])  # waits for barrier 1
                start = time.perf_counter()
                pending, grad_w = output_backward(state, weight_out, scale.expand(len(state.loss)), self.grad_group)
                _accumulate(weight_out, grad_w)
                total += float(state.loss.sum()) / tokens if self.has_last else 0.0
                if self.barriers == 2:
                    (grad_hidden.__setitem__(a.microbatch, pending) if self.has_last else in_flight.append(pending))
                t_done.add(a.microbatch)
                release(a.microbatch)
            else:  # B
                x, out = saved.pop((a.stage, a.microbatch))
                if a.stage == self.last_stage:
                    hidden.pop(a.microbatch)
                    if self.barriers == 2:
                        grad = grad_hidden.pop(a.microbatch).wait()  # barrier 2
                    else:
                        grad = (finish(states[a.microbatch]).grad_x * scale).to(out.dtype)  # barrier 1
                        b_done.add(a.microbatch)
                        release(a.microbatch)
                    grad = grad.reshape(out.shape)
                else:
                    grad = self.recv(like, a.stage, a.microbatch, True)
                start = time.perf_counter()
                out.backward(grad)
                if a.stage == 0:
                    grad_h0[a.microbatch] = x.grad
                else:
                    end = time.perf_counter()
                    self.send(x.grad, a.stage - 1, a.microbatch, True)
            if spans is not None:
                spans.append(Span(self.pp_rank, a.stage, a.kind, a.microbatch, start,
                                  time.perf_counter() if end is None else end))
        for state in states.values():  # evaluation (no T): every rank's all-gathers complete before the step ends
            finish(state)
            total += float(state.loss.sum()) / tokens if self.has_last else 0.0
        for pending in in_flight:
            pending.wait()
        if train:
            grad = torch.cat([grad_h0[i] for i in range(m)]) if self.has_first else torch.zeros_like(
                torch.cat(h0).detach())
            _accumulate(weight_in, embed_backward(inputs, grad, shard, self.vocab_group))
        for handle in self._sends:
            handle.wait()
        self._sends.clear()
        return total


def _accumulate(p: nn.Parameter, grad: torch.Tensor) -> None:
    if p.grad is None:
        p.grad = grad.to(p.dtype)
    else:
        p.grad += grad


def build_vocab_pipeline(full: Llama, plan: Plan, *, barriers: int, seq_len: int, pp_rank: int, ranks: list[int],
                         group: object, vocab_groups: tuple[object, object],
                         device: torch.device = torch.device("cpu")) -> VocabPipeline:
    """This rank's stage modules (weights from `full`, built alike on every rank), vocabulary rows and order."""
    check_vocab_plan(plan)
    parts = []
    for s in plan.stages_of(pp_rank):
        part = stage_module(full, plan.layout.stages[s])
        part.embed = part.head = None
        parts.append(part.to(device))
    mesh = None
    if dist.is_initialized() and group is not None:
        from torch.distributed.device_mesh import DeviceMesh

        mesh = DeviceMesh.from_group(group, device.type)
    vocab = VocabLayers(full, VocabShard(full.cfg.vocab_size, plan.pp, pp_rank), mesh).to(device)
    base = schedule_order(plan.runtime_schedule(), n_ranks=plan.pp, n_microbatches=plan.microbatches,
                          stages_per_rank=plan.stages_per_rank if plan.stages_per_rank > 1 else None)
    costs, vocab_costs = unit_costs(plan, unit_cost(full.cfg, HEAD, seq_len))
    order = vocab_order(base, barriers=barriers, costs=costs, vocab=vocab_costs)[pp_rank]
    return VocabPipeline(plan=plan, barriers=barriers, pp_rank=pp_rank, ranks=ranks, parts=parts, vocab=vocab,
                         order=order, group=group, vocab_group=vocab_groups[0], grad_group=vocab_groups[1])


