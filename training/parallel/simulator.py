"""Pipeline schedule simulator: the per-rank action order of each schedule, run against per-action costs.

Where each order comes from (torch 2.13 `torch/distributed/pipelining/schedules.py`):
- gpipe, 1f1b: written here from the loops torch actually executes (`ScheduleGPipe._step_microbatches`,
  `Schedule1F1B._step_microbatches`). Their `_get_pipeline_order` IR is descriptive only, and for 1F1B's
  last rank it is wrong in 2.13 (starts at F1, ends at F8 for m=8).
- interleaved1f1b, zero-bubble, zbv, dualpipev: the schedule class itself, built on stand-in stages (no
  process group), read from `pipeline_order_with_comms`, the list `_PipelineScheduleRuntime` steps through.
  Comms, UNSHARD/RESHARD and REDUCE_GRAD are dropped; OVERLAP_F_B runs its sub-actions in order, as torch does.
Timing model: a rank runs its list in order; an action starts once its rank is free and its inputs exist, plus
`Costs.latency` per cross-rank hop. Sends never block (the runtime posts recvs early and waits at the compute).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace

from training.parallel.actions import INPUT_GRAD_KINDS, STAGE_KINDS, Action, Span, stage_ranks
from training.parallel.schedules import SCHEDULE_NAMES, SCHEDULES as TABLE, SINGLE_STAGE
from training.parallel.timeline import idle_fractions, peak_in_flight

Order = tuple[tuple[Action, ...], ...]  # one tuple per rank, in the order that rank runs them

# The multi-stage schedules are replayed with torch's own class (training/parallel/schedules.py names it).
TORCH_CLASSES = {name: info.torch_class for name, info in TABLE.items() if name not in SINGLE_STAGE}
SCHEDULES = SCHEDULE_NAMES


class ScheduleDeadlock(RuntimeError):
    """No rank can run its next action: the order waits on something that never happens or comes later."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Costs:
    """Time of one action of one stage; `i` and `w` default to half of `b` (the split Zero Bubble makes)."""

    f: float = 1.0  # forward
    b: float = 2.0  # full backward (input and weight grads)
    i: float | None = None  # input-grad half of b (torch BACKWARD_INPUT)
    w: float | None = None  # weight-grad half of b (torch BACKWARD_WEIGHT)
    latency: float = 0.0  # added to every dependency that crosses ranks (one p2p message)

    def __post_init__(self) -> None:
        values = {"f": self.f, "b": self.b, "i": self.i, "w": self.w, "latency": self.latency}
        bad = {k: v for k, v in values.items() if v is not None and (v < 0 or not math.isfinite(v))}
        if bad:
            raise ValueError(f"costs must be finite and >= 0, got {bad}")

    @classmethod
    def split(cls, *, f: float, i: float, w: float, latency: float = 0.0) -> Costs:
        """Costs with B split into I and W, and B = I + W for the actions that stay whole."""
        return cls(f=f, b=i + w, i=i, w=w, latency=latency)

    def of(self, kind: str) -> float:
        half = self.b / 2
        return {"F": self.f, "B": self.b, "I": half if self.i is None else self.i,
                "W": half if self.w is None else self.w}[kind]


@dataclass(frozen=True, slots=True)
class Simulation:
    """What running an order gave: the spans and the figures the closed forms predict."""

    spans: tuple[Span, ...]
    makespan: float
    idle_per_rank: tuple[float, ...]  # idle / makespan, per rank
    bubble_fraction: float  # idle / (ranks * makespan)
    peak_in_flight: dict[int, int]  # stage -> most microbatches forwarded and not yet released (B or W)


# -- orders ---------------------------------------------------------------------------------------------------


