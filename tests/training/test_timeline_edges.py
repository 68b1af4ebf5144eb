"""Edges of training/parallel/timeline.py's drawing that the full mutation run of issue 16 (helper E) showed
untested: which boxes are hatched, where a lane's boxes sit, and the legend's frame. Expected values are the
drawing's rules written out by hand (a lane per rank centred on the rank, 0.8 high; a rank's later chunks
hatched), never taken from the product."""
from __future__ import annotations

import pytest

from training.parallel.actions import Span
from training.parallel.timeline import draw_timeline


@pytest.fixture
def drawn(monkeypatch):
    """The Figure that draw_timeline saves (the real savefig still runs)."""
    from matplotlib.figure import Figure

    seen = {}
    save = Figure.savefig

    def keep(fig, *args, **kwargs):
        seen["fig"] = fig
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return seen


def test_later_chunks_of_a_rank_are_hatched_and_lanes_are_centred_on_the_rank(tmp_path, drawn):
    """A V layout on 2 ranks: rank 0 holds stages 0 and 3, rank 1 stages 1 and 2. The first (lowest) stage of a
    rank is plain, the other chunk hatched "//"; each box spans rank - 0.4 .. rank + 0.4 vertically."""
    spans = [Span(0, 0, "F", 0, 0.0, 1.0), Span(1, 1, "F", 0, 1.0, 2.0), Span(1, 2, "F", 0, 2.0, 3.0),
             Span(0, 3, "F", 0, 3.0, 4.0), Span(0, 3, "B", 0, 4.0, 5.0)]
    draw_timeline(spans, tmp_path / "v.png")
    ax = drawn["fig"].axes[0]
    boxes = ax.collections
    assert len(boxes) == len(spans)
    # boxes are drawn rank by rank, each rank's spans in the order given
    expected = [(0, None), (0, "//"), (0, "//"), (1, None), (1, "//")]  # (rank, hatch)
    got = []
    for box in boxes:
        ext = box.get_paths()[0].get_extents()
        got.append((round((ext.y0 + ext.y1) / 2, 9), box.get_hatch()))
        assert ext.y1 - ext.y0 == pytest.approx(0.8)
    assert got == expected


def test_the_legend_has_no_frame(tmp_path, drawn):
    draw_timeline([Span(0, 0, "F", 0, 0.0, 1.0), Span(0, 0, "B", 0, 1.0, 2.0)], tmp_path / "l.png")
    legend = drawn["fig"].axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["F", "B"]
    assert legend.get_frame_on() is False


def test_peak_in_flight_counts_one_release_per_backward_by_hand():
    """One stage: F0 F1 B0 F2 F3 B1 ...: live 1, 2, 1, 2, 3, so the peak is 3; a W releases like a B (I does not)."""
    from training.parallel.timeline import peak_in_flight

    order = [("F", 0), ("F", 1), ("B", 0), ("F", 2), ("F", 3), ("B", 1), ("B", 2), ("B", 3)]
    spans = [Span(0, 0, kind, m, float(t), t + 1.0) for t, (kind, m) in enumerate(order)]
    assert peak_in_flight(spans) == {0: 3}
    split = [("F", 0), ("F", 1), ("I", 0), ("W", 0), ("F", 2), ("F", 3)]  # live 1, 2, 2, 1, 2, 3
    assert peak_in_flight([Span(0, 0, k, m, float(t), t + 1.0) for t, (k, m) in enumerate(split)]) == {0: 3}
    held = [("F", 0), ("F", 1), ("I", 0), ("I", 1), ("F", 2)]  # no release yet: live 1, 2, 2, 2, 3
    assert peak_in_flight([Span(0, 0, k, m, float(t), t + 1.0) for t, (k, m) in enumerate(held)]) == {0: 3}
