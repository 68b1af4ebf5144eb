"""Edges of SkipPipe's problem, planner and constraint checker that the mutation run of issue 16 showed untested.

Schedules here are timed by hand (`serial`: one microbatch after another, each forward as soon as its input
arrives, the backward back along the path), so the checker is judged against times written independently of
the planner; broken schedules are those hand schedules with one thing moved."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from training.parallel.skippipe import Schedule, Step, plan
from training.parallel.skippipe_check import validate
from training.parallel.skippipe_problem import make_problem

# node i holds stage i; a message i -> j takes 0.1 (i + 1) + 0.01 j seconds (not symmetric)
LAT = [[0.0 if i == j else 0.1 * (i + 1) + 0.01 * j for j in range(6)] for i in range(6)]


def chain_problem(n_stages: int = 4, **settings):
    return make_problem(latency_s=np.array(LAT)[:n_stages, :n_stages], stages=[[s] for s in range(n_stages)],
                        **{"n_microbatches": 1, **settings})


def serial(problem, stage_paths: list[list[int]]) -> Schedule:
    """Microbatches one after another on nodes = stages; F after its input arrives, B after its gradient."""
    lat, f, b = problem.latency_s, problem.forward_s, problem.backward_s
    steps, t, paths = [], 0.0, []
    for m, stages in enumerate(stage_paths):
        k = len(stages)
        fw: list[tuple[float, float]] = []
        for i, n in enumerate(stages):
            start = t if i == 0 else fw[-1][1] + lat[stages[i - 1]][n]
            fw.append((start, start + f))
        bw: list[tuple[float, float]] = [(0.0, 0.0)] * k
        for i in reversed(range(k)):
            start = fw[-1][1] if i == k - 1 else bw[i + 1][1] + lat[stages[i + 1]][stages[i]]
            bw[i] = (start, start + b)
        for i, n in enumerate(stages):
            before, after = (stages[i - 1] if i else None), (stages[i + 1] if i + 1 < k else None)
            steps.append(Step("F", m, n, n, before, after, *fw[i]))
            steps.append(Step("B", m, n, n, after, before, *bw[i]))
        t = bw[0][1]
        paths.append(tuple((n, n) for n in stages))
    steps.sort(key=lambda s: (s.node, s.start_s))
    return Schedule(paths=tuple(paths), steps=tuple(steps), makespan_s=t)


def moved(schedule: Schedule, kind: str, m: int, stage: int, by: float) -> Schedule:
    """The schedule with one step shifted by `by` seconds (same length)."""
    steps = tuple(dataclasses.replace(s, start_s=s.start_s + by, end_s=s.end_s + by)
                  if (s.kind, s.microbatch, s.stage) == (kind, m, stage) else s for s in schedule.steps)
    return dataclasses.replace(schedule, steps=steps, makespan_s=max(s.end_s for s in steps))


# -- checker: paths ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stages,settings", [
    ([0, 1, 2, 3], {}),
    ([0, 2, 3], dict(skip=0.25, max_jump=1)),  # 0 -> 2 skips one stage, max_jump 1 allows it
    ([0, 2, 1], dict(skip=0.25, reorder=True)),  # one adjacent swap
    ([0, 3], dict(skip=0.5, max_jump=2)),
])
def test_hand_timed_valid_paths_pass(stages, settings):
    problem = chain_problem(**settings)
    assert validate(serial(problem, [stages]), problem) == []


@pytest.mark.parametrize("stages,settings,message", [
    ([0, 3], dict(skip=0.5, max_jump=1), "hop 0->3 skips more than max_jump=1"),
    ([0, 3, 2, 1], dict(reorder=True), "stage 1 after 3 is not an allowed swap"),  # not adjacent
    ([0, 2, 1, 4, 3], dict(reorder=True), "2 swaps, at most one allowed"),
    ([0, 1, 2], dict(skip=0.5), "3 visits, want K=2"),
    ([1, 2, 3], dict(skip=0.25), "first stage is not 0"),
    ([0, 1, 1, 2], {}, "a stage is visited twice"),
])
def test_each_broken_path_rule_is_named(stages, settings, message):
    problem = chain_problem(n_stages=5 if 4 in stages else 4, **settings)
    assert any(message in e for e in validate(serial(problem, [stages]), problem)), message


def test_two_swaps_are_two_even_without_other_errors():
    problem = chain_problem(n_stages=5, skip=0.0, reorder=True)
    errors = validate(serial(problem, [[0, 2, 1, 4, 3]]), problem)
    assert errors == ["mb 0: 2 swaps, at most one allowed"]


@pytest.mark.parametrize("bad_stage", [-1, 4])  # 4 crashed validate() (load[s] indexed before the range check)
def test_a_stage_outside_the_problem_is_named_not_crashed_on(bad_stage):
    """Stage -1 must not be read as the last stage, nor stage S indexed past the end."""
    problem = chain_problem(skip=0.25)
    good = serial(problem, [[0, 1, 2]])
    path = ((0, 0), (1, 1), (bad_stage, 3))
    errors = validate(dataclasses.replace(good, paths=(path,)), problem)
    assert f"mb 0: node 3 does not hold stage {bad_stage}" in errors


def test_load_cap_counts_stages_after_the_first():
    """M = 4, K = 2 of S = 4: cap ceil(4 * 2 / 4) = 2 per stage >= 1; stage 0 takes all 4 and is not capped."""
    problem = chain_problem(n_microbatches=4, skip=0.5, max_jump=4)
    ok = serial(problem, [[0, 1], [0, 1], [0, 2], [0, 3]])
    assert problem.load_cap == 2 and validate(ok, problem) == []
    crowded = serial(problem, [[0, 1], [0, 1], [0, 1], [0, 3]])
    assert validate(crowded, problem) == ["stage 1 takes 3 microbatches > load cap 2"]


# -- checker: times ---------------------------------------------------------------------------------------------


def test_a_forward_before_its_input_arrives_is_named():
    """F of visit 1 starts at 1 + L[0][1] = 1.11; 0.05 earlier is still after F0's end but before arrival."""
    problem = chain_problem(skip=0.25)
    good = serial(problem, [[0, 1, 2]])
    assert validate(good, problem) == []
    errors = validate(moved(good, "F", 0, 1, -0.05), problem)
    assert "mb 0: F at visit 1 starts before its input can arrive" in errors