def schedule_order(name: str, *, n_ranks: int, n_microbatches: int, stages_per_rank: int | None = None) -> Order:
    """The per-rank action order of schedule `name` (one of SCHEDULES); multi-stage ones default to 2 per rank."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    if n_ranks < 1 or n_microbatches < 1:
        raise ValueError(f"need n_ranks >= 1 and n_microbatches >= 1, got {n_ranks} and {n_microbatches}")
    if name in SINGLE_STAGE:
        if stages_per_rank not in (None, 1):
            raise ValueError(f"{name} runs one stage per rank, got stages_per_rank={stages_per_rank}")
        build = gpipe_order if name == "gpipe" else one_f_one_b_order
        return build(n_ranks=n_ranks, n_microbatches=n_microbatches)
    return torch_order(name, n_ranks=n_ranks, n_microbatches=n_microbatches, stages_per_rank=stages_per_rank or 2)


def gpipe_order(*, n_ranks: int, n_microbatches: int) -> Order:
    """All forwards, then all backwards in microbatch order (ScheduleGPipe._step_microbatches)."""
    mbs = range(n_microbatches)
    return tuple(tuple([Action(r, r, "F", k) for k in mbs] + [Action(r, r, "B", k) for k in mbs])
                 for r in range(n_ranks))


def one_f_one_b_order(*, n_ranks: int, n_microbatches: int) -> Order:
    """min(m, p - rank) warm-up forwards, then B,F pairs, then the remaining backwards (Schedule1F1B).

    torch's Schedule1F1B refuses m < p in its constructor; the order itself is well defined there."""
    order = []
    for r in range(n_ranks):
        warmup = min(n_microbatches, n_ranks - r)
        ops = [Action(r, r, "F", k) for k in range(warmup)]
        for k in range(n_microbatches):
            ops.append(Action(r, r, "B", k))
            if warmup + k < n_microbatches:
                ops.append(Action(r, r, "F", warmup + k))
        order.append(tuple(ops))
    return tuple(order)


def torch_order(name: str, *, n_ranks: int, n_microbatches: int, stages_per_rank: int) -> Order:
    """Build torch's schedule class on stand-in stages and read back the compute actions it would run."""
    from torch.distributed.pipelining import schedules  # heavy import, only for the multi-stage schedules

    n_stages = n_ranks * stages_per_rank
    stand_ins = [SimpleNamespace(num_stages=n_stages, group_size=n_ranks, group_rank=0, submod=None)
                 for _ in range(stages_per_rank)]  # the attributes the constructors read; no process group
    schedule = getattr(schedules, TORCH_CLASSES[name])(stand_ins, n_microbatches)
    order = []
    for rank in range(n_ranks):
        ops = []
        for a in schedule.pipeline_order_with_comms[rank]:
            for leaf in a.sub_actions or (a,):  # OVERLAP_F_B: torch runs the sub-actions one after another
                if leaf.computation_type.value not in STAGE_KINDS:
                    continue
                if schedule.stage_index_to_group_rank[leaf.stage_index] != rank:  # torch's placement (V or loop)
                    raise RuntimeError(f"{TORCH_CLASSES[name]} puts {leaf} on rank {rank}, its stage map says "
                                       f"{schedule.stage_index_to_group_rank[leaf.stage_index]}")
                ops.append(Action(rank, leaf.stage_index, leaf.computation_type.value, leaf.microbatch_index))
        order.append(tuple(ops))
    return tuple(order)


def validate_order(order: Order, *, n_microbatches: int) -> None:
    """Every stage forwards every microbatch once and backs it up once: one B, or one I and one W."""
    stage_ranks(a for ops in order for a in ops)  # each stage on exactly one rank
    seen: dict[tuple[int, str, int], int] = {}
    for ops in order:
        for a in ops:
            seen[(a.stage, a.kind, a.microbatch)] = seen.get((a.stage, a.kind, a.microbatch), 0) + 1
    stages = sorted({s for s, _, _ in seen})
    problems = [f"{k}{mb}@stage{s} x{n}" for (s, k, mb), n in seen.items() if n > 1]
    for s in stages:
        for mb in range(n_microbatches):
            has = {k: seen.get((s, k, mb), 0) for k in STAGE_KINDS}
            if has["F"] != 1 or not (has["B"] == 1 and has["I"] + has["W"] == 0
                                     or has["B"] == 0 and has["I"] == has["W"] == 1):
                problems.append(f"stage {s} microbatch {mb}: {has}")
    if problems:
        raise ValueError(f"order does not run each action exactly once: {problems[:8]}")


