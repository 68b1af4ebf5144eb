"""Edges of training/parallel's schedule vocabulary, simulator, timeline, partition, paths and pipeline plan that
the mutation run of issue 16 showed untested. Expected values are written out by hand (schedule orders from the
papers, hand-computed bubbles, costs and layouts) or brute-forced here, never taken from the product."""
from __future__ import annotations

import dataclasses
import itertools

import pytest

from training.parallel.actions import Action, Span
from training.parallel.paths import layer_order
from training.parallel.simulator import Costs, bubble_time_zb_h1, costs_from_spans, schedule_order, simulate
from training.parallel.timeline import (draw_timeline, hop_latency, idle_fractions, read_chrome_trace, to_chrome_trace,
                                        write_chrome_trace)


# -- actions ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("item", [Action(0, 1, "F", 2), Span(0, 1, "B", 2, 0.0, 1.0)])
def test_actions_and_spans_are_frozen_slotted_values(item):
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.rank = 3
    assert not hasattr(item, "__dict__")  # slots: no per-instance dict, a misspelt field cannot be set
    twin = dataclasses.replace(item)
    assert twin == item and hash(twin) == hash(item) and len({item, twin}) == 1


def test_a_zero_length_span_is_allowed():
    """Costs allow 0 (e.g. a free W), so a span may end where it starts; only end < start is refused."""
    span = Span(0, 0, "W", 0, 3.0, 3.0)
    assert span.duration == 0.0
    with pytest.raises(ValueError, match="before it starts"):
        Span(0, 0, "W", 0, 3.0, 2.999)


def test_a_free_weight_grad_simulates():
    """W may cost 0: one rank, F then I then W of one microbatch ends at F + I with a zero-length W."""
    order = ((Action(0, 0, "F", 0), Action(0, 0, "I", 0), Action(0, 0, "W", 0)),)
    sim = simulate(order, costs=Costs.split(f=1, i=1, w=0))
    assert [(s.kind, s.start, s.end) for s in sim.spans] == [("F", 0, 1), ("I", 1, 2), ("W", 2, 2)]
    assert sim.makespan == 2 and sim.bubble_fraction == 0


# -- simulator --------------------------------------------------------------------------------------------------


