"""SkipPipe path scheduling (Blagoev, Chen, Ersoy, arXiv 2502.19913): microbatches skip stages to cut iteration time.

Each microbatch starts on a stage-0 node, visits K of the S stages (stage 0 first), runs its forwards along that
path and its backwards in reverse; the last stage visited computes the loss. A node hosts one stage; a stage has
several nodes (data-parallel replicas). The paper plans paths by Conflict-Based Search over a modified A*, one
agent per microbatch (gensyn-ai/skippipe schedulers/CBS.py). Here: prioritized planning, then large-neighbourhood
search (MAPF-LNS, Li et al. 2021). Each agent gets a best-first search over path prefixes against a reservation
table of node time windows and activation-memory intervals, so it is optimal given earlier agents but the whole plan
is not optimal (CBS is complete but exponential; it caps its search, so neither is optimal in practice). All
constraints hold by construction: path length, stage 0 first, distinct stages, jumps, per-stage load (TC2; an
exact look-ahead keeps the remaining microbatches placeable), per-node memory, no overlapping windows on a node.
Unlike the paper's planner, backward has no priority over an already-reserved forward; the final ASAP re-timing
keeps each node's order, which is what a runtime replays.
"""
from __future__ import annotations

import bisect
import heapq
import itertools
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from training.parallel.actions import Span
from training.parallel.skippipe_problem import EPS, SkipProblem, Visit, Window, fillable, stage_moves, stage_sets

@dataclass(frozen=True, slots=True)
class Step:
    """One compute window: `node` runs `kind` of `stage` for `microbatch`, fed by `src`, sending to `dst`.

    src/dst are nodes; None means no message: a stage-0 forward reads data, the last forward computes the loss
    (so its backward's src is None), and the stage-0 backward ends the microbatch.
    """

    kind: Literal["F", "B"]
    microbatch: int
    stage: int
    node: int
    src: int | None
    dst: int | None
    start_s: float
    end_s: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Schedule:
    """Paths and timed steps; a runtime replays `program(node)` in order, which reproduces these times."""

    paths: tuple[tuple[Visit, ...], ...]  # paths[m]: (stage, node) per visit
    steps: tuple[Step, ...]  # sorted by (node, start_s)
    makespan_s: float  # iteration time, the last backward's end

    def program(self, node: int) -> tuple[Step, ...]:
        """What `node` runs, in order."""
        return tuple(s for s in self.steps if s.node == node)

    def spans(self) -> list[Span]:
        """The steps in the shared timeline vocabulary (rank = node)."""
        return [Span(s.node, s.stage, s.kind, s.microbatch, s.start_s, s.end_s) for s in self.steps]


def _fit(busy: list[Window], ready: float, dur: float) -> float:
    """Earliest start >= ready of a window of length dur that overlaps no window of sorted, disjoint `busy`."""
    t = ready
    for i in range(max(bisect.bisect_right(busy, (t,)) - 1, 0), len(busy)):
        start, end = busy[i]
        if end <= t + EPS:
            continue
        if start >= t + dur - EPS:
            break
        t = end
    return t


def _memory_block(live: list[Window], cap: int, start: float, end: float) -> float | None:
    """None if adding [start, end) keeps `cap` live intervals at most; else the earliest start worth retrying."""
    events = sorted([(max(s, start), 1) for s, e in live if s < end - EPS and e > start + EPS]
                    + [(e, -1) for s, e in live if s < end - EPS and e > start + EPS])
    count, full = 0, False
    for t, delta in events:
        count += delta
        if count >= cap and t < end - EPS:
            full = True
        if full and count < cap:
            return t
    return None


@dataclass
class _Table:
    """Reservations so far: busy windows and live-activation intervals per node, visits per stage."""

    busy: dict[int, list[Window]]
    live: dict[int, list[Window]]
    load: list[int]

    @classmethod
    def empty(cls, problem: SkipProblem) -> _Table:
        nodes = [n for s in problem.stages for n in s]
        return cls({n: [] for n in nodes}, {n: [] for n in nodes}, [0] * len(problem.stages))

    def add(self, path: Sequence[Visit], chain: Sequence[Window]) -> None:
        k = len(path)
        for c, window in enumerate(chain):
            bisect.insort(self.busy[path[c if c < k else 2 * k - 1 - c][1]], window)
        for i, (stage, node) in enumerate(path):
            bisect.insort(self.live[node], (chain[i][0], chain[2 * k - 1 - i][1]))
            self.load[stage] += 1


