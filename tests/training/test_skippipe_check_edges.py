"""SkipPipe's checker (training/parallel/skippipe_check.py) on a path whose first stage is not 0 (issue 16,
skippipe_check mutant 26). Every hop rule is about the hops the path makes, so the checker must judge them from
the path's own first stage: it names the broken first stage, every hop rule the later visits break, and no hop
the path does not make. Expected errors are written out by hand from the rules."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.training.test_skippipe_edges import chain_problem, moved, one_node_gpipe, serial
from training.parallel.skippipe import Schedule
from training.parallel.skippipe_check import validate
from training.parallel.skippipe_problem import make_problem


def _one_path(stages: list[int], **settings) -> tuple[Schedule, object]:
    """Node i holds stage i; one microbatch on `stages`. Only the path rules matter here (they are checked
    before any time), so the schedule has no steps."""
    n = 4
    problem = make_problem(latency_s=np.zeros((n, n)), stages=[[s] for s in range(n)], n_microbatches=1, **settings)
    return Schedule(paths=(tuple((s, s) for s in stages),), steps=(), makespan_s=0.0), problem


def test_going_back_from_a_wrong_first_stage_is_named_as_the_swaps_it_is():
    """3, 0, 1, 2: after 3 come 0 and 1 (not the stage just below 3) and 2 (the allowed adjacent swap): three
    steps back, two of them not allowed."""
    schedule, problem = _one_path([3, 0, 1, 2], reorder=True)
    assert validate(schedule, problem) == [
        "mb 0: first stage is not 0: [3, 0, 1, 2]",
        "mb 0: stage 0 after 3 is not an allowed swap (reorder=True)",
        "mb 0: stage 1 after 3 is not an allowed swap (reorder=True)",
        "mb 0: 3 swaps, at most one allowed"]


def test_no_hop_is_named_that_the_path_does_not_make():
    """2, 3, 0, 1 with max_jump 1: the hop 2 -> 3 skips nothing (a hop "0 -> 3" is not in the path); 0 and 1
    after 3 are two swaps that are not allowed without reorder."""
    schedule, problem = _one_path([2, 3, 0, 1], max_jump=1)
    assert validate(schedule, problem) == [
        "mb 0: first stage is not 0: [2, 3, 0, 1]",
        "mb 0: stage 0 after 3 is not an allowed swap (reorder=False)",
        "mb 0: stage 1 after 3 is not an allowed swap (reorder=False)",
        "mb 0: 2 swaps, at most one allowed"]


# -- later checks of the full mutation run (skippipe_check mutants 46, 63, 85, 99, 125, 128) -------------------

def test_a_stage_minus_one_is_named_and_not_counted_on_the_last_stage():
    """M = 2, K = 2 of S = 4: load cap ceil(2 * 2 / 4) = 1. Microbatch 0 visits 0, 3; microbatch 1 names stage -1
    on node 3. Stage -1 is reported, and it is not stage 3: stage 3 keeps a load of 1, within the cap."""
    problem = chain_problem(n_microbatches=2, skip=0.5)
    paths = (((0, 0), (3, 3)), ((0, 0), (-1, 3)))
    assert problem.load_cap == 1
    assert validate(Schedule(paths=paths, steps=(), makespan_s=0.0), problem) == [
        "mb 1: node 3 does not hold stage -1",
        "mb 1: stage -1 after 0 is not an allowed swap (reorder=False)"]


@pytest.mark.parametrize("kind", ["F", "B"])
def test_a_missing_step_is_named_without_reading_the_other_direction(kind):
    """Path 0, 1, 2 with one step of visit 1 left out: the step count and the missing step are named; the
    checker does not go on to time a path whose steps are incomplete (it would read a step that is not there)."""
    problem = chain_problem(skip=0.25)
    good = serial(problem, [[0, 1, 2]])
    gap = dataclasses.replace(good, steps=tuple(s for s in good.steps if (s.kind, s.stage) != (kind, 1)))
    assert validate(gap, problem) == ["steps do not match the paths one F and one B per visit",
                                      "mb 0: a step of its path is missing"]


@pytest.mark.parametrize("kind,stage", [("F", 1), ("F", 2), ("B", 0), ("B", 1)])
def test_a_message_arriving_one_microsecond_late_is_within_the_slack(kind, stage):
    """A step that starts exactly 1e-6 s before its input (F) or gradient (B) arrives is accepted: the checker's
    float slack is 1e-6 s, inclusive (the shift is exact: the start is arrival + (-1e-6))."""
    problem = chain_problem(skip=0.25)
    good = serial(problem, [[0, 1, 2]])
    assert validate(moved(good, kind, 0, stage, -1e-6), problem) == []
    assert validate(moved(good, kind, 0, stage, -3e-6), problem) != []


def test_a_forward_two_microseconds_after_a_backward_ends_finds_its_slot_free():
    """Memory cap 1 on one node: B0 ends at 3.000006 and F1 starts at 3.000008, after it; the slot is free again.
    (Events are compared at microsecond resolution; at 10 us resolution B0's end would round past F1's start.)"""
    order = [("F", 0, 0.0), ("B", 0, 1.000006), ("F", 1, 3.000008), ("B", 1, 4.000008), ("F", 2, 7.0),
             ("B", 2, 8.0)]
    problem, schedule = one_node_gpipe(order, memory_cap=1)
    assert validate(schedule, problem) == []


def test_a_backward_frees_one_slot():
    """Memory cap 1: F0 B0 F1 F2 holds F1 and F2 at once after B0 freed F0's slot: 2 live > 1."""
    order = [("F", 0, 0.0), ("B", 0, 1.0), ("F", 1, 3.0), ("F", 2, 4.0), ("B", 1, 5.0), ("B", 2, 7.0)]
    problem, schedule = one_node_gpipe(order, memory_cap=1)
    assert validate(schedule, problem) == ["node 0: 2 microbatches live > memory cap 1"]
