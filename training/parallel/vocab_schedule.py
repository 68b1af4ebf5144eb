"""Where the vocabulary passes go: a base schedule's per-rank order with pass S and pass T of every microbatch
slotted in on every rank (Vocabulary Parallelism, Yeung et al. 2025, §4-5).

S_i (the output layer's forward on the rank's vocabulary rows) needs the last stage's F_i and ends in a barrier
(all-reduces over the pipeline group); the last stage's backward B_i needs ∂loss/∂x, which is known after T_i with
two barriers (Vocab-2: T sums it) and after S_i with one (Vocab-1: S forms it; T only computes the local weight
gradient, no communication).

torch.distributed.pipelining's schedule IR has no action that every rank runs together, so the passes are placed
here, over our own actions (as the SkipPipe runtime does), by a timed replay of the base order under the
simulator's model: a rank that is free runs the next vocabulary pass of the one global sequence
S_0 (T_0) S_1 (T_1) ... as soon as its input exists, before its own next action, and a collective pass starts
when the last rank arrives. Vocab-1's T passes are not collective: a rank runs them when its next action would
wait, and the rest at the end. The per-rank order is read off the replay. In that order every wait (a message, a
collective) is for something that started earlier in the replay, so ranks running it with any real timings
cannot deadlock. A rank owing `HELD` weight-gradient passes runs the oldest before its next own action: each
owed pass holds a microbatch's logits shard.
"""
from __future__ import annotations

from dataclasses import dataclass

from training.parallel.actions import VOCAB_STAGE, Action, Span
from training.parallel.simulator import Costs, ScheduleDeadlock, Simulation, summarize

Order = tuple[tuple[Action, ...], ...]
HELD = 2  # Vocab-1: owed T passes (logits shards kept) at which a rank stops deferring them


@dataclass(frozen=True, kw_only=True, slots=True)
class VocabCosts:
    """Time of one rank's share of the vocabulary passes of one microbatch, and of one barrier."""

    s: float  # logits of V/p rows and the softmax statistics (the paper's 2bshV/p forward)
    t: float  # softmax gradient, ∂W and (two barriers) ∂x of V/p rows (4bshV/p)
    barrier: float = 0.0  # one all-reduce round over the pipeline group

    def __post_init__(self) -> None:
        if min(self.s, self.t, self.barrier) < 0:
            raise ValueError(f"vocabulary costs must be >= 0, got s={self.s}, t={self.t}, barrier={self.barrier}")


def vocab_order(base: Order, *, barriers: int, costs: Costs, vocab: VocabCosts) -> Order:
    """The base order with S and T of every microbatch slotted in on every rank (see the module docstring)."""
    return replay(base, barriers=barriers, costs=costs, vocab=vocab)[0]


def simulate_vocab(base: Order, *, barriers: int, costs: Costs, vocab: VocabCosts) -> Simulation:
    """The replay's figures: makespan, bubble (vocabulary passes count as work), peak in-flight per stage."""
    return summarize(replay(base, barriers=barriers, costs=costs, vocab=vocab)[1])