def test_costs_are_frozen_and_an_unsplit_backward_halves_into_i_and_w():
    costs = Costs(f=1, b=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        costs.f = 2
    assert not hasattr(costs, "__dict__") and hash(costs) == hash(Costs(f=1, b=3))
    with pytest.raises(TypeError):
        Costs(1, 3)  # keyword-only: Costs(1, 3) must not silently mean f=1, b=3
    assert [costs.of(k) for k in "FBIW"] == [1, 3, 1.5, 1.5]
    assert [Costs(f=1, b=3, i=1, w=2).of(k) for k in "FBIW"] == [1, 3, 1, 2]
    # ZB-H1's idle (p-1)(F+I-W) with I = W = b/2 is (p-1)F: 3 ranks, F=1 -> 2
    assert bubble_time_zb_h1(n_ranks=3, costs=costs) == 2


def _kinds(order):
    return [[f"{a.kind}{a.microbatch}" for a in ops] for ops in order]


def test_one_rank_runs_its_microbatches_back_to_back():
    """p = 1: GPipe is F0 F1 F2 B0 B1 B2, 1F1B alternates F and B (one warm-up forward); neither idles."""
    assert _kinds(schedule_order("gpipe", n_ranks=1, n_microbatches=3)) == [["F0", "F1", "F2", "B0", "B1", "B2"]]
    ofob = schedule_order("1f1b", n_ranks=1, n_microbatches=3)
    assert _kinds(ofob) == [["F0", "B0", "F1", "B1", "F2", "B2"]]
    sim = simulate(ofob, costs=Costs(f=1, b=2))
    assert sim.makespan == 9 and sim.bubble_fraction == 0 and sim.peak_in_flight == {0: 1}
    with pytest.raises(ValueError, match="n_ranks >= 1"):
        schedule_order("gpipe", n_ranks=0, n_microbatches=3)


def test_1f1b_order_for_two_ranks_three_microbatches_written_out():
    """Narayanan et al. 2021 (PipeDream-Flush): rank r warms up with p - r forwards, then one B one F."""
    assert _kinds(schedule_order("1f1b", n_ranks=2, n_microbatches=3)) == [
        ["F0", "F1", "B0", "F2", "B1", "B2"],
        ["F0", "B0", "F1", "B1", "F2", "B2"],
    ]


def test_costs_from_split_spans_rebuild_b_as_i_plus_w():
    """Measured I and W but no B: B = I + W; per-stage medians (the upper one of an even count)."""
    spans = [Span(0, 0, "F", 0, 0.0, 1.0), Span(0, 0, "I", 0, 1.0, 2.0), Span(0, 0, "W", 0, 2.0, 2.5),
             Span(1, 1, "F", 0, 1.0, 3.0), Span(1, 1, "B", 0, 3.0, 7.0)]
    assert costs_from_spans(spans, latency=0.25) == {
        0: Costs(f=1.0, b=1.5, i=1.0, w=0.5, latency=0.25),
        1: Costs(f=2.0, b=4.0, i=None, w=None, latency=0.25),
    }


# -- timeline ---------------------------------------------------------------------------------------------------


def test_idle_fractions_of_a_short_step_and_a_step_of_no_length():
    """A step shorter than one unit is still a step: rank 0 busy 0.25 of 0.5, rank 1 all of it."""
    spans = [Span(0, 0, "F", 0, 10.0, 10.25), Span(1, 1, "F", 0, 10.0, 10.5)]
    assert idle_fractions(spans) == {0: 0.5, 1: 0.0}
    with pytest.raises(ValueError, match="no length"):
        idle_fractions([Span(0, 0, "F", 0, 2.0, 2.0)])
    with pytest.raises(ValueError, match="no spans"):
        idle_fractions([])


def test_busy_time_is_the_union_of_overlapping_and_nested_spans():
    """Rank 0: [0,2) and [1,3) overlap, [1.5,2.5) is nested, [4,5) apart: busy 4 of the step [0,5)."""
    spans = [Span(0, 0, "F", 0, 0.0, 2.0), Span(0, 0, "F", 1, 1.0, 3.0), Span(0, 0, "B", 0, 1.5, 2.5),
             Span(0, 0, "B", 1, 4.0, 5.0)]
    assert idle_fractions(spans) == {0: pytest.approx(0.2)}


def test_chrome_trace_names_each_rank_row_in_the_events_process():
    """Perfetto names a row by a thread_name event with the same pid and tid as the row's events."""
    spans = [Span(0, 0, "F", 0, 0.0, 1.0), Span(1, 1, "F", 0, 1.0, 2.0), Span(1, 1, "B", 0, 2.0, 3.0)]
    events = to_chrome_trace(spans)["traceEvents"]
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["ph"] == "M"}
    assert names == {(0, 0): "rank 0", (0, 1): "rank 1"}
    assert {(e["pid"], e["tid"]) for e in events if e["ph"] == "X"} == set(names)
    assert [(e["name"], e["ts"], e["dur"]) for e in events if e["ph"] == "X"] == [
        ("F0", 0.0, 1e6), ("F0", 1e6, 1e6), ("B0", 2e6, 1e6)]


def test_hop_latency_of_forward_hops_median_of_five():
    """Rank 0 forwards F0..F4 over [k, k+1); rank 1 starts Fk g_k after it, idle each time: median g = 0.5."""
    g = [0.5, 0.1, 0.9, 0.3, 0.7]
    spans = [Span(0, 0, "F", k, k, k + 1.0) for k in range(5)]
    spans += [Span(1, 1, "F", k, k + 1 + g[k], k + 1 + g[k] + 0.05) for k in range(5)]
    assert hop_latency(spans) == pytest.approx(0.5)