# -- simulation -----------------------------------------------------------------------------------------------


def _needs(a: Action, last_stage: int) -> list[tuple[tuple[str, ...], int]]:
    """What `a` waits for: (kinds any of which satisfies it, stage), all for the same microbatch."""
    if a.kind == "F":
        return [(("F",), a.stage - 1)] if a.stage > 0 else []
    if a.kind == "W":
        return [(("I",), a.stage)]
    own = [(("F",), a.stage)]
    return own if a.stage == last_stage else own + [(tuple(INPUT_GRAD_KINDS), a.stage + 1)]


def simulate(order: Order, *, costs: Costs | Mapping[int, Costs] = Costs()) -> Simulation:
    """Run each rank's actions in order, each as soon as its inputs exist; `costs` may differ per stage."""
    owner = stage_ranks(a for ops in order for a in ops)
    last_stage = max(owner)
    if not isinstance(costs, Costs) and (missing := sorted(set(owner) - set(costs))):
        raise ValueError(f"costs has no entry for stages {missing}; give one Costs per stage or a single Costs")
    if misplaced := [a for r, ops in enumerate(order) for a in ops if a.rank != r][:3]:
        raise ValueError(f"order[r] must hold rank r's actions only; found {misplaced}")
    done: dict[tuple[str, int, int], float] = {}  # (kind, stage, microbatch) -> end time
    clock, heads, spans = [0.0] * len(order), [0] * len(order), []
    progress = True
    while progress:
        progress = False
        for r, ops in enumerate(order):
            while heads[r] < len(ops):
                start = _ready_at(ops[heads[r]], done=done, owner=owner, last_stage=last_stage, costs=costs,
                                  free_at=clock[r])
                if start is None:
                    break
                a = ops[heads[r]]
                end = start + _cost(costs, a.stage).of(a.kind)
                spans.append(Span(r, a.stage, a.kind, a.microbatch, start, end))
                done[(a.kind, a.stage, a.microbatch)] = clock[r] = end
                heads[r] += 1
                progress = True
    if any(h < len(ops) for h, ops in zip(heads, order)):
        raise ScheduleDeadlock(_deadlock_report(order, heads=heads, done=done, last_stage=last_stage))
    return summarize(spans)


def _cost(costs: Costs | Mapping[int, Costs], stage: int) -> Costs:
    return costs if isinstance(costs, Costs) else costs[stage]


def _ready_at(a: Action, *, done: dict, owner: dict[int, int], last_stage: int,
              costs: Costs | Mapping[int, Costs], free_at: float) -> float | None:
    """Earliest start of `a` on a rank free at `free_at`, or None while an input is missing."""
    start = free_at
    for kinds, stage in _needs(a, last_stage):
        ends = [done[(k, stage, a.microbatch)] for k in kinds if (k, stage, a.microbatch) in done]
        if not ends:
            return None
        hop = _cost(costs, stage).latency if owner[stage] != a.rank else 0.0
        start = max(start, min(ends) + hop)
    return start