def _chain_nodes(path: Sequence[Visit]) -> list[int]:
    """Nodes of the 2K steps in dependency order: forwards along the path, then backwards in reverse."""
    nodes = [n for _, n in path]
    return nodes + nodes[::-1]


def _time_path(problem: SkipProblem, table: _Table, path: Sequence[Visit]) -> list[Window]:
    """Earliest windows for a fixed path against the table, delaying forwards until memory allows."""
    lat, k = problem.latency_s, len(path)
    nodes = _chain_nodes(path)
    not_before = [0.0] * k
    while True:
        chain, t = [], 0.0
        for c, node in enumerate(nodes):
            dur = problem.forward_s if c < k else problem.backward_s
            ready = t + (lat[nodes[c - 1]][node] if c and c != k else 0.0)
            start = _fit(table.busy[node], max(ready, not_before[c] if c < k else 0.0), dur)
            chain.append((start, start + dur))
            t = start + dur
        for i, (_, node) in enumerate(path):
            retry = _memory_block(table.live[node], problem.memory_cap, chain[i][0], chain[2 * k - 1 - i][1])
            if retry is not None:
                not_before[i] = retry
                break
        else:
            return chain


def _capacity_left(problem: SkipProblem, table: _Table, stages: Sequence[int], agents_after: int) -> bool:
    """Whether `agents_after` more paths still fit the load cap after this one takes `stages`."""
    room = tuple(problem.load_cap - table.load[s] - (s in stages) for s in range(len(problem.stages)))
    return fillable(stage_sets(problem), room, agents_after, 0)


def _plan_agent(problem: SkipProblem, table: _Table, agents_after: int, banned: frozenset[int] = frozenset()
                ) -> tuple[tuple[Visit, ...], list[Window]]:
    """Best-first search over path prefixes avoiding `banned` nodes; the key bounds this microbatch's finish."""
    lat, k, f, b = problem.latency_s, problem.path_len, problem.forward_s, problem.backward_s
    hops = [lat[i][j] for s in problem.stages for i in s for t in problem.stages for j in t if i != j]
    lmin = min(hops, default=0.0)
    tick = itertools.count()
    heap: list = []
    for node in [n for n in problem.stages[0] if n not in banned]:
        end = _fit(table.busy[node], 0.0, f) + f
        heapq.heappush(heap, (end + (k - 1) * (f + 2 * lmin) + k * b, next(tick), None, ((0, node),), end, 0.0))
    while heap:
        _, _, chain, path, end, back = heapq.heappop(heap)
        if chain is not None:
            return path, chain
        if len(path) == k:
            if _capacity_left(problem, table, [s for s, _ in path], agents_after):
                chain = _time_path(problem, table, path)
                heapq.heappush(heap, (chain[-1][1], next(tick), chain, path, end, back))
            continue
        last = path[-1][1]
        for stage in stage_moves(problem, [s for s, _ in path]):
            if table.load[stage] >= problem.load_cap:
                continue
            for node in problem.stages[stage]:
                if node in banned:
                    continue
                t = _fit(table.busy[node], end + lat[last][node], f) + f
                rest = k - len(path) - 1
                key = t + rest * (f + 2 * lmin) + k * b + back + lat[node][last]
                heapq.heappush(heap, (key, next(tick), None, (*path, (stage, node)), t, back + lat[node][last]))
    raise ValueError(f"no set of {problem.n_microbatches} paths of length {k} fits the load cap {problem.load_cap} "
                     f"under max_jump {problem.max_jump}{' and the banned nodes' if banned else ''}; "
                     "raise load_slack or max_jump")


def _retime(problem: SkipProblem, paths: Sequence[Sequence[Visit]], chains: Sequence[Sequence[Window]]
            ) -> list[list[Window]]:
    """ASAP re-timing that keeps every node's order: never later, same memory peaks (live sets follow the order)."""
    lat = problem.latency_s
    nodes = [_chain_nodes(path) for path in paths]
    order = sorted((chain[c][0], m, c) for m, chain in enumerate(chains) for c in range(len(chain)))
    free: dict[int, float] = {}
    out = [list(chain) for chain in chains]
    for _, m, c in order:
        node, k = nodes[m][c], len(paths[m])
        ready = out[m][c - 1][1] + (lat[nodes[m][c - 1]][node] if c != k else 0.0) if c else 0.0
        start = max(ready, free.get(node, 0.0))
        out[m][c] = (start, start + chains[m][c][1] - chains[m][c][0])
        free[node] = out[m][c][1]
    return out


