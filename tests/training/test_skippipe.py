"""SkipPipe path scheduler: every constraint on random latency matrices, the full-pipeline baseline, bad input."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from training.parallel.skippipe import Schedule, fixed_pipeline_paths, plan
from training.parallel.skippipe_check import validate
from training.parallel.skippipe_problem import (
    assign_stages, full_pipeline, heterogeneous_latency, make_problem, stage_moves,
)

# (nodes, stage sizes, microbatches): N = 8..20, S = 4..6, M = 6..12; the last is the paper's 20-node default
SETTINGS = [(8, [2, 2, 2, 2], 6), (10, [2, 2, 2, 2, 2], 8), (12, [2] * 6, 6), (16, [4, 3, 3, 3, 3], 10),
            (20, [5, 3, 3, 3, 3, 3], 12)]


def random_problem(seed: int, n: int, sizes: list[int], m: int, *, geo: bool, **settings):
    """Geo-clustered or uniform random latencies, nodes dealt to stages at random."""
    rng = np.random.default_rng(seed)
    lat = heterogeneous_latency(n, seed=seed) if geo else rng.uniform(0.05, 3.0, size=(n, n))
    order = rng.permutation(n)
    bounds = np.cumsum([0, *sizes])
    stages = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return make_problem(latency_s=lat, stages=stages, n_microbatches=m, **settings)


def stages_of(schedule: Schedule) -> list[list[int]]:
    return [[s for s, _ in path] for path in schedule.paths]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n,sizes,m", SETTINGS)
def test_schedules_meet_every_constraint_and_beat_the_full_pipeline(seed, n, sizes, m):
    geo = seed % 2 == 0
    full = plan(random_problem(seed, n, sizes, m, geo=geo), lns_iters=4)
    assert validate(full, random_problem(seed, n, sizes, m, geo=geo)) == []
    for skip, reorder in [(0.25, False), (0.33, True), (0.5, seed % 2 == 1)]:
        problem = random_problem(seed, n, sizes, m, geo=geo, skip=skip, reorder=reorder)
        schedule = plan(problem, lns_iters=4)
        assert validate(schedule, problem) == []
        # Not a theorem (the planner is greedy), but it held on all 432 cases of a wider sweep
        assert schedule.makespan_s <= full.makespan_s + 1e-9


def test_skip_zero_is_the_full_pipeline():
    problem = random_problem(3, 12, [2] * 6, 8, geo=True)
    schedule = plan(problem, lns_iters=4)
    assert stages_of(schedule) == [list(range(6))] * 8
    assert schedule == plan(full_pipeline(dataclasses.replace(problem, skip=0.5, reorder=True)), lns_iters=4)


def test_reordering_is_used_and_stays_one_adjacent_swap():
    problem = random_problem(1, 20, [5, 3, 3, 3, 3, 3], 12, geo=True, skip=0.33, reorder=True)
    swapped = [p for p in stages_of(plan(problem, lns_iters=4)) if p != sorted(p)]
    assert swapped, "with reordering on, the planner should find some swapped path here"
    assert all(sum(b < a for a, b in zip(p, p[1:])) == 1 for p in swapped)


def test_tight_memory_and_jump_limits_still_hold():
    problem = random_problem(2, 12, [2] * 6, 10, geo=False, skip=0.5, memory_cap=1, max_jump=1)
    schedule = plan(problem, lns_iters=4)
    assert validate(schedule, problem) == []
    assert max(b - a for p in stages_of(schedule) for a, b in zip(p, p[1:])) <= 2


def test_validate_names_each_broken_constraint():
    problem = random_problem(0, 12, [2] * 6, 6, geo=True, skip=0.33, reorder=True)
    schedule = plan(problem, lns_iters=4)

    def errors(**stricter) -> str:
        return " | ".join(validate(schedule, dataclasses.replace(problem, **stricter)))

    assert "live > memory cap" in errors(memory_cap=1)
    assert "want K=" in errors(skip=0.0)
    assert "not an allowed swap" in errors(reorder=False)
    assert "skips more than max_jump" in errors(max_jump=0)
    assert "compute windows have the wrong length" in errors(forward_s=problem.forward_s / 2)
    a, b = schedule.steps[:2]  # the first two steps of the lowest node: put b in a's window
    moved = dataclasses.replace(schedule, steps=(a, dataclasses.replace(b, start_s=a.start_s, end_s=a.end_s),
                                                 *schedule.steps[2:]))
    assert any(e.endswith("overlap") for e in validate(moved, dataclasses.replace(problem, backward_s=1.0,
                                                                                  forward_s=1.0)))
    crowded = dataclasses.replace(schedule, paths=(schedule.paths[0],) * 6)
    assert any("load cap" in e for e in validate(crowded, problem))
    bad_node = dataclasses.replace(schedule, paths=(((0, problem.stages[1][0]), *schedule.paths[0][1:]),
                                                    *schedule.paths[1:]))
    assert any("does not hold stage" in e for e in validate(bad_node, problem))


def test_programs_give_each_node_its_steps_in_order_with_message_endpoints():
    problem = random_problem(5, 10, [2, 2, 2, 2, 2], 8, geo=True, skip=0.25)
    schedule = plan(problem, lns_iters=4)
    for node in range(10):
        prog = schedule.program(node)
        assert [s.start_s for s in prog] == sorted(s.start_s for s in prog)
        assert all(s.node == node for s in prog)
    for m, path in enumerate(schedule.paths):
        first, last = path[0][1], path[-1][1]
        steps = [s for s in schedule.steps if s.microbatch == m]
        assert next(s for s in steps if s.kind == "F" and s.node == first).src is None
        assert next(s for s in steps if s.kind == "F" and s.node == last).dst is None
        assert next(s for s in steps if s.kind == "B" and s.node == first).dst is None
    assert len(schedule.spans()) == len(schedule.steps)


@pytest.mark.parametrize("settings,match", [
    (dict(memory_cap=0), "memory_cap"),
    (dict(skip=-0.4), "path length"),  # K > S
    (dict(skip=1.0), "path length"),  # K = 0
    (dict(forward_s=0.0), "forward_s"),
    (dict(load_slack=-1), "load_slack"),
])
def test_infeasible_settings_raise(settings, match):
    with pytest.raises(ValueError, match=match):
        random_problem(0, 8, [2, 2, 2, 2], 6, geo=True, **settings)


def test_malformed_inputs_and_unplannable_problems_raise():
    lat = heterogeneous_latency(6, seed=0)
    with pytest.raises(ValueError, match="square"):
        make_problem(latency_s=lat[:, :5], stages=[[0], [1]], n_microbatches=2)
    with pytest.raises(ValueError, match="one stage per node"):
        make_problem(latency_s=lat, stages=[[0, 1], [1, 2]], n_microbatches=2)
    with pytest.raises(ValueError, match="outside"):
        make_problem(latency_s=lat, stages=[[0], [9]], n_microbatches=2)
    # in order with no jump only 0,1,2 fits K=3 of 6, but the load cap lets stage 1 take 3 of 6 microbatches
    stuck = make_problem(latency_s=lat, stages=[[n] for n in range(6)], n_microbatches=6, skip=0.5, max_jump=0)
    with pytest.raises(ValueError, match="raise load_slack or max_jump"):
        plan(stuck)


def test_plans_are_deterministic_by_seed():
    problem = random_problem(7, 16, [4, 3, 3, 3, 3], 10, geo=True, skip=0.33, reorder=True)
    assert plan(problem, seed=3, lns_iters=6) == plan(problem, seed=3, lns_iters=6)


def test_stage_moves_follow_skippipe_jump_and_swap_rules():
    problem = random_problem(0, 12, [2] * 6, 6, geo=True, skip=0.33, reorder=True, max_jump=1)
    assert stage_moves(problem, [0]) == [1, 2]
    assert stage_moves(problem, [0, 2]) == [1, 3, 4]
    assert stage_moves(problem, [0, 2, 1]) == [3, 4]  # one swap per path
    assert stage_moves(dataclasses.replace(problem, reorder=False), [0, 2]) == [3, 4]


def test_heterogeneous_latency_is_clustered_and_seeded():
    lat = heterogeneous_latency(12, seed=1, clusters=3)
    same = np.arange(12)[:, None] % 3 == np.arange(12)[None] % 3
    off_diag = ~np.eye(12, dtype=bool)
    assert np.all(np.diag(lat) == 0) and lat[same & off_diag].max() < lat[~same].min()
    assert not np.allclose(lat, lat.T)
    assert np.array_equal(lat, heterogeneous_latency(12, seed=1, clusters=3))


def test_assign_stages_partitions_nodes_and_beats_random_partitions():
    lat = heterogeneous_latency(20, seed=4)
    sizes = [5, 3, 3, 3, 3, 3]
    stages = assign_stages(lat, sizes, seed=0)
    assert [len(s) for s in stages] == sizes and sorted(n for s in stages for n in s) == list(range(20))
    assert stages == assign_stages(lat, sizes, seed=0)

    def hop_cost(parts) -> float:  # mean latency from a stage's node to the nearest node of the next stage
        return sum(lat[np.ix_(p, q)].min(1).mean() for p, q in zip(parts, parts[1:]))

    rng = np.random.default_rng(0)
    dealt = [np.split(rng.permutation(20), np.cumsum(sizes)[:-1]) for _ in range(20)]
    assert hop_cost([list(s) for s in stages]) <= min(hop_cost(d) for d in dealt)
    problem = make_problem(latency_s=lat, stages=stages, n_microbatches=6)
    assert validate(plan(problem, paths=fixed_pipeline_paths(problem)), problem) == []


@pytest.mark.parametrize("p,m", [(3, 6), (4, 6), (4, 8)])
def test_linear_pipeline_without_latency_has_the_gpipe_makespan(p, m):
    """One node per stage, free links, memory >= p (1F1B's stage-0 peak): (m + p - 1)(F + B), anchors §1.1."""
    problem = make_problem(latency_s=np.zeros((p, p)), stages=[[s] for s in range(p)], n_microbatches=m,
                           forward_s=1.0, backward_s=2.0, memory_cap=p)
    schedule = plan(problem, lns_iters=4)
    assert validate(schedule, problem) == []
    assert schedule.makespan_s == pytest.approx((m + p - 1) * 3.0)