def _deadlock_report(order: Order, *, heads: list[int], done: dict, last_stage: int) -> str:
    """Which action each stuck rank waits at, what it needs, and where that comes from."""
    pending = {(a.kind, a.stage, a.microbatch): (r, i) for r, ops in enumerate(order) for i, a in enumerate(ops)}
    lines = []
    for r, ops in enumerate(order):
        if heads[r] == len(ops):
            continue
        a = ops[heads[r]]
        for kinds, stage in _needs(a, last_stage):
            keys = [(k, stage, a.microbatch) for k in kinds]
            if any(k in done for k in keys):
                continue
            where = [f"rank {pending[k][0]} position {pending[k][1]}" for k in keys if k in pending]
            lines.append(f"rank {r} stuck at {a.kind}{a.microbatch}@stage{a.stage} (position {heads[r]}): needs "
                         f"{'/'.join(kinds)}{a.microbatch}@stage{stage}, "
                         + (f"scheduled at {', '.join(where)}" if where else "which no rank runs"))
    return "schedule deadlocks; " + "; ".join(lines)


def summarize(spans: list[Span] | tuple[Span, ...]) -> Simulation:
    """Makespan, idle fractions and peak in-flight of a set of spans (simulated or measured)."""
    spans = tuple(spans)
    makespan = max(s.end for s in spans) - min(s.start for s in spans)
    per_rank = idle_fractions(spans)
    return Simulation(spans=spans, makespan=makespan, idle_per_rank=tuple(per_rank.values()),
                      bubble_fraction=sum(per_rank.values()) / len(per_rank), peak_in_flight=peak_in_flight(spans))


def costs_from_spans(spans: list[Span] | tuple[Span, ...], *, latency: float = 0.0) -> dict[int, Costs]:
    """Per-stage median durations of measured spans, to replay a measured step through `simulate`."""
    durations: dict[tuple[int, str], list[float]] = {}
    for s in spans:
        durations.setdefault((s.stage, s.kind), []).append(s.duration)
    med = {key: sorted(v)[len(v) // 2] for key, v in durations.items()}
    out = {}
    for stage in sorted({stage for stage, _ in med}):
        i, w = med.get((stage, "I")), med.get((stage, "W"))
        b = med.get((stage, "B"), (i or 0.0) + (w or 0.0))
        out[stage] = Costs(f=med.get((stage, "F"), 0.0), b=b, i=i, w=w, latency=latency)
    return out


# -- closed forms (training-anchors §1.1) ---------------------------------------------------------------------


def bubble_fraction(*, n_ranks: int, n_microbatches: int, chunks: int = 1) -> float:
    """(p-1)/(v·m+p-1): GPipe and 1F1B (v=1, Huang et al. 2019), interleaved 1F1B (Narayanan et al. 2021)."""
    return (n_ranks - 1) / (chunks * n_microbatches + n_ranks - 1)


def bubble_time_1f1b(*, n_ranks: int, costs: Costs) -> float:
    """Idle time per rank of GPipe, 1F1B and interleaved 1F1B (per-chunk costs): (p-1)(F+B)."""
    return (n_ranks - 1) * (costs.f + costs.b)


def bubble_time_zb_h1(*, n_ranks: int, costs: Costs) -> float:
    """Idle time per rank of ZB-H1: (p-1)(F+I-W); Qi et al. 2024 write (p-1)(T_F+T_B-T_W) with B = input grad,
    the DualPipe README (p-1)(F+B-2W) with B = I+W. At F=I=W it is 1/3 of 1F1B's (p-1)(F+I+W)."""
    return (n_ranks - 1) * (costs.f + costs.of("I") - costs.of("W"))


def zb_h1_bubble_fraction(*, n_ranks: int, n_microbatches: int, costs: Costs, chunks: int = 1) -> float:
    """ZB-H1 idle over ranks x makespan, makespan = v·m(F+I+W) + idle, with per-chunk costs.

    chunks > 1 is not a published form: it is what torch's interleaved ZB1P order gives here (ZB-H1's ÷ v)."""
    idle = bubble_time_zb_h1(n_ranks=n_ranks, costs=costs)
    work = chunks * n_microbatches * (costs.f + costs.of("I") + costs.of("W"))
    return idle / (work + idle)
