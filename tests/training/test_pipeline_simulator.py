"""The schedule simulator reproduces training-anchors §1.1's closed forms on torch's own schedule orders."""
from __future__ import annotations

import math
from collections import Counter

import pytest

from training.parallel.actions import Action, Span, span_rows, spans_from_rows, stage_ranks
from training.parallel.simulator import (
    SCHEDULES,
    Costs,
    ScheduleDeadlock,
    bubble_fraction,
    bubble_time_1f1b,
    bubble_time_zb_h1,
    costs_from_spans,
    one_f_one_b_order,
    schedule_order,
    simulate,
    validate_order,
    zb_h1_bubble_fraction,
)
from training.parallel.timeline import (
    draw_timeline,
    idle_fraction,
    idle_fractions,
    peak_in_flight,
    read_chrome_trace,
    write_chrome_trace,
)

GRID = [(p, m) for p in (2, 4) for m in (p, 2 * p, 4 * p)]
UNIT = Costs.split(f=1, i=1, w=1)  # F=1, B=2, I=W=1


def idle_times(sim) -> list[float]:
    return [f * sim.makespan for f in sim.idle_per_rank]


@pytest.mark.parametrize("name", ["gpipe", "1f1b"])
@pytest.mark.parametrize("costs", [Costs(f=1, b=2), Costs(f=1, b=1)])
@pytest.mark.parametrize(("p", "m"), GRID)
def test_gpipe_and_1f1b_bubble_is_p_minus_1_over_m_plus_p_minus_1(name, costs, p, m):
    sim = simulate(schedule_order(name, n_ranks=p, n_microbatches=m), costs=costs)
    assert sim.bubble_fraction == pytest.approx(bubble_fraction(n_ranks=p, n_microbatches=m), abs=1e-12)
    assert idle_times(sim) == pytest.approx([bubble_time_1f1b(n_ranks=p, costs=costs)] * p)


@pytest.mark.parametrize(("p", "m"), GRID)
def test_interleaved_1f1b_divides_the_bubble_by_v(p, m):
    sim = simulate(schedule_order("interleaved1f1b", n_ranks=p, n_microbatches=m, stages_per_rank=2), costs=UNIT)
    assert sim.bubble_fraction == pytest.approx(bubble_fraction(n_ranks=p, n_microbatches=m, chunks=2), abs=1e-12)


@pytest.mark.parametrize(("p", "m"), GRID)
def test_torch_zero_bubble_on_one_stage_per_rank_is_zb_h1_a_third_of_1f1b(p, m):
    """torch's ScheduleInterleavedZeroBubble with one stage per rank is ZB-H1: idle (p-1)(F+I-W) per rank."""
    zb = simulate(schedule_order("zero-bubble", n_ranks=p, n_microbatches=m, stages_per_rank=1), costs=UNIT)
    ref = simulate(schedule_order("1f1b", n_ranks=p, n_microbatches=m), costs=UNIT)
    assert idle_times(zb) == pytest.approx([bubble_time_zb_h1(n_ranks=p, costs=UNIT)] * p)
    assert idle_times(zb) == pytest.approx([t / 3 for t in idle_times(ref)])
    assert zb.bubble_fraction == pytest.approx(zb_h1_bubble_fraction(n_ranks=p, n_microbatches=m, costs=UNIT))
    assert max(zb.peak_in_flight.values()) <= p  # ZB-H1 keeps 1F1B's peak activation memory


@pytest.mark.parametrize(("p", "m"), GRID)
def test_torch_interleaved_zero_bubble_is_zb_h1_divided_by_v(p, m):
    """With two stages per rank (ZB1P interleaved) the per-rank idle stays (p-1)(F+I-W) in chunk costs."""
    sim = simulate(schedule_order("zero-bubble", n_ranks=p, n_microbatches=m, stages_per_rank=2), costs=UNIT)
    assert idle_times(sim) == pytest.approx([bubble_time_zb_h1(n_ranks=p, costs=UNIT)] * p)
    assert sim.bubble_fraction == pytest.approx(
        zb_h1_bubble_fraction(n_ranks=p, n_microbatches=m, costs=UNIT, chunks=2))