@pytest.mark.parametrize("visit", [0, 1])
def test_a_backward_before_its_gradient_arrives_is_named(visit):
    problem = chain_problem(skip=0.25)
    good = serial(problem, [[0, 1, 2]])
    errors = validate(moved(good, "B", 0, visit, -0.05), problem)
    assert f"mb 0: B at visit {visit} starts before its gradient can arrive" in errors


def test_a_backward_before_the_loss_is_named():
    problem = chain_problem(skip=0.25)
    errors = validate(moved(serial(problem, [[0, 1, 2]]), "B", 0, 2, -0.5), problem)
    assert "mb 0: backward starts before the loss" in errors


def test_a_duplicated_step_is_named():
    problem = chain_problem(skip=0.25)
    good = serial(problem, [[0, 1, 2]])
    twice = dataclasses.replace(good, steps=(*good.steps, good.steps[0]))
    assert "steps do not match the paths one F and one B per visit" in validate(twice, problem)


def test_message_endpoints_and_makespan_are_checked():
    problem = chain_problem(skip=0.25)
    good = serial(problem, [[0, 1, 2]])
    wrong_dst = tuple(dataclasses.replace(s, dst=3) if (s.kind, s.stage) == ("F", 1) else s for s in good.steps)
    assert "mb 0 visit 1: message endpoints disagree with the path" in validate(
        dataclasses.replace(good, steps=wrong_dst), problem)
    assert validate(dataclasses.replace(good, makespan_s=good.makespan_s + 1), problem) == [
        "makespan is not the last step's end"]


def one_node_gpipe(order: list[tuple[str, int, float]], **settings):
    """One stage on one node: F = 1 s, B = 2 s, steps at the given starts (S = 1, K = 1)."""
    problem = make_problem(latency_s=[[0.0]], stages=[[0]], n_microbatches=3, **settings)
    steps = tuple(Step(kind, m, 0, 0, None, None, start, start + (1.0 if kind == "F" else 2.0))
                  for kind, m, start in order)
    return problem, Schedule(paths=(((0, 0),),) * 3, steps=steps, makespan_s=max(s.end_s for s in steps))