def plan(problem: SkipProblem, *, seed: int = 0, lns_iters: int = 30, neighbourhood: int = 3,
         paths: Sequence[Sequence[Visit]] | None = None) -> Schedule:
    """Plan paths and times: prioritized planning, then `lns_iters` destroy-and-replan rounds kept if no worse.

    A round frees the microbatch that finishes last plus `neighbourhood - 1` random others (seeded), bans one
    node of the late path for its replanning (CBS's "agent may not visit node" constraint), and replans them
    against the rest. Identical agents make plain replanning a fixed point; the ban moves the search.
    With `paths` given, only times them (e.g. fixed DT-FM pipelines).
    """
    if paths is not None:
        table, chains = _Table.empty(problem), []
        for path in paths:
            chains.append(_time_path(problem, table, path))
            table.add(path, chains[-1])
        return _schedule(problem, paths, _retime(problem, paths, chains))
    n = problem.n_microbatches
    rng = np.random.default_rng(seed)
    best_paths, best = _replan(problem, [None] * n, [None] * n, [])
    for _ in range(lns_iters if n > 1 else 0):
        finish = [chain[-1][1] for chain in best]
        late = int(np.argmax(finish))
        others = [int(m) for m in rng.choice([m for m in range(n) if m != late], size=min(neighbourhood, n) - 1,
                                             replace=False)]
        ban = frozenset({int(rng.choice([node for _, node in best_paths[late]]))})
        freed = {late, *others}
        try:
            trial_paths, trial = _replan(problem, [None if m in freed else p for m, p in enumerate(best_paths)],
                                         [None if m in freed else c for m, c in enumerate(best)],
                                         [(late, ban), *((m, frozenset()) for m in others)])
        except ValueError:
            continue  # the ban or the load cap leaves no path; keep the incumbent
        if (_makespan(trial), sum(c[-1][1] for c in trial)) <= (_makespan(best), sum(finish)):
            best_paths, best = trial_paths, trial
    return _schedule(problem, best_paths, best)


def _replan(problem: SkipProblem, paths: list, chains: list, order: list[tuple[int, frozenset[int]]]
            ) -> tuple[list, list[list[Window]]]:
    """Plan the microbatches in `order` (each with its banned nodes; default: every unplanned one, in index
    order) against the planned ones, then re-time all of them."""
    table = _Table.empty(problem)
    for path, chain in zip(paths, chains):
        if path is not None:
            table.add(path, chain)
    order = order or [(m, frozenset()) for m, p in enumerate(paths) if p is None]
    paths, chains = list(paths), list(chains)
    for i, (m, banned) in enumerate(order):
        paths[m], chains[m] = _plan_agent(problem, table, len(order) - i - 1, banned)
        table.add(paths[m], chains[m])
    return paths, _retime(problem, paths, chains)


def _makespan(chains: Sequence[Sequence[Window]]) -> float:
    return max(chain[-1][1] for chain in chains)


def _schedule(problem: SkipProblem, paths: Sequence[Sequence[Visit]], chains: Sequence[Sequence[Window]]
              ) -> Schedule:
    """Steps with their message sources and destinations, sorted per node by start."""
    steps = []
    for m, (path, chain) in enumerate(zip(paths, chains)):
        k = len(path)
        nodes = [n for _, n in path]
        for i, (stage, node) in enumerate(path):
            before, after = (nodes[i - 1] if i else None), (nodes[i + 1] if i + 1 < k else None)
            steps.append(Step("F", m, stage, node, before, after, *chain[i]))
            steps.append(Step("B", m, stage, node, after, before, *chain[2 * k - 1 - i]))
    steps.sort(key=lambda s: (s.node, s.start_s, s.kind))
    return Schedule(paths=tuple(tuple(p) for p in paths), steps=tuple(steps), makespan_s=_makespan(chains))


def fixed_pipeline_paths(problem: SkipProblem) -> list[list[Visit]]:
    """DT-FM-style baseline paths: replica r of every stage forms pipeline r; microbatch m uses pipeline m mod R."""
    rows = len(problem.stages[0])
    return [[(s, nodes[(m % rows) % len(nodes)]) for s, nodes in enumerate(problem.stages)]
            for m in range(problem.n_microbatches)]
