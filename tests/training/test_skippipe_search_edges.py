"""Edges of SkipPipe's best-first path search and LNS loop (training/parallel/skippipe.py) that the mutation runs
of issue 16 left open.

The oracle is a brute force over every schedule of a tiny instance, written here from the problem's rules: with
skip 0 each microbatch visits stages 0..S-1 in order, one replica node per stage; its 2S steps run forwards along
the path and backwards in reverse, each after its predecessor plus the hop's latency (no message between the
last forward and the first backward, the loss); a node runs one step at a time. Every choice of nodes and every
order of the steps on each node is tried, each step as early as the orders allow; the least makespan is the
optimum. Memory (cap 3) and the load cap (with skip 0 every stage takes all M microbatches) never bind on
these instances (M <= 2). Latencies are multiples of 1/16 s, so every sum is exact and ties are exact."""
from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest

from training.parallel import skippipe
from training.parallel.skippipe import plan
from training.parallel.skippipe_check import validate
from training.parallel.skippipe_problem import make_problem


class _Cycle(Exception):
    pass


def _optimum(lat, stages, n_microbatches: int, f: float, b: float) -> float:
    """Least makespan over every node choice and every per-node order of the steps (see the module doc)."""
    lat = np.asarray(lat, dtype=float)
    k = len(stages)
    best = np.inf
    for choice in itertools.product(itertools.product(*stages), repeat=n_microbatches):
        node_of = {(m, c): (path[c] if c < k else path[2 * k - 1 - c])
                   for m, path in enumerate(choice) for c in range(2 * k)}
        dur = {key: (f if key[1] < k else b) for key in node_of}
        on_node = defaultdict(list)
        for key, node in node_of.items():
            on_node[node].append(key)
        lists = list(on_node.values())
        for orders in itertools.product(*(itertools.permutations(v) for v in lists)):
            # a microbatch's own steps keep their chain order on a node, else the orders form a cycle
            if any(any(a[0] == b_[0] and a[1] > b_[1] for a, b_ in itertools.combinations(o, 2)) for o in orders):
                continue
            after_on_node = {o[i]: o[i - 1] for o in orders for i in range(1, len(o))}
            end: dict = {}
            visiting: set = set()

            def finish(key):
                if key not in end:
                    if key in visiting:
                        raise _Cycle
                    visiting.add(key)
                    m, c = key
                    ready = 0.0
                    if c:
                        prev = (m, c - 1)
                        ready = finish(prev) + lat[node_of[prev]][node_of[key]]
                    if key in after_on_node:
                        ready = max(ready, finish(after_on_node[key]))
                    end[key] = ready + dur[key]
                return end[key]

            try:
                best = min(best, max(finish(key) for key in node_of))
            except _Cycle:  # orders of two nodes that wait on each other
                continue
    return best


def _fastest_node_path(schedule) -> list[int]:
    return [node for _, node in schedule.paths[0]]


def test_the_first_stage_0_node_popped_is_not_returned_when_another_is_faster():
    """Stage 0 on nodes 0 and 1, stage 1 on node 2; F 1 s, B 2 s; one microbatch, so nothing competes and the
    search must return a fastest path. Hops: 0 <-> 2 take 0.3125 s, 1 <-> 2 and 0 <-> 1 take 0.25 s (the least
    hop). Through node 1: 1 + 0.25 + 1 + 2 + 0.25 + 2 = 6.5 s; through node 0: 6.625 s. Both stage-0 nodes get
    the same first key, the lower bound 6.5, and node 0 is expanded first; a first key raised by as little as
    the least hop (0.25) would let node 0's complete path (6.625) pop before node 1 is expanded."""
    lat = [[0.0, 0.25, 0.3125], [0.25, 0.0, 0.25], [0.3125, 0.25, 0.0]]
    stages = [[0, 1], [2]]
    assert _optimum(lat, stages, 1, 1.0, 2.0) == 6.5
    problem = make_problem(latency_s=lat, stages=stages, n_microbatches=1)
    schedule = plan(problem)
    assert validate(schedule, problem) == []
    assert schedule.makespan_s == 6.5
    assert _fastest_node_path(schedule) == [1, 2]