def test_memory_peak_counts_forwards_not_yet_backed_up():
    """GPipe on one node: F0 F1 F2 then B0 B1 B2 holds 3 microbatches at once."""
    order = [("F", 0, 0.0), ("F", 1, 1.0), ("F", 2, 2.0), ("B", 0, 3.0), ("B", 1, 5.0), ("B", 2, 7.0)]
    problem, schedule = one_node_gpipe(order, memory_cap=3)
    assert validate(schedule, problem) == []
    problem2, _ = one_node_gpipe(order, memory_cap=2)
    assert validate(schedule, problem2) == ["node 0: 3 microbatches live > memory cap 2"]


def test_a_backward_ending_as_a_forward_starts_frees_its_slot_first():
    """F0 F1 B0 F2 B1 B2 with F2 starting when B0 ends (and 4e-7 s before, within float slack): peak 2."""
    for f2 in (4.0, 4.0 - 4e-7):
        order = [("F", 0, 0.0), ("F", 1, 1.0), ("B", 0, 2.0), ("F", 2, f2), ("B", 1, 5.0), ("B", 2, 7.0)]
        problem, schedule = one_node_gpipe(order, memory_cap=2)
        assert validate(schedule, problem) == [], f2


def test_overlap_between_neighbouring_steps_is_named():
    order = [("F", 0, 0.0), ("F", 1, 0.5), ("F", 2, 2.0), ("B", 0, 3.0), ("B", 1, 5.0), ("B", 2, 7.0)]
    problem, schedule = one_node_gpipe(order, memory_cap=3)
    assert validate(schedule, problem) == ["node 0: F0 and F1 overlap"]
    order = [("F", 0, 0.0), ("F", 1, 1.0), ("F", 2, 2.0), ("B", 0, 3.0), ("B", 1, 5.0), ("B", 2, 6.5)]
    problem, schedule = one_node_gpipe(order, memory_cap=3)
    assert validate(schedule, problem) == ["node 0: B1 and B2 overlap"]


# -- problem ----------------------------------------------------------------------------------------------------