def test_hop_latency_of_backward_hops_through_b_or_i():
    b = [Span(1, 1, "B", 0, 0.0, 2.0), Span(0, 0, "B", 0, 2.25, 4.25)]
    assert hop_latency(b) == pytest.approx(0.25)
    i = [Span(1, 1, "I", 0, 0.0, 1.0), Span(0, 0, "I", 0, 1.75, 2.75)]
    assert hop_latency(i) == pytest.approx(0.75)
    assert hop_latency([Span(0, 0, "F", 0, 0.0, 1.0), Span(0, 1, "F", 0, 1.5, 2.0)]) == 0.0  # same rank: no hop


def test_hop_latency_counts_a_receiver_that_started_before_the_sender_span_ended_as_zero():
    """A sender that stamps its span's end after sending: the receiver starts 0.1 before that end; the simulator
    needs latency >= 0 (CI crashed on -1.3 ms once), so those gaps are 0 and the median of (0, 0, 0.4) is 0."""
    spans = [Span(0, 0, "F", k, 2.0 * k, 2.0 * k + 1.0) for k in range(3)]
    spans += [Span(1, 1, "F", k, 2.0 * k + 1.0 + d, 2.0 * k + 1.5 + d) for k, d in enumerate([-0.1, 0.4, -0.1])]
    assert hop_latency(spans) == 0.0
    spans[-1] = Span(1, 1, "F", 2, 5.3, 5.8)  # gaps -> (0, 0.4, 0.3): median 0.3
    assert hop_latency(spans) == pytest.approx(0.3)


def test_hop_latency_counts_a_receiver_that_frees_up_exactly_when_the_message_leaves():
    """Rank 1 ends F0 at 2.0, the moment rank 0 ends F1: it was idle then, so F1's gap 0.6 counts; F2's does not
    (rank 1 is busy until 4.0, after F2 left at 3.0)."""
    spans = [Span(0, 0, "F", k, k, k + 1.0) for k in range(3)]
    spans += [Span(1, 1, "F", 0, 1.2, 2.0), Span(1, 1, "F", 1, 2.6, 4.0), Span(1, 1, "F", 2, 4.0, 5.0)]
    # gaps 0.2 (F0) and 0.6 (F1); the upper median of an even count is the one at index 1
    assert hop_latency(spans) == pytest.approx(0.6)


def test_draw_timeline_places_boxes_labels_and_legend_from_the_first_start(tmp_path, monkeypatch):
    """Spans that start at t = 100: boxes and labels are drawn from 0, the x axis spans [0, 3], 110 dpi."""
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    drawn = {}
    save = Figure.savefig

    def keep(fig, *args, **kwargs):
        drawn["fig"], drawn["kwargs"] = fig, kwargs
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    spans = [Span(0, 0, "F", 0, 100.0, 101.0), Span(1, 1, "F", 0, 101.0, 102.0), Span(1, 1, "B", 0, 102.0, 103.0)]
    png = draw_timeline(spans, tmp_path / "t.png", title="t")
    fig = drawn["fig"]
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.0, 3.0)
    assert [(t.get_position(), t.get_text(), t.get_fontsize()) for t in ax.texts] == [
        ((0.5, 0), "0", 7), ((1.5, 1), "0", 7), ((2.5, 1), "0", 7)]
    assert ax.get_legend().get_texts()[0].get_fontsize() == 7
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["F", "B"]
    # idle 2/3 on rank 0 and 1/3 on rank 1: bubble 50%
    titles = [t for t in ax.get_children() if isinstance(t, Text) and t.get_text()]
    assert [(t.get_text(), t.get_fontsize()) for t in titles if "bubble" in t.get_text()] == [("t  bubble 50.0%", 9)]
    boxes = [p.get_paths()[0].get_extents() for p in ax.collections]
    assert [(b.x0, b.x1) for b in boxes] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    # 3 spans on 2 lanes: width max(8, 3 / 2 * 0.45) = 8 in, height 0.6 * 2 + 1.6 = 2.8 in, at 110 dpi
    assert drawn["kwargs"]["dpi"] == 110
    assert _png_size(png) == (880, 308)


