"""training/parallel/simulator.py edges that its full mutation run (issue 16, helper E) showed untested: cost
validation, the Simulation record, and the arguments schedule_order accepts. Expected values by hand."""
from __future__ import annotations

import dataclasses
import math

import pytest

from training.parallel.actions import Action, Span
from training.parallel.simulator import Costs, schedule_order, simulate, summarize


@pytest.mark.parametrize("field", ["f", "b", "i", "w", "latency"])
@pytest.mark.parametrize("value", [-0.5, -1.5, math.inf, math.nan])
def test_every_cost_must_be_finite_and_not_negative(field, value):
    with pytest.raises(ValueError, match="costs must be finite and >= 0"):
        Costs(**{field: value})


@pytest.mark.parametrize("field", ["f", "b", "i", "w", "latency"])
def test_a_cost_of_zero_is_allowed(field):
    assert getattr(Costs(**{field: 0.0}), field) == 0.0


def test_a_simulation_is_a_frozen_slotted_record():
    sim = summarize([Span(0, 0, "F", 0, 0.0, 1.0)])
    with pytest.raises(dataclasses.FrozenInstanceError):
        sim.makespan = 2.0
    assert not hasattr(sim, "__dict__")


@pytest.mark.parametrize("n_ranks,n_microbatches", [(0, 1), (1, 0), (-1, 2)])
def test_schedule_order_needs_a_rank_and_a_microbatch(n_ranks, n_microbatches):
    with pytest.raises(ValueError, match="need n_ranks >= 1 and n_microbatches >= 1"):
        schedule_order("gpipe", n_ranks=n_ranks, n_microbatches=n_microbatches)


@pytest.mark.parametrize("name", ["gpipe", "1f1b"])
def test_single_stage_schedules_take_one_stage_per_rank_or_none_given(name):
    """One rank, one microbatch: F0 then B0 whether stages_per_rank is 1 or left out; 0 or 2 are refused."""
    for spr in (None, 1):
        assert schedule_order(name, n_ranks=1, n_microbatches=1, stages_per_rank=spr) == (
            (Action(0, 0, "F", 0), Action(0, 0, "B", 0)),)
    for spr in (0, 2):
        with pytest.raises(ValueError, match="runs one stage per rank"):
            schedule_order(name, n_ranks=1, n_microbatches=1, stages_per_rank=spr)
    assert simulate(schedule_order(name, n_ranks=1, n_microbatches=1)).makespan == 3.0  # F 1 + B 2
