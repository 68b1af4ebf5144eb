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
import dataclasses
import functools
import heapq
import itertools
import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from training.parallel.actions import Span

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
    return _fillable(_stage_sets(problem), room, agents_after, 0)


@functools.lru_cache(maxsize=64)
def _stage_sets(problem: SkipProblem) -> tuple[tuple[int, ...], ...]:
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
def _fillable(sets: tuple[tuple[int, ...], ...], room: tuple[int, ...], agents: int, first: int) -> bool:
    """Whether `agents` paths, choosing stage sets from sets[first:] with repeats, fit within `room` per stage."""
    if agents == 0:
        return True
    need = len(sets[0]) if sets else 0
    if sum(min(r, agents) for r in room[1:]) < agents * need:
        return False  # each path takes `need` distinct stages, so a stage serves at most `agents` of them
    for i in range(first, len(sets)):
        if all(room[s] > 0 for s in sets[i]):
            rest = tuple(r - (s in sets[i]) for s, r in enumerate(room))
            if _fillable(sets, rest, agents - 1, i):
                return True
    return False


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


def validate(schedule: Schedule, problem: SkipProblem) -> list[str]:
    """Every broken constraint, in words; written apart from the planner so tests can trust it."""
    errors = _check_paths(schedule.paths, problem)
    return errors or _check_times(schedule, problem)


def _check_paths(paths: Sequence[Sequence[Visit]], problem: SkipProblem) -> list[str]:
    errors, load = [], [0] * len(problem.stages)
    if len(paths) != problem.n_microbatches:
        errors.append(f"{len(paths)} paths for {problem.n_microbatches} microbatches")
    for m, path in enumerate(paths):
        stages = [s for s, _ in path]
        if len(path) != problem.path_len:
            errors.append(f"mb {m}: {len(path)} visits, want K={problem.path_len}")
        if not stages or stages[0] != 0:
            errors.append(f"mb {m}: first stage is not 0: {stages}")
        if len(set(stages)) != len(stages):
            errors.append(f"mb {m}: a stage is visited twice: {stages}")
        errors += [f"mb {m}: node {n} does not hold stage {s}" for s, n in path
                   if not 0 <= s < len(problem.stages) or n not in problem.stages[s]]
        top, swaps = 0, 0
        for s in stages[1:]:
            if s > top + 1 + problem.max_jump:
                errors.append(f"mb {m}: hop {top}->{s} skips more than max_jump={problem.max_jump}")
            if s < top and (not problem.reorder or s != top - 1):
                errors.append(f"mb {m}: stage {s} after {top} is not an allowed swap (reorder={problem.reorder})")
            swaps += s < top
            top = max(top, s)
        if swaps > 1:
            errors.append(f"mb {m}: {swaps} swaps, at most one allowed")
        for s in set(stages):
            load[s] += 0 <= s < len(load)
    errors += [f"stage {s} takes {c} microbatches > load cap {problem.load_cap}"
               for s, c in enumerate(load) if s and c > problem.load_cap]
    return errors


def _check_times(schedule: Schedule, problem: SkipProblem) -> list[str]:
    errors, lat = [], problem.latency_s
    at = {(st.kind, st.microbatch, st.stage): st for st in schedule.steps}
    if len(at) != len(schedule.steps) or len(at) != 2 * sum(len(p) for p in schedule.paths):
        errors.append("steps do not match the paths one F and one B per visit")
    for m, path in enumerate(schedule.paths):
        fwd = [at.get(("F", m, s)) for s, _ in path]
        bwd = [at.get(("B", m, s)) for s, _ in path]
        if None in fwd or None in bwd:
            errors.append(f"mb {m}: a step of its path is missing")
            continue
        nodes = [n for _, n in path]
        for i, (f, b) in enumerate(zip(fwd, bwd)):
            if (f.node, b.node) != (nodes[i], nodes[i]):
                errors.append(f"mb {m} visit {i}: steps run on nodes {f.node}/{b.node}, path says {nodes[i]}")
            if max(abs(f.end_s - f.start_s - problem.forward_s), abs(b.end_s - b.start_s - problem.backward_s)) > 1e-6:
                errors.append(f"mb {m} visit {i}: compute windows have the wrong length")
            want = (nodes[i - 1] if i else None, nodes[i + 1] if i + 1 < len(nodes) else None)
            if (f.src, f.dst) != want or (b.dst, b.src) != want:
                errors.append(f"mb {m} visit {i}: message endpoints disagree with the path")
            if i and f.start_s < fwd[i - 1].end_s + lat[nodes[i - 1]][nodes[i]] - 1e-6:
                errors.append(f"mb {m}: F at visit {i} starts before its input can arrive")
            if i + 1 < len(nodes) and b.start_s < bwd[i + 1].end_s + lat[nodes[i + 1]][nodes[i]] - 1e-6:
                errors.append(f"mb {m}: B at visit {i} starts before its gradient can arrive")
        if bwd[-1].start_s < fwd[-1].end_s - 1e-6:
            errors.append(f"mb {m}: backward starts before the loss")
    for node in {st.node for st in schedule.steps}:
        prog = schedule.program(node)
        errors += [f"node {node}: {a.kind}{a.microbatch} and {b.kind}{b.microbatch} overlap"
                   for a, b in zip(prog, prog[1:]) if b.start_s < a.end_s - 1e-6]
        events = sorted([(round(st.start_s, 6), 1) for st in prog if st.kind == "F"]
                        + [(round(st.end_s, 6), -1) for st in prog if st.kind == "B"])
        peak = max(itertools.accumulate(d for _, d in events))
        if peak > problem.memory_cap:
            errors.append(f"node {node}: {peak} microbatches live > memory cap {problem.memory_cap}")
    if abs(schedule.makespan_s - max(st.end_s for st in schedule.steps)) > EPS:
        errors.append("makespan is not the last step's end")
    return errors