def test_draw_timeline_width_grows_with_spans_per_lane(tmp_path):
    """One lane of 40 spans: 40 / 1 * 0.45 = 18 in; 2 lanes of 20: 20 / 2 * 0.45 = 4.5 -> the 8 in floor;
    height 0.6 + 1.6 = 2.2 in for one lane."""
    one = [Span(0, 0, "F", k, k, k + 1.0) for k in range(40)]
    assert _png_size(draw_timeline(one, tmp_path / "one.png")) == (1980, 242)
    two = [Span(r, r, "F", k, k + r, k + r + 1.0) for r in range(2) for k in range(10)]
    assert _png_size(draw_timeline(two, tmp_path / "two.png")) == (880, 308)


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# -- paths ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [[0, -1], [0, 2, -2], [0, 4]])
def test_a_path_with_a_stage_outside_the_layout_is_refused(path):
    """Stages are 0..3: -1 would silently index the last stage from the end, 4 is past it."""
    with pytest.raises(ValueError, match="distinct stages among 0..3"):
        layer_order(path, ((0, 1), (2, 3), (4, 5), (6, 7)))


# -- partition --------------------------------------------------------------------------------------------------

SMALL = dict(vocab_size=64, dim=16, n_heads=2, n_kv_heads=1, ffn_dim=32, max_seq_len=16)
# per-token forward FLOPs, by hand for d=16, kv width 8, hidden 32, V=64, T=16:
# block 2 * (2*16*16 + 2*16*8 + 3*16*32) + 4*16*16 = 2 * 2304 + 1024; head 2*16*64 + 5*64; norm 4*16; embed 16
BLOCK, HEAD_COST, NORM_COST, EMBED_COST = 5632.0, 2368.0, 64.0, 16.0


def test_unit_costs_by_hand_and_the_block_matmuls_are_the_models():
    from training.model import Llama, ModelConfig
    from training.parallel.partition import unit_cost

    cfg = ModelConfig(n_layers=2, **SMALL)
    assert [unit_cost(cfg, u, 16) for u in ("embed", "layers.0", "layers.1", "norm", "head")] == [
        EMBED_COST, BLOCK, BLOCK, NORM_COST, HEAD_COST]
    block = Llama(cfg).layers["0"]
    assert sum(p.numel() for p in block.parameters() if p.dim() == 2) == 2304  # the matmuls the formula counts


def _brute_force_best(costs: list[float], k: int) -> float:
    """Smallest largest-stage cost over every cut of the units into k contiguous non-empty stages."""
    n = len(costs)
    return min(max(sum(costs[a:b]) for a, b in zip((0, *cuts), (*cuts, n)))
               for cuts in itertools.combinations(range(1, n), k - 1))


@pytest.mark.parametrize("n_layers", [1, 3, 6])
def test_balanced_layout_is_the_brute_force_optimum(n_layers):
    from training.model import ModelConfig
    from training.parallel.partition import balanced_layout

    cfg = ModelConfig(n_layers=n_layers, **SMALL)
    names = ["embed", *(f"layers.{i}" for i in range(n_layers)), "norm", "head"]
    costs = [EMBED_COST, *[BLOCK] * n_layers, NORM_COST, HEAD_COST]
    for k in range(1, len(names) + 1):
        layout = balanced_layout(cfg, k, seq_len=16)
        assert len(layout.stages) == k and all(layout.stages)
        assert [u for s in layout.stages for u in s] == names
        want = [sum(costs[names.index(u)] for u in s) for s in layout.stages]
        assert list(layout.costs) == want
        assert max(want) == _brute_force_best(costs, k)
    with pytest.raises(ValueError, match="only"):
        balanced_layout(cfg, len(names) + 1, seq_len=16)