def replay(base: Order, *, barriers: int, costs: Costs, vocab: VocabCosts) -> tuple[Order, list[Span]]:
    """Timed replay, earliest start first: (per-rank order with S and T, the spans it ran).

    At equal start times a rank prefers the collective pass to its own action, and its own action to a
    Vocab-1 weight-gradient pass, which runs where the rank would otherwise wait or when it owes HELD of them."""
    if barriers not in (1, 2):
        raise ValueError(f"barriers must be 1 (Vocab-1) or 2 (Vocab-2), got {barriers}")
    ranks = len(base)
    owner = {a.stage: r for r, ops in enumerate(base) for a in ops}
    last = max(owner)
    micro = sorted({a.microbatch for ops in base for a in ops})
    sequence = [(kind, i) for i in micro for kind in (("S", "T") if barriers == 2 else ("S",))]  # collectives
    local_t: list[list[int]] = [[] for _ in range(ranks)]  # Vocab-1: T passes a rank still owes
    done: dict[tuple[str, int, int], float] = {}  # (kind, stage, microbatch) -> end time
    clock, heads, nxt = [0.0] * ranks, [0] * ranks, 0
    arrived: dict[int, float] = {}  # rank -> when it reached the barrier of sequence[nxt]
    out: list[list[Action]] = [[] for _ in range(ranks)]
    spans: list[Span] = []

    def run(r: int, a: Action, start: float, cost: float) -> None:
        spans.append(Span(r, a.stage, a.kind, a.microbatch, start, start + cost))
        out[r].append(a)
        clock[r] = done[(a.kind, a.stage, a.microbatch)] = start + cost

    def input_at(a: Action) -> float | None:
        """When the inputs of base action `a` exist (the simulator's rules plus the vocabulary passes)."""
        if a.kind == "F":
            needs = [("F", a.stage - 1)] if a.stage > 0 else []
        elif a.kind == "W":
            needs = [("I", a.stage)]
        elif a.stage == last:
            needs = [("F", a.stage), ("T" if barriers == 2 else "S", VOCAB_STAGE)]
        else:
            after = "B" if ("B", a.stage + 1, a.microbatch) in done else "I"
            needs = [("F", a.stage), (after, a.stage + 1)]
        at = 0.0
        for kind, stage in needs:
            end = done.get((kind, stage, a.microbatch))
            if end is None:
                return None
            at = max(at, end + (costs.latency if stage != VOCAB_STAGE and owner[stage] != a.rank else 0.0))
        return at

    while True:
        pass_at = None
        if nxt < len(sequence):
            kind, i = sequence[nxt]
            pass_at = done.get(("F", last, i) if kind == "S" else ("S", VOCAB_STAGE, i))
        best = None  # (start, priority, rank, what)
        for r in range(ranks):
            if r in arrived:
                continue
            options = []
            if pass_at is not None:
                options.append((max(pass_at, clock[r]), 0, r, "barrier"))
            if heads[r] < len(base[r]) and (at := input_at(base[r][heads[r]])) is not None:
                options.append((max(at, clock[r]), 1, r, "own"))
            if len(local_t[r]) >= HELD:
                options.append((clock[r], 0.5, r, "weight"))
            elif local_t[r] and not any(o[0] <= clock[r] for o in options):
                options.append((clock[r], 2, r, "weight"))
            if options:
                best = min([best, min(options)] if best else [min(options)])
        if best is None:
            break
        start, _, r, what = best
        if what == "own":
            a = base[r][heads[r]]
            run(r, a, start, costs.of(a.kind))
            heads[r] += 1
        elif what == "weight":
            run(r, Action(r, VOCAB_STAGE, "T", local_t[r].pop(0)), start, vocab.t)
        else:
            arrived[r] = start
            if len(arrived) == ranks:
                begin = max(arrived.values()) + vocab.barrier
                for q in range(ranks):
                    run(q, Action(q, VOCAB_STAGE, kind, i), begin, vocab.s if kind == "S" else vocab.t)
                    if kind == "S" and barriers == 1:
                        local_t[q].append(i)
                arrived.clear()
                nxt += 1
    stuck = [r for r in range(ranks) if heads[r] < len(base[r])]
    if stuck or nxt < len(sequence):
        where = ", ".join(f"rank {r} at {base[r][heads[r]].label}" for r in stuck)
        raise ScheduleDeadlock(f"the vocabulary passes cannot be placed in this order: {where or 'no rank stuck'}; "
                               f"next collective pass {sequence[nxt] if nxt < len(sequence) else None}")
    for r in range(ranks):  # Vocab-1: the weight-gradient passes that no wait made room for
        for i in local_t[r]:
            run(r, Action(r, VOCAB_STAGE, "T", i), clock[r], vocab.t)
    return tuple(tuple(ops) for ops in out), spans


def costs_from_vocab_spans(spans: list[Span], *, latency: float = 0.0) -> tuple[Costs, VocabCosts]:
    """Median F, B, S and T durations of a measured step, to replay it through `simulate_vocab`."""
    def median(kind: str) -> float:
        values = sorted(s.duration for s in spans if s.kind == kind)
        return values[len(values) // 2] if values else 0.0

    return Costs(f=median("F"), b=median("B"), latency=latency), VocabCosts(s=median("S"), t=median("T"))


def held_logits(spans: list[Span]) -> dict[int, int]:
    """rank -> most microbatches between their S and T at once (each holds a logits shard), in start order."""
    out: dict[int, int] = {}
    for rank in sorted({s.rank for s in spans}):
        live = peak = 0
        for s in sorted((s for s in spans if s.rank == rank), key=lambda s: s.start):
            live += 1 if s.kind == "S" else -1 if s.kind == "T" else 0
            peak = max(peak, live)
        out[rank] = peak
    return out
