"""SkipPipe planner (training/parallel/skippipe.py) edges that the full mutation run of issue 16 found untested.

The memory look-up `_memory_block` is checked against its stated rule written out by brute force: adding the
half-open interval [start, end) to a node's live intervals is allowed (None) when no instant of [start, end)
then has more than `cap` live intervals; otherwise it names a later time to retry. Times are whole seconds, so
the float slack EPS never decides anything here."""
from __future__ import annotations

import numpy as np
import pytest

from training.parallel import skippipe


def _fits(live: list[tuple[float, float]], cap: int, start: float, end: float) -> bool:
    """The rule by brute force: the count of intervals live at each instant of [start, end), plus the new one,
    stays <= cap. The count only rises at start or at a live interval's start, so those instants suffice."""
    instants = [start] + [s for s, _ in live if start <= s < end]
    return all(sum(s <= u < e for s, e in live) + 1 <= cap for u in instants)


@pytest.mark.parametrize("seed", range(40))
def test_memory_block_allows_exactly_the_intervals_that_keep_the_cap(seed):
    """Random live intervals with whole-second ends (many touch the new one or each other) and caps 1-3."""
    rng = np.random.default_rng(seed)
    cap = int(rng.integers(1, 4))
    live = []
    for _ in range(int(rng.integers(0, 7))):
        s = int(rng.integers(0, 12))
        live.append((float(s), float(s + rng.integers(1, 8))))
    live.sort()
    start = float(rng.integers(0, 12))
    end = start + float(rng.integers(1, 8))
    got = skippipe._memory_block(live, cap, start, end)
    if _fits(live, cap, start, end):
        assert got is None, (live, cap, start, end)
    else:
        assert got is not None and got > start, (live, cap, start, end, got)


def test_memory_block_retries_when_the_live_count_falls_below_the_cap():
    """Cap 2; live [0, 6), [7, 20), [8, 20); new [5, 30). At 5 one is live, at 6 none, at 7 one, at 8 two: the new
    interval would be the third, so it is refused, and the count falls below 2 only when both end, at 20."""
    live = [(0.0, 6.0), (7.0, 20.0), (8.0, 20.0)]
    assert not _fits(live, 2, 5.0, 30.0)
    assert skippipe._memory_block(live, 2, 5.0, 30.0) == 20.0
    assert skippipe._memory_block(live, 3, 5.0, 30.0) is None


def test_memory_block_ignores_an_interval_that_ended_as_the_new_one_starts():
    """Cap 1; live [0, 5) and [5, 20); new [5, 10): [0, 5) is over at 5 (half-open), [5, 20) is live, so the new
    one must wait until 20. Counting [0, 5)'s end without its start would hide [5, 20)."""
    live = [(0.0, 5.0), (5.0, 20.0)]
    assert skippipe._memory_block(live, 1, 5.0, 10.0) == 20.0
    assert skippipe._memory_block([(0.0, 5.0)], 1, 5.0, 10.0) is None


def test_fixed_paths_are_timed_one_after_another_against_all_earlier_ones():
    """One stage on one node, F 1 s, B 2 s, three fixed paths: each microbatch waits for the node, by hand
    F0 [0, 1] B0 [1, 3], F1 [3, 4] B1 [4, 6], F2 [6, 7] B2 [7, 9]. (Timing the third against the first path
    alone would put F2 at 3, on top of F1.)"""
    from training.parallel.skippipe_problem import make_problem

    problem = make_problem(latency_s=[[0.0]], stages=[[0]], n_microbatches=3)
    schedule = skippipe.plan(problem, paths=[[(0, 0)]] * 3)
    assert [(s.kind, s.microbatch, s.start_s, s.end_s) for s in schedule.program(0)] == [
        ("F", 0, 0.0, 1.0), ("B", 0, 1.0, 3.0), ("F", 1, 3.0, 4.0), ("B", 1, 4.0, 6.0),
        ("F", 2, 6.0, 7.0), ("B", 2, 7.0, 9.0)]
    assert schedule.makespan_s == 9.0


def test_fixed_pipelines_count_the_replicas_of_stage_0():
    """DT-FM rows: stage 0 has two replicas, stage 1 one, stage 2 two. Microbatch m uses row m mod 2 (the
    stage-0 count), wrapped onto each stage's own replicas: rows 0, 1, 0 -> nodes (0, 2, 3), (1, 2, 4), (0, 2, 3)."""
    from training.parallel.skippipe_problem import make_problem

    problem = make_problem(latency_s=np.zeros((5, 5)), stages=[[0, 1], [2], [3, 4]], n_microbatches=3)
    assert skippipe.fixed_pipeline_paths(problem) == [[(0, 0), (1, 2), (2, 3)], [(0, 1), (1, 2), (2, 4)],
                                                      [(0, 0), (1, 2), (2, 3)]]