def test_balanced_layout_ties_keep_the_earliest_cut():
    """hidden 35 and V = 160 make the head cost a block: 2 * (2*16*16 + 2*16*8 + 3*16*35) + 4*16*16 = 5920 =
    2*16*160 + 5*160. On 3 stages [embed l0][l1][norm head] and [embed l0][l1 norm][head] both cost 5920 + 64
    at most; the earliest cut of the last stage wins (the layout comment: ties keep the earliest cut)."""
    from training.model import ModelConfig
    from training.parallel.partition import balanced_layout, unit_cost

    cfg = ModelConfig(n_layers=2, **{**SMALL, "vocab_size": 160, "ffn_dim": 35})
    assert unit_cost(cfg, "layers.0", 16) == unit_cost(cfg, "head", 16) == 5920.0
    assert _brute_force_best([16.0, 5920.0, 5920.0, 64.0, 5920.0], 3) == 5984.0
    layout = balanced_layout(cfg, 3, seq_len=16)
    assert layout.stages == (("embed", "layers.0"), ("layers.1",), ("norm", "head"))
    assert layout.costs == (5936.0, 5920.0, 5984.0)
    assert balanced_layout(cfg, 5, seq_len=16).stages == (("embed",), ("layers.0",), ("layers.1",), ("norm",),
                                                         ("head",))


def test_layout_imbalance_and_stage_of_by_hand():
    from training.parallel.partition import Layout

    layout = Layout((("embed", "layers.0"), ("layers.1",), ("norm", "head")), (1.0, 2.0, 3.0))
    assert layout.imbalance == 1.5  # 3 / mean 2
    assert [layout.stage_of(u) for u in ("embed", "layers.0", "layers.1", "norm", "head")] == [0, 0, 1, 2, 2]


@pytest.mark.parametrize("n_layers,n_stages,want", [
    (5, 2, [["embed", "layers.0", "layers.1", "layers.2"], ["layers.3", "layers.4", "norm", "head"]]),
    (5, 3, [["embed", "layers.0", "layers.1"], ["layers.2", "layers.3"], ["layers.4", "norm", "head"]]),
    (2, 2, [["embed", "layers.0"], ["layers.1", "norm", "head"]]),
    (3, 1, [["embed", "layers.0", "layers.1", "layers.2", "norm", "head"]]),
])
def test_uniform_layout_by_hand(n_layers, n_stages, want):
    """Layers split evenly, the first `n_layers % n_stages` stages one more; embed first, norm and head last."""
    from training.model import ModelConfig
    from training.parallel.partition import uniform_layout

    layout = uniform_layout(ModelConfig(n_layers=n_layers, **SMALL), n_stages, seq_len=16)
    assert [list(s) for s in layout.stages] == want
    cost = {"embed": EMBED_COST, "norm": NORM_COST, "head": HEAD_COST}
    assert list(layout.costs) == [sum(cost.get(u, BLOCK) for u in s) for s in want]


def test_uniform_layout_needs_a_layer_per_stage_and_explicit_layouts_no_empty_stage():
    from training.model import ModelConfig
    from training.parallel.partition import explicit_layout, uniform_layout

    cfg = ModelConfig(n_layers=2, **SMALL)
    with pytest.raises(ValueError, match="3 stages for 2 layers"):
        uniform_layout(cfg, 3, seq_len=16)
    with pytest.raises(ValueError, match="non-empty"):
        explicit_layout(cfg, [["embed", "layers.0"], [], ["layers.1", "norm", "head"]], seq_len=16)


# -- pipeline plan and helpers (no process group) ----------------------------------------------------------------