def test_a_prefix_that_looks_worse_is_expanded_before_a_slower_complete_path_is_returned():
    """Three stages on nodes [0], [1, 2], [3]; F 1 s, B 2 s; one microbatch. Hops both ways: 0-1 0.25 s,
    1-3 0.4375 s, 0-2 0.375 s, 2-3 0.25 s, every other pair 1 s (the least hop is 0.25 s). Through node 1:
    3 + 6 + 2 (0.25 + 0.4375) = 10.375 s; through node 2: 9 + 2 (0.375 + 0.25) = 10.25 s, the fastest. After
    the first hop, prefix 0-2's bound is 9 + 2 * 0.375 + 2 * 0.25 = 10.25 (one forward and two hops of 0.25 to
    come); raised by one least hop (10.5) it would let 0-1-3 (10.375) pop and return first."""
    lat = np.ones((4, 4)) - np.eye(4)
    for i, j, x in [(0, 1, 0.25), (1, 3, 0.4375), (0, 2, 0.375), (2, 3, 0.25)]:
        lat[i][j] = lat[j][i] = x
    stages = [[0], [1, 2], [3]]
    assert _optimum(lat, stages, 1, 1.0, 2.0) == 10.25
    problem = make_problem(latency_s=lat, stages=stages, n_microbatches=1)
    schedule = plan(problem)
    assert validate(schedule, problem) == []
    assert schedule.makespan_s == 10.25
    assert _fastest_node_path(schedule) == [0, 2, 3]


# Two microbatches on stage 0 = nodes 0 and 1, stage 1 = node 2; hops 0->2 0.25 s, 2->0 2 s, 1->2 1.25 s,
# 2->1 0.5 s, 0<->1 0.75 s (found by drawing small instances with latencies in quarter seconds, seed 21 of 400).
TWO = dict(latency_s=[[0.0, 0.75, 0.25], [0.75, 0.0, 1.25], [2.0, 0.5, 0.0]], stages=[[0, 1], [2]],
           n_microbatches=2)


def test_two_microbatches_get_lns_rounds_that_reach_the_optimum():
    """Prioritized planning alone (by hand): microbatch 0 takes its fastest path 1 -> 2 (7.75 s against 8.25 s
    through node 0); microbatch 1 then either waits for node 1 and node 2 (F [1, 2] on 1, node 2 busy until
    5.25: F [5.25, 6.25], B [6.25, 8.25], B on 1 at 8.75 -> 10.75) or starts on node 0 (its B on node 2 waits
    until 5.25, B on 0 at 9.25 -> 11.25): 10.75 s. The optimum over every schedule is 9.75 s (microbatch 0
    through node 0 first on node 2, microbatch 1 through node 1: F [4.25, 5.25], B [5.25, 7.25], B on 1
    [7.75, 9.75]); one LNS round that bans node 1 for the late microbatch finds it, so plan() with its LNS
    rounds reaches it for two microbatches."""
    problem = make_problem(**TWO)
    assert _optimum(TWO["latency_s"], TWO["stages"], 2, 1.0, 2.0) == 9.75
    assert plan(problem, lns_iters=0).makespan_s == 10.75
    for seed in range(3):
        schedule = plan(problem, seed=seed)
        assert validate(schedule, problem) == []
        assert schedule.makespan_s == 9.75


def _key(chains) -> tuple[float, float]:
    finish = [chain[-1][1] for chain in chains]
    return max(finish), sum(finish)


def test_an_lns_trial_that_ties_exactly_is_kept(monkeypatch):
    """plan()'s rule: a round keeps its trial if it is no worse in (makespan, then total finish). On TWO the
    optimum has a mirror image (the two microbatches swap paths) with the same makespan and total finish, and
    the rounds move between them. The replans are recorded; the rule applied to them says which plan each
    round starts from (a round frees the microbatch finishing last, the first one it replans) and which plan
    plan() returns. A planner that kept only strictly better trials would stay on the first optimum."""
    calls = []
    real = skippipe._replan

    def spy(problem, paths, chains, order):
        try:
            got = real(problem, paths, chains, order)
        except ValueError:
            calls.append((order, None))
            raise
        calls.append((order, got))
        return got

    monkeypatch.setattr(skippipe, "_replan", spy)
    problem = make_problem(**TWO)
    schedule = plan(problem, seed=0, lns_iters=30)
    assert len(calls) == 31  # prioritized planning, then one replan per round
    incumbent = calls[0][1]
    ties = 0
    for order, trial in calls[1:]:
        finish = [chain[-1][1] for chain in incumbent[1]]
        assert order[0][0] == finish.index(max(finish))  # the round frees the incumbent's late microbatch
        if trial is None:
            continue
        if _key(trial[1]) <= _key(incumbent[1]):
            ties += _key(trial[1]) == _key(incumbent[1]) and trial[0] != incumbent[0]
            incumbent = trial
    assert ties >= 1
    assert schedule.paths == tuple(tuple(p) for p in incumbent[0])
    assert schedule.makespan_s == 9.75