def test_problem_defaults_are_the_papers():
    """SkipPipe's code: memory = 3 (create_schedule.py), at most 4 stages skipped per hop (a_star_modified.py);
    no skipping, no reordering, F = 1, B = 2, no load slack unless asked."""
    problem = chain_problem()
    assert (problem.memory_cap, problem.max_jump, problem.skip, problem.reorder, problem.load_slack,
            problem.forward_s, problem.backward_s) == (3, 4, 0.0, False, 0, 1.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.skip = 0.5
    assert not hasattr(problem, "__dict__") and hash(problem) == hash(dataclasses.replace(problem))
    with pytest.raises(TypeError):
        type(problem)(problem.latency_s, problem.stages, 1)  # keyword-only


def test_one_microbatch_is_a_problem_and_its_plan_is_the_chain_by_hand():
    """M = 1 on 3 stages, one node each: F 0-1, F 1.11-2.11, F 2.33-3.33 (L01 = 0.11, L12 = 0.22), B 3.33-5.33,
    B 5.33 + L21 (0.31) = 5.64-7.64, B 7.64 + L10 (0.2) = 7.84-9.84."""
    problem = chain_problem(n_stages=3, n_microbatches=1)
    schedule = plan(problem)
    assert schedule.paths == (((0, 0), (1, 1), (2, 2)),)
    assert schedule.makespan_s == pytest.approx(9.84)
    got = [(st.node, st.kind, st.src, st.dst, round(st.start_s, 6), round(st.end_s, 6)) for st in schedule.steps]
    assert got == [(0, "F", None, 1, 0.0, 1.0), (0, "B", 1, None, 7.84, 9.84),
                   (1, "F", 0, 2, 1.11, 2.11), (1, "B", 2, 0, 5.64, 7.64),
                   (2, "F", 1, None, 2.33, 3.33), (2, "B", None, 1, 3.33, 5.33)]
    assert validate(schedule, problem) == []
    with pytest.raises(ValueError, match="n_microbatches >= 1"):
        chain_problem(n_stages=3, n_microbatches=0)


def test_heterogeneous_latency_defaults_deal_nodes_to_four_sites():
    """Default: 4 sites round-robin, 0.05-0.4 s inside a site, 1-8 s between (the farthest pair gets 8) +-10%."""
    from training.parallel.skippipe_problem import heterogeneous_latency

    lat = heterogeneous_latency(12, seed=5)
    i, j = np.indices(lat.shape)
    same, off = (i % 4) == (j % 4), i != j
    assert np.all(np.diag(lat) == 0)
    assert lat[same & off].min() >= 0.05 and lat[same & off].max() <= 0.4
    inter = lat[~same]
    assert inter.min() >= 0.9 and inter.max() <= 8.8 and inter.max() >= 8 * 0.9


def test_assign_stages_refuses_an_empty_stage():
    from training.parallel.skippipe_problem import assign_stages

    lat = np.array(LAT)
    with pytest.raises(ValueError, match="stage sizes"):
        assign_stages(lat, [2, 0, 2])
    with pytest.raises(ValueError, match="stage sizes"):
        assign_stages(lat, [3, 2, 2])  # 7 nodes asked of 6


@pytest.mark.parametrize("sets,room,agents,want", [
    (((1, 2),), (0, 1, 1), 1, True),  # exactly fits
    (((1, 2),), (0, 1, 1), 2, False),  # stage 1 has room for one path only
    (((1, 2),), (0, 1, 2, 2), 2, False),  # stage 3's room does not help: both paths need stage 1
    (((1, 2),), (0, 2, 0, 2), 1, False),  # no room on stage 2
    (((1, 2), (1, 3)), (0, 2, 1, 1), 2, True),  # one path {1,2}, the other {1,3}
    (((1, 2), (2, 3)), (0, 1, 0, 1), 1, False),  # {1,2} lacks stage 2, {2,3} too
    (((1, 2), (2, 3)), (0, 1, 1, 1), 2, False),  # both sets use stage 2, which has room 1
    ((), (0, 0), 0, True),
])
def test_fillable_by_hand(sets, room, agents, want):
    from training.parallel.skippipe_problem import fillable

    assert fillable(sets, room, agents, 0) is want


# -- planner ----------------------------------------------------------------------------------------------------


def test_memory_cap_one_makes_microbatches_wait_for_the_previous_backward():
    """2 stages, free links, cap 1: node 0 holds microbatch 0 from its F (0) to its B's end (1 + 1 + 2 + 2 = 6),
    so microbatch 1 starts at 6: makespan 2 x 6 = 12 (GPipe with cap >= 2 would take (2 + 1) x 3 = 9)."""
    problem = make_problem(latency_s=np.zeros((2, 2)), stages=[[0], [1]], n_microbatches=2, memory_cap=1)
    schedule = plan(problem)
    assert schedule.makespan_s == pytest.approx(12.0)
    assert validate(schedule, problem) == []
    roomy = plan(dataclasses.replace(problem, memory_cap=2))
    assert roomy.makespan_s == pytest.approx(9.0)


def test_fixed_pipelines_deal_microbatches_round_robin_over_the_replicas():
    from training.parallel.skippipe import fixed_pipeline_paths

    problem = make_problem(latency_s=np.zeros((5, 5)), stages=[[0, 1], [2, 3], [4]], n_microbatches=3)
    assert fixed_pipeline_paths(problem) == [[(0, 0), (1, 2), (2, 4)], [(0, 1), (1, 3), (2, 4)],
                                             [(0, 0), (1, 2), (2, 4)]]


def test_schedule_spans_use_the_node_as_rank():
    problem = chain_problem(n_stages=2, n_microbatches=1)
    spans = plan(problem).spans()
    # F 0-1 on node 0, F 1.11-2.11 on node 1, B 2.11-4.11 on node 1, B 4.11 + L10 (0.2) = 4.31-6.31 on node 0
    assert [(s.rank, s.stage, s.kind, s.microbatch, round(s.start, 6), round(s.end, 6)) for s in spans] == [
        (0, 0, "F", 0, 0.0, 1.0), (0, 0, "B", 0, 4.31, 6.31), (1, 1, "F", 0, 1.11, 2.11), (1, 1, "B", 0, 2.11, 4.11)]


def test_steps_and_schedules_are_frozen_values():
    step = Step("F", 0, 0, 0, None, 1, 0.0, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.start_s = 2.0
    assert not hasattr(step, "__dict__") and hash(step) == hash(dataclasses.replace(step))
    schedule = Schedule(paths=(((0, 0),),), steps=(step,), makespan_s=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.makespan_s = 2.0
    assert not hasattr(schedule, "__dict__") and hash(schedule) == hash(dataclasses.replace(schedule))
    with pytest.raises(TypeError):
        Schedule((((0, 0),),), (step,), 1.0)  # keyword-only


def test_revisiting_the_top_stage_is_a_repeat_not_a_swap():
    """[0, 1, 1, 1] repeats stage 1; a swap is a step back to a lower stage, so no swap is reported."""
    problem = chain_problem()
    assert validate(serial(problem, [[0, 1, 1, 1]]), problem) == ["mb 0: a stage is visited twice: [0, 1, 1, 1]"]


def test_float_slack_of_one_microsecond_is_inclusive():
    """The checker allows 1e-6 s of float error, inclusive: a forward 2e-6 s long when forward_s = 1e-6 (off by
    exactly 1e-6, exact in binary), and a backward starting 1e-6 s before the loss is computed, both pass."""
    problem = make_problem(latency_s=[[0.0]], stages=[[0]], n_microbatches=1, forward_s=1e-6, backward_s=2.0)
    steps = (Step("F", 0, 0, 0, None, None, 0.0, 2e-6), Step("B", 0, 0, 0, None, None, 2e-6, 2.0 + 2e-6))
    assert validate(Schedule(paths=(((0, 0),),), steps=steps, makespan_s=2.0 + 2e-6), problem) == []
    loose = make_problem(latency_s=[[0.0]], stages=[[0]], n_microbatches=1, forward_s=1.0, backward_s=2.0)
    early = 1.0 - 1e-6
    steps = (Step("F", 0, 0, 0, None, None, 0.0, 1.0), Step("B", 0, 0, 0, None, None, early, early + 2.0))
    assert validate(Schedule(paths=(((0, 0),),), steps=steps, makespan_s=early + 2.0), loose) == []
    late = (Step("F", 0, 0, 0, None, None, 0.0, 1.0), Step("B", 0, 0, 0, None, None, 0.9, 2.9))
    assert "mb 0: backward starts before the loss" in validate(
        Schedule(paths=(((0, 0),),), steps=late, makespan_s=2.9), loose)


def test_a_stage_naming_node_n_is_outside_an_n_node_network():
    with pytest.raises(ValueError, match=r"outside 0\.\.3"):
        make_problem(latency_s=np.zeros((4, 4)), stages=[[0], [4]], n_microbatches=1)
    with pytest.raises(ValueError, match=r"outside 0\.\.3"):
        make_problem(latency_s=np.zeros((4, 4)), stages=[[-1], [1]], n_microbatches=1)
    assert make_problem(latency_s=np.zeros((4, 4)), stages=[[0], [3]], n_microbatches=1).stages == ((0,), (3,))


def test_assign_stages_minimises_the_two_sided_nearest_neighbour_hop_cost():
    """Sizes [1, 2] on 3 nodes: the stage-0 node a pays, for its messages a -> q to stage 1, the nearest hop
    min_q L[a][q] (a's side) plus the mean over q of the nearest sender L[a][q] (stage 1's side), by hand:
    a = 0: 1 + 3 = 4; a = 1: 2.5 + 2.5 = 5; a = 2: 0.5 + 5 = 5.5. So node 0 leads. Counting one side twice
    would pick node 2 (2 x min: 1) or node 1 (2 x mean: 5). Every pair of assignments is one swap apart, so
    the swap search cannot stop short of the best."""
    from training.parallel.skippipe_problem import assign_stages

    lat = np.array([[0.0, 1.0, 5.0], [2.5, 0.0, 2.5], [0.5, 9.5, 0.0]])
    assert assign_stages(lat, [1, 2]) == ((0,), (1, 2))


def test_assign_stages_stops_when_no_swap_is_strictly_better():
    """All links equal: every assignment costs the same, so no swap improves and the search must end (a search
    that took equal-cost swaps would swap back and forth for ever)."""
    import signal

    from training.parallel.skippipe_problem import assign_stages

    def give_up(*_):
        raise TimeoutError("assign_stages did not stop on equal-cost swaps")

    old = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, 10.0)
    try:
        stages = assign_stages(np.ones((6, 6)) - np.eye(6), [2, 2, 2])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert sorted(n for s in stages for n in s) == list(range(6)) and [len(s) for s in stages] == [2, 2, 2]


def _rule_paths(n_stages: int, k: int, max_jump: int, reorder: bool):
    """Every stage sequence SkipPipe allows, enumerated here from the rules: stage 0 first, k distinct stages,
    a forward hop skips at most max_jump stages, at most one step back, to the stage just below the highest."""
    import itertools

    for rest in itertools.permutations(range(1, n_stages), k - 1):
        top, swaps, ok = 0, 0, True
        for s in rest:
            if s > top:
                ok &= s - top - 1 <= max_jump
            else:
                ok &= reorder and s == top - 1
                swaps += 1
            top = max(top, s)
        if ok and swaps <= 1:
            yield (0, *rest)


def _chain_finish(lat, nodes, f, b) -> float:
    t = 0.0
    for i, n in enumerate(nodes):
        t = (t + lat[nodes[i - 1]][n] if i else 0.0) + f
    t += b
    for i in range(len(nodes) - 2, -1, -1):
        t += lat[nodes[i + 1]][nodes[i]] + b
    return t


@pytest.mark.parametrize("seed", range(6))
def test_one_microbatch_gets_the_fastest_path_found_by_brute_force(seed):
    """With one microbatch nothing competes, so the planner's best-first search must return the fastest path
    over every allowed stage sequence and every choice of replica node."""
    import itertools

    rng = np.random.default_rng(seed)
    n_stages, per = 5, 2
    lat = rng.uniform(0.05, 3.0, size=(n_stages * per, n_stages * per))
    np.fill_diagonal(lat, 0.0)
    nodes = rng.permutation(n_stages * per).reshape(n_stages, per)
    reorder = seed % 2 == 1
    problem = make_problem(latency_s=lat, stages=nodes, n_microbatches=1, skip=0.4, reorder=reorder, max_jump=1,
                           forward_s=1.0, backward_s=1.5)
    best = min(_chain_finish(lat, choice, 1.0, 1.5)
               for stages in _rule_paths(n_stages, problem.path_len, 1, reorder)
               for choice in itertools.product(*(nodes[s] for s in stages)))
    schedule = plan(problem)
    assert schedule.makespan_s == pytest.approx(best)
    assert validate(schedule, problem) == []


def _cost(schedule: Schedule) -> tuple[float, float]:
    """(makespan, sum over microbatches of their last step's end): the order LNS compares plans in."""
    finish: dict[int, float] = {}
    for st in schedule.steps:
        finish[st.microbatch] = max(finish.get(st.microbatch, 0.0), st.end_s)
    return schedule.makespan_s, sum(finish.values())


@pytest.mark.parametrize("seed", [14, 17, 21])
def test_each_lns_round_keeps_the_plan_no_worse(seed):
    """Rounds are seeded, so lns_iters = r + 1 replays the first r rounds and adds one; a round keeps its trial
    only if it is no worse (makespan, then total finish), so the plans never get worse round by round.
    (Seeds where some round's trial ties the makespan with a larger total finish.)"""
    rng = np.random.default_rng(seed)
    n = 10
    order = rng.permutation(n)
    stages = [order[2 * s:2 * s + 2] for s in range(5)]
    lat = rng.uniform(0.05, 3.0, size=(n, n)) if seed % 2 else np.round(rng.uniform(0.1, 1.0, size=(n, n)), 1)
    problem = make_problem(latency_s=lat, stages=stages, n_microbatches=8, skip=0.4, reorder=True)
    costs = [_cost(plan(problem, seed=seed, lns_iters=r)) for r in range(11)]
    for a, b in zip(costs, costs[1:]):
        assert b[0] < a[0] + 1e-9 and (b[0] < a[0] - 1e-9 or b[1] <= a[1] + 1e-9), costs