def _plan(schedule, pp, spr, m, n_stages=None):
    from training.parallel.partition import Layout
    from training.parallel.pipeline import Plan

    n = n_stages or pp * spr
    return Plan(schedule=schedule, pp=pp, dp=1, stages_per_rank=spr, microbatches=m,
                layout=Layout(tuple(("x",) for _ in range(n)), (1.0,) * n))


def test_stage_placement_loop_and_v_by_hand():
    """Loop placement (interleaved, Narayanan et al. 2021): rank r holds r, r + p, ...; V placement (ZBV,
    DualPipeV): rank r holds r and 2p - 1 - r, so rank 0 holds the first and the last stage."""
    loop = _plan("interleaved1f1b", 2, 2, 4)
    assert [loop.stages_of(r) for r in range(2)] == [[0, 2], [1, 3]]
    assert [loop.rank_of(s) for s in range(4)] == [0, 1, 0, 1]
    v = _plan("zbv", 4, 2, 8)
    assert [v.stages_of(r) for r in range(4)] == [[0, 7], [1, 6], [2, 5], [3, 4]]
    assert [_plan("1f1b", 3, 1, 3).stages_of(r) for r in range(3)] == [[0], [1], [2]]


@pytest.mark.parametrize("schedule,pp,spr,m,error", [
    ("1f1b", 2, 1, 2, None),
    ("zbv", 2, 2, 1, None),
    ("dualpipev", 2, 2, 4, None),  # m = number of stages is enough
    ("dualpipev", 2, 2, 3, "at least as many microbatches as stages"),
    ("zbv", 2, 1, 4, "exactly 2 stages per rank"),
    ("gpipe", 2, 2, 4, "one stage per rank"),
    ("pipedream", 2, 1, 4, "unknown schedule"),
    ("gpipe", 2, 1, 0, "at least 1"),
])
def test_check_plan_by_hand(schedule, pp, spr, m, error):
    from training.parallel.pipeline import check_plan

    plan = _plan(schedule, pp, spr, m)
    if error is None:
        check_plan(plan)
    else:
        with pytest.raises(ValueError, match=error):
            check_plan(plan)
    with pytest.raises(ValueError, match="the layout has 3 stages"):
        check_plan(_plan("1f1b", 2, 1, 4, n_stages=3))


def test_padding_rows_are_ignored_by_torchs_default_cross_entropy():
    """3 rows into 2 microbatches: one padded row whose targets torch's cross_entropy ignores by default (-100)."""
    import torch
    import torch.nn.functional as F

    from training.parallel.pipeline import IGNORE, pad_to_microbatches

    assert IGNORE == -100
    inputs, targets = torch.arange(12).reshape(3, 4), torch.arange(12).reshape(3, 4) % 5
    pin, pt = pad_to_microbatches(inputs, targets, 2)
    assert pin.shape == pt.shape == (4, 4)
    assert torch.equal(pin[3], inputs[0]) and pt[3].tolist() == [-100] * 4 and torch.equal(pt[:3], targets)
    logits = torch.randn(4, 4, 5, generator=torch.Generator().manual_seed(0))
    full = F.cross_entropy(logits.reshape(-1, 5), pt.reshape(-1), reduction="sum")
    assert torch.allclose(full, F.cross_entropy(logits[:3].reshape(-1, 5), targets.reshape(-1), reduction="sum"))
    same = pad_to_microbatches(inputs, targets, 3)
    assert same[0] is inputs and same[1] is targets


def test_step_loss_is_the_summed_token_cross_entropy_over_the_step_tokens():
    import math

    import torch

    from training.parallel.pipeline import StepLoss

    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]])  # p(1) = 3/4 at token 0; 1/2 at token 1
    targets = torch.tensor([[1, -100]])  # the second token is ignored
    assert StepLoss(tokens=2.0)(logits, targets).item() == pytest.approx(-math.log(0.75) / 2)