@pytest.mark.parametrize(("p", "m"), GRID)
def test_peak_in_flight_gpipe_holds_m_and_1f1b_holds_p_minus_stage(p, m):
    gpipe = simulate(schedule_order("gpipe", n_ranks=p, n_microbatches=m))
    ofob = simulate(schedule_order("1f1b", n_ranks=p, n_microbatches=m))
    assert gpipe.peak_in_flight == {s: m for s in range(p)}
    assert ofob.peak_in_flight == {s: p - s for s in range(p)}


def allowed(name: str, p: int, m: int) -> bool:
    return not (name == "dualpipev" and m < 2 * p)  # torch: DualPipeV needs m >= number of stages


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("p", [2, 4])
def test_every_action_runs_exactly_once_without_deadlock_also_for_m_below_p(name, p):
    for m in (1, p - 1, p, 2 * p, 4 * p):
        if m < 1:
            continue
        if not allowed(name, p, m):
            with pytest.raises(ValueError, match="microbatches"):
                schedule_order(name, n_ranks=p, n_microbatches=m)
            continue
        order = schedule_order(name, n_ranks=p, n_microbatches=m)
        validate_order(order, n_microbatches=m)
        sim = simulate(order, costs=UNIT)
        assert Counter(s.action for s in sim.spans) == Counter(a for ops in order for a in ops)
        assert 0 <= sim.bubble_fraction < 1


@pytest.mark.parametrize("name", ["zbv", "dualpipev"])
def test_v_placement_puts_first_and_last_stage_on_rank_0(name):
    owner = stage_ranks(a for ops in schedule_order(name, n_ranks=4, n_microbatches=8) for a in ops)
    assert owner == {0: 0, 1: 1, 2: 2, 3: 3, 4: 3, 5: 2, 6: 1, 7: 0}


def test_1f1b_order_matches_torch_ir_except_its_wrong_last_rank():
    """torch 2.13's Schedule1F1B._get_pipeline_order drops F0 and invents F8 on the last rank; ours follows the
    loop torch executes (_step_microbatches). GPipe's IR is right everywhere."""
    from torch.distributed.pipelining import schedules
    from types import SimpleNamespace

    def torch_ir(cls, p, m):
        stage = SimpleNamespace(num_stages=p, group_size=p, group_rank=0, submod=None)
        ir = cls(stage, m).pipeline_order
        return {r: [(a.computation_type.value, a.microbatch_index) for a in ops if a.computation_type.value in "FB"]
                for r, ops in ir.items()}

    p, m = 4, 8
    ours = {r: [(a.kind, a.microbatch) for a in ops] for r, ops in enumerate(one_f_one_b_order(n_ranks=p,
                                                                                                n_microbatches=m))}
    theirs = torch_ir(schedules.Schedule1F1B, p, m)
    assert all(ours[r] == theirs[r] for r in range(p - 1))
    gpipe = schedule_order("gpipe", n_ranks=p, n_microbatches=m)
    assert torch_ir(schedules.ScheduleGPipe, p, m) == {r: [(a.kind, a.microbatch) for a in ops]
                                                       for r, ops in enumerate(gpipe)}


def test_latency_delays_every_hop():
    p, m, lat = 3, 4, 0.5
    sim = simulate(schedule_order("gpipe", n_ranks=p, n_microbatches=m), costs=Costs(f=1, b=2, latency=lat))
    assert sim.makespan == pytest.approx(m * 3 + (p - 1) * (1 + lat) + (p - 1) * (2 + lat))


def test_measured_costs_replay_and_per_stage_costs():
    order = schedule_order("1f1b", n_ranks=3, n_microbatches=6)
    first = simulate(order, costs=Costs(f=1, b=2))
    replay = simulate(order, costs=costs_from_spans(first.spans))
    assert replay.makespan == pytest.approx(first.makespan)
    heavy_head = {0: Costs(f=1, b=2), 1: Costs(f=1, b=2), 2: Costs(f=3, b=6)}
    assert simulate(order, costs=heavy_head).makespan > first.makespan
    with pytest.raises(ValueError, match=r"stages \[2\]"):
        simulate(order, costs={0: Costs(), 1: Costs()})


