"""Per-rank timelines of pipeline spans: idle fraction, peak in-flight, Chrome trace export and a PNG drawing.

The same functions serve simulated spans (cost units) and measured ones (seconds), so a measured step and
its simulation are compared with one definition of the bubble.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from training.parallel.actions import RELEASE_KINDS, Span, by_rank

COLORS = {"F": "#4C72B0", "B": "#DD8452", "I": "#C44E52", "W": "#55A868", "S": "#8172B3", "T": "#937860"}  # "deep"
US_PER_S = 1e6  # Chrome trace timestamps are microseconds


def idle_fractions(spans: Iterable[Span]) -> dict[int, float]:
    """rank -> idle time / step time, the step running from the first span's start to the last span's end."""
    spans = list(spans)
    if not spans:
        raise ValueError("no spans: cannot measure a step")
    t0, t1 = min(s.start for s in spans), max(s.end for s in spans)
    step = t1 - t0
    if step <= 0:
        raise ValueError(f"the step has no length (first start {t0}, last end {t1})")
    return {rank: 1.0 - _busy(rank_spans) / step for rank, rank_spans in by_rank(spans).items()}


def idle_fraction(spans: Iterable[Span]) -> float:
    """idle / (ranks x step time): the bubble fraction of a measured or simulated step."""
    per_rank = idle_fractions(spans)
    return sum(per_rank.values()) / len(per_rank)


def _busy(spans: list[Span]) -> float:
    """Length of the union of the spans (measured spans on one rank may touch or overlap)."""
    total, reach = 0.0, float("-inf")
    for s in sorted(spans, key=lambda s: s.start):
        if s.end > reach:
            total += s.end - max(s.start, reach)
            reach = s.end
    return total


def peak_in_flight(spans: Iterable[Span]) -> dict[int, int]:
    """stage -> most microbatches forwarded and not yet released by B or W, walking spans in start order."""
    live: dict[int, int] = {}
    peak: dict[int, int] = {}
    for s in sorted(spans, key=lambda s: s.start):  # stable: equal starts keep execution order
        if s.kind == "F":
            live[s.stage] = live.get(s.stage, 0) + 1
            peak[s.stage] = max(peak.get(s.stage, 0), live[s.stage])
        elif s.kind in RELEASE_KINDS:
            live[s.stage] = live.get(s.stage, 0) - 1
    return dict(sorted(peak.items()))


def to_chrome_trace(spans: Iterable[Span], *, us_per_unit: float = US_PER_S) -> dict:
    """Chrome/Perfetto trace JSON: one row per rank, events named `F3`, stage and kind in args."""
    spans = list(spans)
    events: list[dict] = [{"name": "thread_name", "ph": "M", "pid": 0, "tid": r, "args": {"name": f"rank {r}"}}
                          for r in sorted({s.rank for s in spans})]
    events += [{"name": f"{s.kind}{s.microbatch}", "cat": s.kind, "ph": "X", "pid": 0, "tid": s.rank,
                "ts": s.start * us_per_unit, "dur": s.duration * us_per_unit,
                "args": {"stage": s.stage, "kind": s.kind, "microbatch": s.microbatch}} for s in spans]
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def from_chrome_trace(trace: dict, *, us_per_unit: float = US_PER_S) -> list[Span]:
    """The spans of a trace written by `to_chrome_trace`."""
    return [Span(e["tid"], e["args"]["stage"], e["args"]["kind"], e["args"]["microbatch"],
                 e["ts"] / us_per_unit, (e["ts"] + e["dur"]) / us_per_unit)
            for e in trace["traceEvents"] if e.get("ph") == "X"]


def write_chrome_trace(spans: Iterable[Span], path: str | Path, *, us_per_unit: float = US_PER_S) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_chrome_trace(spans, us_per_unit=us_per_unit)), encoding="utf-8")
    return path


def read_chrome_trace(path: str | Path, *, us_per_unit: float = US_PER_S) -> list[Span]:
    return from_chrome_trace(json.loads(Path(path).read_text(encoding="utf-8")), us_per_unit=us_per_unit)


def draw_timeline(spans: Iterable[Span], path: str | Path, *, title: str = "", unit: str = "s") -> Path:
    """PNG: one lane per rank, boxes coloured by kind with the microbatch number; later chunks are hatched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # drawing only; no global backend switch
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    spans = list(spans)
    lanes = by_rank(spans)
    first_stage = {r: min(s.stage for s in ss) for r, ss in lanes.items()}
    t0, t1 = min(s.start for s in spans), max(s.end for s in spans)
    fig = Figure(figsize=(max(8.0, min(24.0, len(spans) / max(1, len(lanes)) * 0.45)), 0.6 * len(lanes) + 1.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for rank, rank_spans in lanes.items():
        for s in rank_spans:
            hatch = "//" if s.stage != first_stage[rank] else None
            ax.broken_barh([(s.start - t0, s.duration)], (rank - 0.4, 0.8), facecolors=COLORS[s.kind],
                           edgecolor="black", linewidth=0.4, hatch=hatch)
            ax.text(s.start - t0 + s.duration / 2, rank, str(s.microbatch), ha="center", va="center",
                    fontsize=7, color="white")
    ax.set_yticks(list(lanes), [f"rank {r}" for r in lanes])
    ax.invert_yaxis()
    ax.set_xlim(0, t1 - t0)
    ax.set_xlabel(f"time ({unit})")
    kinds = sorted({s.kind for s in spans}, key="FBIWST".index)
    ax.legend(handles=[Patch(facecolor=COLORS[k], label=k) for k in kinds], loc="lower right", fontsize=7,
              ncols=len(kinds), bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(f"{title}  bubble {idle_fraction(spans):.1%}".strip(), loc="left", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def hop_latency(spans: Iterable[Span]) -> float:
    """Median delay between a stage finishing a microbatch and the next stage starting it on an idle rank.

    That delay is the per-message cost of the runtime (send/recv, wake-up), which the simulator's
    `Costs.latency` models; only hops whose receiving rank had nothing else to do count. The runtimes it
    reads (pipeline.py, vocab_pipeline.py) end a span before sending its output, so a gap is >= 0; one below
    0 (a runtime that stamps after sending, clocks that disagree) counts as 0: the simulator's latency is >= 0."""
    spans = list(spans)
    done = {(s.stage, s.kind, s.microbatch): s for s in spans}
    lanes = {r: sorted(ss, key=lambda s: s.start) for r, ss in by_rank(spans).items()}
    gaps = []
    for rank_spans in lanes.values():
        for prev, cur in zip([None, *rank_spans], rank_spans):
            if cur.kind not in ("F", "B", "I"):  # W waits on its own stage, S and T on every rank
                continue
            if cur.kind == "F":
                src = done.get((cur.stage - 1, "F", cur.microbatch))
            else:
                src = done.get((cur.stage + 1, "B", cur.microbatch)) or done.get((cur.stage + 1, "I", cur.microbatch))
            if src is None or src.rank == cur.rank:
                continue
            if prev is None or prev.end <= src.end:  # the receiver was idle when the message left
                gaps.append(max(0.0, cur.start - src.end))
    gaps.sort()
    return gaps[len(gaps) // 2] if gaps else 0.0