def test_keep_units_drops_what_the_stage_does_not_hold_and_ties_local_copies():
    import torch

    from training.model import Llama, ModelConfig
    from training.parallel.pipeline import keep_units, stage_module, tie_local_copies

    cfg = ModelConfig(n_layers=3, **{**SMALL, "tie_embeddings": True})
    full = Llama(cfg)
    last = stage_module(full, ("layers.2", "norm", "head"))
    assert list(last.layers) == ["2"] and last.embed is None and last.norm is not None and last.head is not None
    first = keep_units(Llama(cfg), ("embed", "layers.0", "layers.1"))
    assert list(first.layers) == ["0", "1"] and first.embed is not None and first.norm is None and first.head is None
    torch.nn.init.zeros_(last.head.weight)
    tie_local_copies([first, last], tied=True)
    assert last.head.weight is first.embed.weight
    other = stage_module(full, ("layers.2", "norm", "head"))
    tie_local_copies([first, other], tied=False)
    assert other.head.weight is not first.embed.weight


class _FakeSchedule:
    def __init__(self):
        self.calls = []

    def step(self, *args, target=None, losses=None):
        import torch

        self.calls.append(("step", len(args), target is not None, torch.is_grad_enabled()))
        losses.append(torch.tensor(1.5))

    def eval(self, *args, target=None, losses=None):
        import torch

        self.calls.append(("eval", len(args), target is not None, torch.is_grad_enabled()))
        losses.append(torch.tensor(0.5))


@pytest.mark.parametrize("schedule,train,want", [
    ("1f1b", True, "step"), ("1f1b", False, "eval"), ("zbv", False, "step"), ("dualpipev", False, "step")])
def test_pipeline_run_steps_or_evaluates_and_feeds_only_the_end_stages(schedule, train, want):
    """Rank 0 of 2 holds stage 0 (and, V placement, the last one too): it gets the inputs; targets go to the
    rank with the last stage. Evaluating a V schedule runs a full step (torch 2.13's eval fails there)."""
    import torch
    from types import SimpleNamespace

    from training.parallel.pipeline import Pipeline

    spr = 2 if schedule in ("zbv", "dualpipev") else 1
    plan = _plan(schedule, 2, spr, 2)
    stages = [SimpleNamespace(stage_index=s, spans=None) for s in plan.stages_of(0)]
    fake = _FakeSchedule()
    pipe = Pipeline(plan=plan, pp_rank=0, stages=stages, parts=[], schedule=fake)
    assert pipe.has_first and pipe.has_last is (spr == 2)
    with torch.no_grad():
        loss = pipe.run(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long), tokens=6,
                        train=train)
    assert [c[0] for c in fake.calls] == [want] and fake.calls[0][1] == 1 and fake.calls[0][2] is (spr == 2)
    assert loss == (1.5 if want == "step" else 0.5) and pipe.loss.tokens == 6
    if not train:  # evaluating a V schedule steps with autograd on, even under no_grad; eval leaves it off
        assert fake.calls[0][3] is (want == "step")
    rank1 = Pipeline(plan=plan, pp_rank=1, stages=[SimpleNamespace(stage_index=s, spans=None)
                                                   for s in plan.stages_of(1)], parts=[], schedule=_FakeSchedule())
    assert not rank1.has_first and rank1.has_last is (spr == 1)


def test_trace_and_png_writers_make_missing_folders_and_overwrite(tmp_path):
    spans = [Span(0, 0, "F", 0, 0.0, 1.0), Span(1, 1, "F", 0, 1.0, 2.0)]
    for _ in range(2):  # the second time the folders exist
        trace = write_chrome_trace(spans, tmp_path / "a" / "b" / "t.json")
        png = draw_timeline(spans, tmp_path / "c" / "d" / "t.png")
    assert read_chrome_trace(trace) == spans and png.stat().st_size > 1000
