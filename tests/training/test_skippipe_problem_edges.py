"""SkipPipe's problem (training/parallel/skippipe_problem.py): the validation of a problem, its load cap, the
baseline problem, the K = 1 planner corner, and reproducibility pins for the seeded network and stage assignment
(issue 16, the full mutation run by helper E). Expected values are the rules written out by hand; the two pins are
golden values made by the functions at commit c902e8d (how: the calls shown), kept so that seeded experiments
stay reproducible across commits."""
from __future__ import annotations

import math

import numpy as np
import pytest

from training.parallel.skippipe import plan
from training.parallel.skippipe_check import validate
from training.parallel.skippipe_problem import (SkipProblem, assign_stages, full_pipeline, heterogeneous_latency,
                                                make_problem)

TWO = [[0.0, 0.5], [0.5, 0.0]]


def _problem(latency=TWO, stages=((0,), (1,)), **settings):
    return make_problem(latency_s=latency, stages=stages, **{"n_microbatches": 2, **settings})


@pytest.mark.parametrize("latency,why", [
    ([[0.0, 0.5]], "a 1 x 2 matrix is not square"),
    ([[0.0, math.inf], [0.5, 0.0]], "an infinite latency"),
    ([[0.0, -0.5], [0.5, 0.0]], "a negative latency"),
    ([[0.0, -1.5], [0.5, 0.0]], "a latency below -1"),
])
def test_a_latency_matrix_must_be_square_finite_and_not_negative(latency, why):
    with pytest.raises(ValueError, match="square matrix of finite seconds >= 0"):
        SkipProblem(latency_s=tuple(map(tuple, latency)), stages=((0,),), n_microbatches=1)


def test_a_latency_of_zero_is_allowed():
    assert _problem([[0.0, 0.0], [0.0, 0.0]]).latency_s == ((0.0, 0.0), (0.0, 0.0))


@pytest.mark.parametrize("stages", [((0,), (0,)), ((0,), ()), ((0, 1), (1,))])
def test_stages_must_be_non_empty_and_disjoint(stages):
    with pytest.raises(ValueError, match="non-empty lists of distinct nodes"):
        SkipProblem(latency_s=tuple(map(tuple, TWO)), stages=stages, n_microbatches=1)


@pytest.mark.parametrize("settings", [dict(forward_s=0.0), dict(backward_s=0.0), dict(forward_s=-0.5),
                                      dict(backward_s=-0.5)])
def test_compute_times_must_be_positive(settings):
    with pytest.raises(ValueError, match="forward_s and backward_s must be > 0"):
        _problem(**settings)


@pytest.mark.parametrize("settings", [dict(forward_s=0.5, backward_s=0.5), dict(forward_s=1.0, backward_s=1.0)])
def test_any_positive_compute_times_are_allowed(settings):
    problem = _problem(**settings)
    assert (problem.forward_s, problem.backward_s) == (settings["forward_s"], settings["backward_s"])


@pytest.mark.parametrize("settings", [dict(load_slack=-1), dict(max_jump=-1), dict(load_slack=-2, max_jump=0)])
def test_load_slack_and_max_jump_must_not_be_negative(settings):
    with pytest.raises(ValueError, match="load_slack and max_jump must be >= 0"):
        _problem(**settings)


def test_a_max_jump_of_zero_is_allowed_and_allows_only_the_next_stage():
    problem = _problem(stages=((0,), (1,)), max_jump=0, load_slack=0)
    assert problem.max_jump == 0 and validate(plan(problem), problem) == []


def test_load_cap_adds_the_slack():
    """M = 5, K = 2 of S = 3 (skip 1/3 of 3 drops 1): ceil(5 * 2 / 3) = 4, plus a slack of 2 = 6."""
    lat = np.zeros((3, 3))
    problem = make_problem(latency_s=lat, stages=[[0], [1], [2]], n_microbatches=5, skip=1 / 3, load_slack=2)
    assert problem.path_len == 2 and problem.load_cap == 6


def test_the_full_pipeline_neither_skips_nor_reorders():
    lat = np.zeros((3, 3))
    problem = make_problem(latency_s=lat, stages=[[0], [1], [2]], n_microbatches=2, skip=1 / 3, reorder=True)
    baseline = full_pipeline(problem)
    assert (baseline.skip, baseline.reorder, baseline.path_len) == (0.0, False, 3)
    assert (baseline.latency_s, baseline.stages, baseline.n_microbatches) == (
        problem.latency_s, problem.stages, problem.n_microbatches)


def test_paths_of_one_stage_run_every_microbatch_on_the_stage_0_node():
    """K = 1 (2 stages, skip 1/2): each microbatch is F then B on node 0 and nothing else; one node does all the
    work, so the makespan is M (F + B) = 2 (1 + 2) = 6."""
    problem = _problem(skip=0.5)
    assert problem.path_len == 1
    schedule = plan(problem)
    assert schedule.paths == (((0, 0),), ((0, 0),))
    assert schedule.makespan_s == 6.0 and validate(schedule, problem) == []


def test_heterogeneous_latency_is_reproducible():
    """Golden: heterogeneous_latency(5, seed=0) at commit c902e8d, rounded to 1 us (nodes 0 and 4 share a site)."""
    want = [[0.0, 4.85601, 4.75708, 3.715361, 0.350091],
            [5.250927, 0.0, 8.114448, 6.157449, 4.922632],
            [4.784444, 7.82659, 0.0, 2.490422, 5.066567],
            [3.415931, 6.8097, 2.785417, 0.0, 4.006466],
            [0.28994, 4.673149, 4.598886, 3.68891, 0.0]]
    np.testing.assert_allclose(heterogeneous_latency(5, seed=0), want, atol=1e-6)


def test_assign_stages_with_its_defaults_is_reproducible():
    """Golden: assign_stages(heterogeneous_latency(12, seed=3), (3, 3, 3)) at commit c902e8d. Its defaults are
    seed 0 and 4 restarts (seed 1, or 3 or 5 restarts, give other assignments on this network)."""
    stages = assign_stages(heterogeneous_latency(12, seed=3), (3, 3, 3))
    assert stages == ((1, 8, 10), (0, 5, 6), (2, 4, 9))
