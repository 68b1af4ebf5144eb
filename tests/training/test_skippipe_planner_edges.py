"""Edges of SkipPipe's planner (training/parallel/skippipe.py) and stage assignment (skippipe_problem.py) that
the mutation runs of issue 16 left open.
Expected times are worked out by hand from the rule the module states: each microbatch in turn takes the
earliest windows that fit on its nodes after its input (or gradient) has arrived, hop latency included, and
the final ASAP re-timing keeps each node's order. LNS rounds are checked against the rule its docstring
states: a round keeps its trial if it is no worse in (makespan, then total finish)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from training.parallel.skippipe import plan
from training.parallel.skippipe_check import validate
from training.parallel.skippipe_problem import assign_stages, make_problem


def test_a_slow_hop_lets_a_later_microbatch_use_the_shared_node_first():
    """Stage 0 on nodes 0 and 2, stage 1 on node 1; 0 <-> 1 takes 10 s, 2 <-> 1 takes 0.5 s; F 1 s, B 2 s.
    Microbatch 0 (path 0 -> 1) reaches node 1 only at 11, so microbatch 1 (path 2 -> 1), planned second, fits
    all its node-1 work into the gap before: F [1.5, 2.5], B [2.5, 4.5], then B on node 2 at 4.5 + 0.5 = 5.
    Microbatch 0: F [0, 1] on 0, F [11, 12] and B [12, 14] on 1, B [24, 26] on 0. Reserving windows without
    the hop latency would put microbatch 1 after microbatch 0 on node 1 and finish it at 19.5."""
    lat = np.array([[0.0, 10.0, 1.0], [10.0, 0.0, 0.5], [1.0, 0.5, 0.0]])
    problem = make_problem(latency_s=lat, stages=[[0, 2], [1]], n_microbatches=2)
    schedule = plan(problem, paths=[[(0, 0), (1, 1)], [(0, 2), (1, 1)]])
    assert validate(schedule, problem) == []
    times = {(s.kind, s.microbatch, s.stage): (s.node, s.start_s, s.end_s) for s in schedule.steps}
    assert times == {
        ("F", 0, 0): (0, 0.0, 1.0), ("F", 0, 1): (1, 11.0, 12.0), ("B", 0, 1): (1, 12.0, 14.0),
        ("B", 0, 0): (0, 24.0, 26.0),
        ("F", 1, 0): (2, 0.0, 1.0), ("F", 1, 1): (1, 1.5, 2.5), ("B", 1, 1): (1, 2.5, 4.5),
        ("B", 1, 0): (2, 5.0, 7.0)}
    assert schedule.makespan_s == 26.0
    assert [(s.microbatch, s.kind) for s in schedule.program(1)] == [(1, "F"), (1, "B"), (0, "F"), (0, "B")]


def _cost(schedule) -> tuple[float, float]:
    """(makespan, sum over microbatches of their last step's end), computed from the steps."""
    finish: dict[int, float] = {}
    for st in schedule.steps:
        finish[st.microbatch] = max(finish.get(st.microbatch, 0.0), st.end_s)
    return schedule.makespan_s, sum(finish.values())


def test_a_round_keeps_a_trial_of_equal_makespan_and_smaller_total_finish():
    """Rounds are seeded, so lns_iters = 5 replays the 4 rounds of lns_iters = 4 and adds one. On this instance
    (the generator of test_skippipe_edges.py's round-by-round test, seed 6; found by trying seeds 0-39 at
    commit c902e8d) the fifth round's trial ties the makespan exactly and finishes the microbatches 0.2 s
    sooner in total, so it is kept: a planner that compared the trial's total with anything but the
    incumbent's total finish (e.g. the ends of its first forwards) would keep only strictly shorter makespans."""
    rng = np.random.default_rng(6)
    n = 10
    order = rng.permutation(n)
    stages = [order[2 * s:2 * s + 2] for s in range(5)]
    lat = np.round(rng.uniform(0.1, 1.0, size=(n, n)), 1)
    problem = make_problem(latency_s=lat, stages=stages, n_microbatches=8, skip=0.4, reorder=True)
    before, after = plan(problem, seed=6, lns_iters=4), plan(problem, seed=6, lns_iters=5)
    assert validate(before, problem) == [] and validate(after, problem) == []
    (span_before, total_before), (span_after, total_after) = _cost(before), _cost(after)
    assert span_after == span_before
    assert total_after < total_before - 0.1


def _hop_cost(lat, parts) -> float:
    """assign_stages' documented cost: per pair of consecutive stages, the mean over nodes of the latency to the
    nearest node of the neighbouring stage, both ways."""
    return sum(np.mean([min(lat[i][j] for j in q) for i in p]) + np.mean([min(lat[i][j] for i in p) for j in q])
               for p, q in zip(parts, parts[1:]))


def test_assign_stages_with_its_default_restarts_finds_the_brute_force_optimum():
    """8 nodes into 4 stages of 2 (latencies drawn with seed 1000, rounded to 10 ms): the optimum over all 2520
    assignments, enumerated here, costs 2.08. assign_stages(seed=0) with its default 4 restarts finds it; its
    first three restarts end in worse local optima (2.53), so the result depends on the documented default
    (instance found by trying latency seeds 1000-1199 at commit c902e8d)."""
    rng = np.random.default_rng(1000)
    lat = np.round(rng.uniform(0.1, 3.0, size=(8, 8)), 2)
    np.fill_diagonal(lat, 0.0)
    best = np.inf
    for a in itertools.combinations(range(8), 2):
        for b in itertools.combinations(sorted(set(range(8)) - set(a)), 2):
            for c in itertools.combinations(sorted(set(range(8)) - set(a) - set(b)), 2):
                d = tuple(sorted(set(range(8)) - set(a) - set(b) - set(c)))
                best = min(best, _hop_cost(lat, [a, b, c, d]))
    assert best == pytest.approx(2.08)
    stages = assign_stages(lat, (2, 2, 2, 2), seed=0)
    assert sorted(n for s in stages for n in s) == list(range(8)) and [len(s) for s in stages] == [2, 2, 2, 2]
    assert _hop_cost(lat, stages) == pytest.approx(best)


def test_the_default_lns_reaches_a_recorded_makespan():
    """A golden value: 4 stages of 3 nodes (latencies and placement drawn with seed 38, rounded to 10 ms),
    3 microbatches of 3 stages each. plan() with its defaults (30 rounds freeing 3 microbatches each) reached a
    valid 11.44 s at commit c902e8d; freeing 2 per round reaches only 11.62 s there. No rule fixes the search
    effort, so this pins the result of the documented defaults: a later planner may do better, not worse."""
    rng = np.random.default_rng(38)
    lat = np.round(rng.uniform(0.05, 3.0, size=(12, 12)), 2)
    np.fill_diagonal(lat, 0.0)
    nodes = rng.permutation(12).reshape(4, 3)
    problem = make_problem(latency_s=lat, stages=nodes, n_microbatches=3, skip=0.25, max_jump=1,
                           forward_s=1.0, backward_s=1.5)
    schedule = plan(problem)
    assert validate(schedule, problem) == []
    assert schedule.makespan_s <= 11.44 + 1e-9
