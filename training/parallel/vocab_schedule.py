"""Where the vocabulary passes go: a base schedule's per-rank order with pass S and pass T of every microbatch
slotted in on every rank (Vocabulary Parallelism, Yeung et al. 2025, §4-5).

S_i (the output layer's forward on the rank's vocabulary rows) needs the last stage's F_i and starts barrier 1
(a collective over the pipeline group); T_i needs barrier 1; the last stage's backward B_i needs ∂loss/∂x, which
is known after barrier 2 (started by every rank's T_i) with two barriers (Vocab-2) and after barrier 1 with one
(Vocab-1: T only computes the local weight gradient, no communication).

torch.distributed.pipelining's schedule IR has no action that every rank runs together, so the passes are placed
here, over our own actions (as the SkipPipe runtime does), by a timed replay of the base order under the
simulator's model (`replay`). The collectives are started, not waited for, so no rank stops at a barrier that
it does not need yet: every rank runs S_0, S_1, ... and T_0, T_1, ... in microbatch order (the collectives of
each kind are started in one order everywhere), each as early as its input allows. The per-rank order is read
off the replay. In that order every wait (a message, a collective's result) is for something that started
earlier in the replay, so ranks running it with any real timings cannot deadlock. A rank owing `HELD`
weight-gradient passes (Vocab-1) runs the oldest before its next own action: each holds a logits shard.
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

    The collectives are left in flight (vocab.py): a rank runs S_i once the last stage's F_i exists, and nobody
    waits for the others there; barrier 1 of microbatch i completes `vocab.barrier` after the last rank's S_i, and
    T_i (and, with one barrier, the last stage's B_i) cannot start before; with two barriers, the last stage's B_i
    waits for barrier 2, `vocab.barrier` after the last rank's T_i. At equal start times a rank prefers S, then
    Vocab-2's T, then its own action; Vocab-1's T (the weight gradient only) runs where the rank would otherwise
    wait, or first when it owes HELD of them."""
    if barriers not in (1, 2):
        raise ValueError(f"barriers must be 1 (Vocab-1) or 2 (Vocab-2), got {barriers}")
    ranks = len(base)
    owner = {a.stage: r for r, ops in enumerate(base) for a in ops}
    last = max(owner)
    micro = sorted({a.microbatch for ops in base for a in ops})
    done: dict[tuple[str, int, int], float] = {}  # (kind, stage, microbatch) -> end, per rank for S/T below
    passes: dict[tuple[str, int], list[float]] = {}  # (S or T, microbatch) -> the ends on the ranks that ran it
    next_s, next_t = [0] * ranks, [0] * ranks  # index into micro of each rank's next S and T
    clock, heads = [0.0] * ranks, [0] * ranks
    out: list[list[Action]] = [[] for _ in range(ranks)]
    spans: list[Span] = []

    def run(r: int, a: Action, start: float, cost: float) -> None:
        spans.append(Span(r, a.stage, a.kind, a.microbatch, start, start + cost))
        out[r].append(a)
        clock[r] = start + cost
        if a.stage == VOCAB_STAGE:
            passes.setdefault((a.kind, a.microbatch), []).append(start + cost)
        else:
            done[(a.kind, a.stage, a.microbatch)] = start + cost

    def barrier(kind: str, i: int) -> float | None:
        """When the collective that pass `kind` of microbatch i starts on every rank completes."""
        ends = passes.get((kind, i), [])
        return max(ends) + vocab.barrier if len(ends) == ranks else None

    def input_at(a: Action) -> float | None:
        """When the inputs of base action `a` exist (the simulator's rules plus the vocabulary passes)."""
        if a.kind == "F":
            needs = [done.get(("F", a.stage - 1, a.microbatch))] if a.stage > 0 else []
            hops = [a.stage > 0 and owner[a.stage - 1] != a.rank]
        elif a.kind == "W":
            needs, hops = [done.get(("I", a.stage, a.microbatch))], [False]
        elif a.stage == last:
            needs = [done.get(("F", a.stage, a.microbatch)), barrier("T" if barriers == 2 else "S", a.microbatch)]
            hops = [False, False]
        else:
            after = "B" if ("B", a.stage + 1, a.microbatch) in done else "I"
            needs = [done.get(("F", a.stage, a.microbatch)), done.get((after, a.stage + 1, a.microbatch))]
            hops = [False, owner[a.stage + 1] != a.rank]
        if any(n is None for n in needs):
            return None
        return max([0.0] + [n + (costs.latency if hop else 0.0) for n, hop in zip(needs, hops)])

    while True:
        best = None  # (start, priority, rank, what)
        for r in range(ranks):
            options = []
            if next_s[r] < len(micro):
                i = micro[next_s[r]]
                if (at := done.get(("F", last, i))) is not None:
                    hop = costs.latency if owner[last] != r else 0.0
                    options.append((max(at + hop, clock[r]), 0, r, "S"))
            owed = next_s[r] - next_t[r]  # microbatches past S and before T: each holds a logits shard
            if owed and (at := barrier("S", micro[next_t[r]])) is not None:
                if barriers == 2:
                    options.append((max(at, clock[r]), 0.5, r, "T"))
                elif owed >= HELD:
                    options.append((max(at, clock[r]), 0.5, r, "T"))
                else:
                    options.append((max(at, clock[r]), 2, r, "T"))
            if heads[r] < len(base[r]) and (at := input_at(base[r][heads[r]])) is not None:
                options.append((max(at, clock[r]), 1, r, "own"))
            if barriers == 1 and options and owed < HELD:  # a weight-gradient pass only where the rank would wait
                own = [o for o in options if o[3] != "T"]
                if own and min(own)[0] <= clock[r]:
                    options = [o for o in options if o[3] != "T"] or options
            if options:
                best = min([best, min(options)] if best else [min(options)])
        if best is None:
            break
        start, _, r, what = best
        if what == "own":
            a = base[r][heads[r]]
            run(r, a, start, costs.of(a.kind))
            heads[r] += 1
        elif what == "S":
            run(r, Action(r, VOCAB_STAGE, "S", micro[next_s[r]]), start, vocab.s)
            next_s[r] += 1
        else:
            run(r, Action(r, VOCAB_STAGE, "T", micro[next_t[r]]), start, vocab.t)
            next_t[r] += 1
    stuck = [r for r in range(ranks) if heads[r] < len(base[r]) or next_t[r] < len(micro)]
    if stuck:
        where = ", ".join(f"rank {r} at {base[r][heads[r]].label if heads[r] < len(base[r]) else 'its T passes'}"
                          for r in stuck)
        raise ScheduleDeadlock(f"the vocabulary passes cannot be placed in this order: {where}")
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
