"""Charts for the run report as inline SVG strings: the report must open offline, without scripts or fonts to fetch.

Bar lengths are linear in the value (the longest bar fills the plot), so a chart can be read against its table.
"""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

COLORS = ("#9db9d8", "#2f5f8f", "#d98c3f", "#6a9f58")  # series 1..4: light "in" / dark "out", then two accents
FONT = 'font-family="sans-serif" font-size="11"'
LABEL_W, BAR_W, VALUE_W, ROW_H, GAP = 140, 330, 70, 12, 8  # horizontal bars, px
HIST_W, HIST_H, LEFT, BOTTOM, TOP = 440, 150, 46, 34, 26  # histogram: plot size and margins, px
MAX_TICKS = 7  # edge labels under a histogram; more would overlap at 11 px


def compact(value: float) -> str:
    """A short label for an axis or a bar: 1234 -> 1,234; 12345 -> 12.3k; 0.4567 -> 0.457."""
    if isinstance(value, int) or float(value).is_integer():
        v = int(value)
        if abs(v) < 10_000:
            return f"{v:,}"
        for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(v) >= size:
                return f"{v / size:.3g}{unit}"
    return f"{value:.3g}"


def _legend(series: Sequence[str], *, x: float, y: float) -> str:
    parts = []
    for i, name in enumerate(series):
        px = x + i * 110
        parts.append(f'<rect x="{px}" y="{y - 9}" width="10" height="10" fill="{COLORS[i % len(COLORS)]}"/>'
                     f'<text x="{px + 14}" y="{y}" {FONT}>{escape(name)}</text>')
    return "".join(parts)


def hbar_chart(rows: Sequence[tuple[str, Sequence[float]]], *, series: Sequence[str], title: str,
               fmt=compact) -> str:
    """Horizontal grouped bars: one group per row (a stage, a source), one bar per series, scaled to the largest."""
    top = max((v for _, values in rows for v in values), default=0) or 1
    group_h = ROW_H * len(series) + GAP
    height = 24 + group_h * len(rows) + 6
    width = LABEL_W + BAR_W + VALUE_W
    out = [f'<svg class="chart hbar" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>',
           _legend(series, x=LABEL_W, y=14)]
    for r, (label, values) in enumerate(rows):
        y0 = 24 + r * group_h
        out.append(f'<text x="{LABEL_W - 8}" y="{y0 + group_h / 2}" text-anchor="end" {FONT}>{escape(label)}</text>')
        for i, value in enumerate(values):
            w = round(BAR_W * value / top, 2)
            y = y0 + i * ROW_H
            out.append(f'<rect class="bar" data-row="{escape(label)}" data-series="{escape(series[i])}" '
                       f'data-value="{value}" x="{LABEL_W}" y="{y}" width="{w}" height="{ROW_H - 2}" '
                       f'fill="{COLORS[i % len(COLORS)]}"><title>{escape(label)} {escape(series[i])}: '
                       f'{escape(fmt(value))}</title></rect>'
                       f'<text x="{LABEL_W + w + 4}" y="{y + ROW_H - 3}" {FONT}>{escape(fmt(value))}</text>')
    out.append("</svg>")
    return "".join(out)


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Names of the len(edges)+1 bins: below the first edge, each [e(i-1), e(i)), and at or above the last."""
    if not edges:
        return ["all"]
    inner = [f"[{compact(a)}, {compact(b)})" for a, b in zip(edges, edges[1:])]
    return [f"< {compact(edges[0])}", *inner, f"\u2265 {compact(edges[-1])}"]


def shown_bins(series: Sequence[tuple[str, Sequence[int]]]) -> range:
    """The bins worth drawing: from the first to the last that any series fills (fixed log-scale edges span 1 to
    1e7, a run's documents a few of them); all of them when every bin is empty."""
    filled = [b for _, counts in series for b, c in enumerate(counts) if c]
    n_bins = max((len(counts) for _, counts in series), default=0)
    return range(min(filled), max(filled) + 1) if filled else range(n_bins)


def histogram_chart(edges: Sequence[float], series: Sequence[tuple[str, Sequence[int]]], *, title: str) -> str:
    """Vertical bars per bin, one per series (before/after a stage side by side), heights linear in the count."""
    bins = shown_bins(series)
    top = max((c for _, counts in series for c in counts), default=0)
    scale = HIST_H / top if top else 0.0
    width, height = LEFT + HIST_W + 24, TOP + HIST_H + BOTTOM  # right margin: the last edge label is centred
    bin_w = HIST_W / len(bins)
    bar_w = bin_w * 0.84 / max(len(series), 1)
    labels = bin_labels(edges)
    base = TOP + HIST_H
    out = [f'<svg class="chart histogram" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>',
           _legend([name for name, _ in series], x=LEFT, y=14),
           f'<line x1="{LEFT}" y1="{base}" x2="{LEFT + HIST_W}" y2="{base}" stroke="#555"/>',
           f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end" {FONT}>{compact(top)}</text>',
           f'<text x="{LEFT - 4}" y="{base}" text-anchor="end" {FONT}>0</text>']
    for s, (name, counts) in enumerate(series):
        for i, b in enumerate(bins):
            h = round(counts[b] * scale, 2)
            x = round(LEFT + i * bin_w + bin_w * 0.08 + s * bar_w, 2)
            out.append(f'<rect class="bar" data-series="{escape(name)}" data-bin="{b}" data-count="{counts[b]}" '
                       f'x="{x}" y="{round(base - h, 2)}" width="{round(bar_w, 2)}" height="{h}" '
                       f'fill="{COLORS[s % len(COLORS)]}"><title>{escape(name)} {escape(labels[b])}: '
                       f'{counts[b]:,}</title></rect>')
    ticks = [k for k in range(bins.start - 1, bins.stop) if 0 <= k < len(edges)]  # edge k: between bins k, k+1
    step = max(1, math.ceil(len(ticks) / MAX_TICKS))
    for k in ticks[::step]:
        x = round(LEFT + (k + 1 - bins.start) * bin_w, 2)
        out.append(f'<line x1="{x}" y1="{base}" x2="{x}" y2="{base + 4}" stroke="#555"/>'
                   f'<text x="{x}" y="{base + 16}" text-anchor="middle" {FONT}>{escape(compact(edges[k]))}</text>')
    out.append("</svg>")
    return "".join(out)