def test_deadlock_names_the_stuck_rank_and_what_it_waits_for():
    crossed = ((Action(0, 0, "F", 0), Action(0, 0, "B", 0)), (Action(1, 1, "B", 0), Action(1, 1, "F", 0)))
    with pytest.raises(ScheduleDeadlock, match=r"rank 1 stuck at B0@stage1 .*needs F0@stage1, scheduled at rank 1"):
        simulate(crossed)
    missing = ((Action(0, 0, "F", 0), Action(0, 0, "B", 0)), (Action(1, 1, "B", 0),))
    with pytest.raises(ScheduleDeadlock, match="which no rank runs"):
        simulate(missing)


def test_validate_order_rejects_duplicates_and_gaps():
    order = schedule_order("gpipe", n_ranks=2, n_microbatches=2)
    with pytest.raises(ValueError, match="exactly once"):
        validate_order((order[0] + (Action(0, 0, "F", 0),), order[1]), n_microbatches=2)
    with pytest.raises(ValueError, match="exactly once"):
        validate_order((order[0][:-1], order[1]), n_microbatches=2)
    with pytest.raises(ValueError, match="unknown schedule"):
        schedule_order("pipedream", n_ranks=2, n_microbatches=2)
    with pytest.raises(ValueError, match="rank r's actions"):
        simulate((order[1], order[0]))


def test_idle_fraction_of_measured_spans_uses_the_step_window():
    spans = [Span(0, 0, "F", 0, 100.0, 101.0), Span(0, 0, "B", 0, 103.0, 105.0),
             Span(1, 1, "F", 0, 101.0, 102.0), Span(1, 1, "B", 0, 102.0, 104.0)]
    assert idle_fractions(spans) == pytest.approx({0: 2 / 5, 1: 2 / 5})
    assert idle_fraction(spans) == pytest.approx(0.4)
    assert peak_in_flight(spans) == {0: 1, 1: 1}


def test_chrome_trace_round_trips_and_png_is_written(tmp_path):
    sim = simulate(schedule_order("zbv", n_ranks=2, n_microbatches=4), costs=Costs.split(f=1.5, i=1.25, w=0.75))
    path = write_chrome_trace(sim.spans, tmp_path / "zbv.json", us_per_unit=1000)
    back = read_chrome_trace(path, us_per_unit=1000)
    assert [(s.rank, s.stage, s.kind, s.microbatch) for s in back] == [
        (s.rank, s.stage, s.kind, s.microbatch) for s in sim.spans]
    assert all(math.isclose(a.start, b.start) and math.isclose(a.end, b.end) for a, b in zip(back, sim.spans))
    assert idle_fraction(back) == pytest.approx(sim.bubble_fraction)
    png = draw_timeline(sim.spans, tmp_path / "zbv.png", title="zbv p=2 m=4", unit="cost units")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_span_rows_round_trip_and_bad_spans():
    spans = list(simulate(schedule_order("1f1b", n_ranks=2, n_microbatches=2)).spans)
    assert spans_from_rows(span_rows(spans)) == spans
    with pytest.raises(ValueError, match="before it starts"):
        Span(0, 0, "F", 0, 2.0, 1.0)
    with pytest.raises(ValueError, match="kind"):
        Action(0, 0, "X", 0)


@pytest.mark.parametrize("microbatches, runs", [(3, "gpipe"), (4, "1f1b"), (8, "1f1b")])
def test_1f1b_runs_as_gpipe_only_below_one_microbatch_per_stage(microbatches, runs):
    """torch's Schedule1F1B refuses fewer microbatches than stages, so the plan runs GPipe there (on 4 stages,
    m = 3); from m = 4 on it must run 1F1B, whose memory (at most p - rank microbatches in flight) is the point."""
    from training.model import ModelConfig
    from training.parallel.partition import balanced_layout
    from training.parallel.pipeline import Plan

    cfg = ModelConfig(vocab_size=64, dim=16, n_layers=4, n_heads=2, n_kv_heads=2, ffn_dim=32, max_seq_len=16)
    plan = Plan(schedule="1f1b", pp=4, dp=1, stages_per_rank=1, microbatches=microbatches,
                layout=balanced_layout(cfg, 4, seq_len=16))
    assert plan.runtime_schedule() == runs
