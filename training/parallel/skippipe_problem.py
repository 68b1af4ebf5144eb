"""SkipPipe's problem (Blagoev, Chen, Ersoy, arXiv 2502.19913): nodes, their latencies, stages, microbatches and
the path rules; and the clustered networks and stage assignments the paper evaluates on. Planned by
training/parallel/skippipe.py, checked by training/parallel/skippipe_check.py."""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

EPS = 1e-9  # seconds; float slack when comparing window ends and starts
Visit = tuple[int, int]  # (stage, node)
Window = tuple[float, float]  # [start, end) seconds


@dataclass(frozen=True, kw_only=True, slots=True)
class SkipProblem:
    """What the path scheduler needs: the network, the stage placement, costs and SkipPipe's constraints."""

    latency_s: tuple[tuple[float, ...], ...]  # [i][j]: seconds for one activation (or gradient) message i -> j
    stages: tuple[tuple[int, ...], ...]  # stages[s]: the nodes holding stage s's layers
    n_microbatches: int  # M; each starts on a stage-0 node at time 0
    forward_s: float = 1.0  # one microbatch's forward through one stage
    backward_s: float = 2.0  # its backward (about 2x forward; SkipPipe's simulator uses 1.5x)
    skip: float = 0.0  # fraction of stages skipped: K = S - round(skip * S); the paper's default 2/6
    reorder: bool = False  # allow one swap of adjacent stages per path (a_star_modified.py: one swap, distance 1)
    memory_cap: int = 3  # microbatches with live activations per node (create_schedule.py `memory = 3`)
    load_slack: int = 0  # stages 1.. take at most ceil(M K / S) + load_slack microbatches (TC2)
    max_jump: int = 4  # stages one hop may skip (a_star_modified.py: "skipping more than 4")

    def __post_init__(self) -> None:
        n = len(self.latency_s)
        if any(len(row) != n for row in self.latency_s) or not all(
                math.isfinite(x) and x >= 0 for row in self.latency_s for x in row):
            raise ValueError("latency_s must be a square matrix of finite seconds >= 0")
        hosted = [node for nodes in self.stages for node in nodes]
        if not self.stages or not all(self.stages) or len(set(hosted)) != len(hosted):
            raise ValueError(f"stages {self.stages} must be non-empty lists of distinct nodes, one stage per node")
        if not all(0 <= node < n for node in hosted):
            raise ValueError(f"stages name nodes outside 0..{n - 1}")
        if self.forward_s <= 0 or self.backward_s <= 0 or self.n_microbatches < 1:
            raise ValueError("forward_s and backward_s must be > 0 and n_microbatches >= 1")
        if not 1 <= self.path_len <= len(self.stages):
            raise ValueError(f"skip {self.skip} gives path length K={self.path_len} outside 1..S={len(self.stages)}; "
                             "use 0 <= skip < 1")
        if self.memory_cap < 1:
            raise ValueError(f"memory_cap ({self.memory_cap}) < 1: no node could hold an activation; raise it")
        if self.load_slack < 0 or self.max_jump < 0:
            raise ValueError("load_slack and max_jump must be >= 0")

    @property
    def path_len(self) -> int:
        """K: stages each microbatch visits (round half up, so skip 0.25 of 6 stages drops 2)."""
        return len(self.stages) - math.floor(self.skip * len(self.stages) + 0.5)

    @property
    def load_cap(self) -> int:
        """Most microbatches one stage >= 1 may take, so every stage gets about as many updates (TC2)."""
        return math.ceil(self.n_microbatches * self.path_len / len(self.stages)) + self.load_slack


def make_problem(*, latency_s: np.ndarray | Sequence[Sequence[float]], stages: Sequence[Sequence[int]],
                 **settings) -> SkipProblem:
    """A SkipProblem from an array and lists (the dataclass stores tuples so it stays immutable)."""
    latency = tuple(tuple(float(x) for x in row) for row in np.asarray(latency_s, dtype=float))
    return SkipProblem(latency_s=latency, stages=tuple(tuple(int(n) for n in s) for s in stages), **settings)


def full_pipeline(problem: SkipProblem) -> SkipProblem:
    """The baseline on the same nodes: every microbatch visits every stage in order."""
    return dataclasses.replace(problem, skip=0.0, reorder=False)


