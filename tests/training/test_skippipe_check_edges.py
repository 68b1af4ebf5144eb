"""SkipPipe's checker (training/parallel/skippipe_check.py) on a path whose first stage is not 0 (issue 16,
skippipe_check mutant 26). Every hop rule is about the hops the path makes, so the checker must judge them from
the path's own first stage: it names the broken first stage, every hop rule the later visits break, and no hop
the path does not make. Expected errors are written out by hand from the rules."""
from __future__ import annotations

import numpy as np

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
