"""Edges of the pipeline simulator (training/parallel/simulator.py) that the mutation runs of issue 16 left open.

Expected values are written out by hand: the exact error messages the module states, makespans and medians of
a few spans, and the ZB-H1 idle time from the two published forms of its closed formula."""
from __future__ import annotations

import random
import re

import pytest

from training.parallel.actions import Action, Span
from training.parallel.simulator import Costs, bubble_time_zb_h1, costs_from_spans, simulate, summarize, validate_order


def test_a_duplicated_action_is_named_with_its_count():
    """One stage, one microbatch, F run twice: the message names `F0@stage0 x2` (the duplicate), not only the
    per-microbatch tally that the duplicate also breaks."""
    order = ((Action(0, 0, "F", 0), Action(0, 0, "F", 0), Action(0, 0, "B", 0)),)
    with pytest.raises(ValueError, match="exactly once") as err:
        validate_order(order, n_microbatches=1)
    assert "'F0@stage0 x2'" in str(err.value)
    assert "stage 0 microbatch 0: {'F': 2, 'B': 1, 'I': 0, 'W': 0}" in str(err.value)


def test_a_full_backward_and_a_split_backward_of_the_same_microbatch_are_refused():
    """A microbatch is backed up once: one B, or one I and one W. F, B, I and W all once for the same microbatch
    backs it up twice, so validate_order refuses it and names the microbatch's tally."""
    order = ((Action(0, 0, "F", 0), Action(0, 0, "B", 0), Action(0, 0, "I", 0), Action(0, 0, "W", 0)),)
    with pytest.raises(ValueError, match=re.escape("stage 0 microbatch 0: {'F': 1, 'B': 1, 'I': 1, 'W': 1}")):
        validate_order(order, n_microbatches=1)
    # each allowed form alone passes
    validate_order(((Action(0, 0, "F", 0), Action(0, 0, "B", 0)),), n_microbatches=1)
    validate_order(((Action(0, 0, "F", 0), Action(0, 0, "I", 0), Action(0, 0, "W", 0)),), n_microbatches=1)


def test_misplaced_actions_are_shown_three_at_most_in_order():
    """The two ranks' lists swapped: order[0] holds rank 1's four actions, order[1] rank 0's four. The message
    shows the first three misplaced ones, in order (rank 0's list first), and no more."""
    rank0 = tuple(Action(0, 0, k, m) for m in range(2) for k in "FB")
    rank1 = tuple(Action(1, 1, k, m) for m in range(2) for k in "FB")
    with pytest.raises(ValueError) as err:
        simulate((rank1, rank0))
    assert str(err.value) == (
        "order[r] must hold rank r's actions only; found ["
        "Action(rank=1, stage=1, kind='F', microbatch=0), Action(rank=1, stage=1, kind='B', microbatch=0), "
        "Action(rank=1, stage=1, kind='F', microbatch=1)]")


def test_summarize_measures_the_makespan_from_the_first_start():
    """Measured spans start at a clock's offset: F [5, 6] and B [6, 8] on rank 0, F [6, 7] and B [7, 8] on
    rank 1. The step takes 8 - 5 = 3; rank 0 is never idle, rank 1 is idle in [5, 6], 1/3 of the step."""
    sim = summarize([Span(0, 0, "F", 0, 5.0, 6.0), Span(0, 0, "B", 0, 6.0, 8.0),
                     Span(1, 1, "F", 0, 6.0, 7.0), Span(1, 1, "B", 0, 7.0, 8.0)])
    assert sim.makespan == 3.0
    assert sim.idle_per_rank == pytest.approx((0.0, 1 / 3))


def test_measured_costs_take_the_median_of_an_odd_count():
    """Five forwards of 1..5 s and three backwards of 2, 9 and 4 s (shuffled): the medians are 3 and 4 s."""
    durations = {"F": [1.0, 2.0, 3.0, 4.0, 5.0], "B": [2.0, 9.0, 4.0]}
    spans, t = [], 0.0
    for kind, ds in durations.items():
        for d in ds:
            spans.append(Span(0, 0, kind, len(spans), t, t + d))
            t += d
    random.Random(0).shuffle(spans)
    costs = costs_from_spans(spans)
    assert costs == {0: Costs(f=3.0, b=4.0)}


def test_zb_h1_idle_time_is_both_published_forms():
    """p = 4, F = 1, I = 1, W = 0.5 (so B = I + W = 1.5). Qi et al. 2024: (p-1)(T_F + T_B - T_W) with T_B the
    input grad = 3 (1 + 1 - 0.5) = 4.5; the DualPipe README: (p-1)(F + B - 2W) with B = I + W = 3 (1 + 1.5 - 1)
    = 4.5."""
    p, f, i, w = 4, 1.0, 1.0, 0.5
    qi = (p - 1) * (f + i - w)
    dualpipe = (p - 1) * (f + (i + w) - 2 * w)
    assert qi == dualpipe == 4.5
    assert bubble_time_zb_h1(n_ranks=p, costs=Costs.split(f=f, i=i, w=w)) == 4.5
    assert bubble_time_zb_h1(n_ranks=1, costs=Costs.split(f=f, i=i, w=w)) == 0.0