def heterogeneous_latency(n: int, *, seed: int, clusters: int = 4, intra_s: tuple[float, float] = (0.05, 0.4),
                          inter_s: tuple[float, float] = (1.0, 8.0)) -> np.ndarray:
    """A geo-distributed-like matrix: nodes dealt round-robin to sites (as create_schedule.py deals locations).

    Defaults follow SkipPipe's geo table (communication_costs.py): a 16.7 MB activation takes about 0.4 s inside a
    site and 1-13 s between continents, against a stage forward of 1-2 s. Inter-site latency grows with the
    distance between random site positions; each direction gets its own 10% jitter, so L is not symmetric.
    """
    rng = np.random.default_rng(seed)
    site = np.arange(n) % clusters
    pos = rng.uniform(size=(clusters, 2))
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    far = inter_s[0] + (inter_s[1] - inter_s[0]) * dist / max(dist.max(), EPS)
    lat = np.where(site[:, None] == site[None], rng.uniform(*intra_s, size=(n, n)),
                   far[site][:, site] * rng.uniform(0.9, 1.1, size=(n, n)))
    np.fill_diagonal(lat, 0.0)
    return lat


def assign_stages(latency_s: np.ndarray, sizes: Sequence[int], *, seed: int = 0,
                  restarts: int = 4) -> tuple[tuple[int, ...], ...]:
    """Nodes -> stages by swap local search (stand-in for the paper's GCMA genetic partitioner).

    Cost: for each pair of consecutive stages, the mean over nodes of the latency to the nearest node of the
    neighbouring stage, both ways. That is a full pipeline's hop cost, so the baseline is favoured, not SkipPipe.
    """
    lat = np.asarray(latency_s, dtype=float)
    if sum(sizes) > len(lat) or min(sizes) < 1:
        raise ValueError(f"stage sizes {list(sizes)} need {sum(sizes)} nodes, have {len(lat)}")
    bounds = np.cumsum([0, *sizes])
    rng = np.random.default_rng(seed)

    def cost(order: np.ndarray) -> float:
        parts = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        return sum(lat[np.ix_(p, q)].min(1).mean() + lat[np.ix_(p, q)].min(0).mean() for p, q in zip(parts, parts[1:]))

    best, best_cost = None, math.inf
    for _ in range(restarts):
        order = rng.permutation(len(lat))  # nodes past sum(sizes) stay unused but may swap in
        current = cost(order)
        improved = True
        while improved:
            improved = False
            for i, j in itertools.combinations(range(len(lat)), 2):
                if np.searchsorted(bounds, i, "right") == np.searchsorted(bounds, j, "right"):
                    continue  # same stage (or both unused): swapping changes nothing
                order[[i, j]] = order[[j, i]]
                trial = cost(order)
                if trial < current - EPS:
                    current, improved = trial, True
                else:
                    order[[i, j]] = order[[j, i]]
        if current < best_cost:
            best, best_cost = order.copy(), current
    return tuple(tuple(sorted(int(n) for n in best[a:b])) for a, b in zip(bounds[:-1], bounds[1:]))


def stage_moves(problem: SkipProblem, visited: Sequence[int]) -> list[int]:
    """Stages a path that has visited `visited` may take next, ignoring load: SkipPipe's jump and swap rules."""
    frontier, swapped = _frontier_and_swap(visited)
    moves = []
    for s in range(1, len(problem.stages)):
        if s in visited:
            continue
        if s > frontier and s - frontier - 1 <= problem.max_jump:
            moves.append(s)
        elif s < frontier and problem.reorder and not swapped and s == frontier - 1:
            moves.append(s)
    return moves


def _frontier_and_swap(visited: Sequence[int]) -> tuple[int, bool]:
    frontier, swapped = 0, False
    for s in visited:
        swapped |= s < frontier
        frontier = max(frontier, s)
    return frontier, swapped


@functools.lru_cache(maxsize=64)
def stage_sets(problem: SkipProblem) -> tuple[tuple[int, ...], ...]:
    """Every set of stages >= 1 a path may cover under the jump and swap rules."""
    found, stack = set(), [[0]]
    while stack:
        seq = stack.pop()
        if len(seq) == problem.path_len:
            found.add(tuple(sorted(seq[1:])))
        else:
            stack += [[*seq, s] for s in stage_moves(problem, seq)]
    return tuple(sorted(found))


@functools.lru_cache(maxsize=1 << 16)
def fillable(sets: tuple[tuple[int, ...], ...], room: tuple[int, ...], agents: int, first: int) -> bool:
    """Whether `agents` paths, choosing stage sets from sets[first:] with repeats, fit within `room` per stage."""
    if agents == 0:
        return True
    need = len(sets[0]) if sets else 0
    if sum(min(r, agents) for r in room[1:]) < agents * need:
        return False  # each path takes `need` distinct stages, so a stage serves at most `agents` of them
    for i in range(first, len(sets)):
        if all(room[s] > 0 for s in sets[i]):
            rest = tuple(r - (s in sets[i]) for s, r in enumerate(room))
            if fillable(sets, rest, agents - 1, i):
                return True
    return False
