"""The schedule vocabulary shared by the simulator, the runtime and the timeline: actions to run, spans that ran.

Kinds follow torch.distributed.pipelining's `_ComputationType` letters (schedules.py): F forward, B full
backward, I input-grad half of B, W weight-grad half of B (Zero Bubble, Qi et al. 2024). S and T are the
vocabulary-parallel output layer's forward and backward passes (Yeung et al. 2025), which every rank of the
pipeline runs for every microbatch; they carry the stage VOCAB_STAGE. Time is seconds for
measured spans and cost units for simulated ones; nothing here cares which.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

Kind = Literal["F", "B", "I", "W", "S", "T"]
STAGE_KINDS: tuple[Kind, ...] = ("F", "B", "I", "W")
VOCAB_KINDS: tuple[Kind, ...] = ("S", "T")
KINDS: tuple[Kind, ...] = STAGE_KINDS + VOCAB_KINDS
VOCAB_STAGE = -1  # the stage of S and T: the vocabulary layers, sharded over every rank
INPUT_GRAD_KINDS = frozenset({"B", "I"})  # what the previous stage's backward waits for
RELEASE_KINDS = frozenset({"B", "W"})  # after these a stage no longer holds the microbatch's activations


@dataclass(frozen=True, slots=True)
class Action:
    """One compute step of a schedule: `rank` runs `kind` of `stage` on `microbatch`."""

    rank: int
    stage: int
    kind: Kind
    microbatch: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {KINDS}")

    @property
    def label(self) -> str:
        """`F3`: the kind and microbatch, as timelines print it."""
        return f"{self.kind}{self.microbatch}"


@dataclass(frozen=True, slots=True)
class Span:
    """An action with the time it ran: [start, end) on `rank`."""

    rank: int
    stage: int
    kind: Kind
    microbatch: int
    start: float
    end: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {KINDS}")
        if self.end < self.start:
            raise ValueError(f"span {self.kind}{self.microbatch} on rank {self.rank} ends ({self.end}) "
                             f"before it starts ({self.start})")

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def action(self) -> Action:
        return Action(self.rank, self.stage, self.kind, self.microbatch)


def by_rank(items: Iterable[Action | Span]) -> dict[int, list]:
    """Group actions or spans per rank, keeping their order (sort spans by start first if order matters)."""
    out: dict[int, list] = {}
    for item in items:
        out.setdefault(item.rank, []).append(item)
    return dict(sorted(out.items()))


def stage_ranks(items: Iterable[Action | Span]) -> dict[int, int]:
    """stage -> rank; a stage must live on one rank (a V placement puts two stages on each rank)."""
    owner: dict[int, int] = {}
    for item in items:
        if owner.setdefault(item.stage, item.rank) != item.rank:
            raise ValueError(f"stage {item.stage} appears on ranks {owner[item.stage]} and {item.rank}; "
                             "a stage must run on exactly one rank")
    return dict(sorted(owner.items()))


def span_rows(spans: Iterable[Span]) -> list[dict]:
    """Plain dicts (JSON-ready) for logs and reports."""
    return [asdict(s) for s in spans]


def spans_from_rows(rows: Iterable[dict]) -> list[Span]:
    """The inverse of `span_rows`."""
    return [Span(**row) for row in rows]
