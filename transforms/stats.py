"""Counter names shared by every stage, and the stats report built from their totals.

Each stage counts documents and characters in and out, and every drop under its reason; the names are
`<stage>|<kind>` or `<stage>|dropped|<reason>`, so summing counters across workers is the whole report.
Worker time is `<stage>|time_us` and fixed-bin histograms are `<stage>|hist|<what>|<bin>`: both sum too.
"""
from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Iterable, Mapping

NAMESPACE = "refinery"
SEP = "|"
DOCS_IN, DOCS_OUT, CHARS_IN, CHARS_OUT = "docs_in", "docs_out", "chars_in", "chars_out"
DROPPED, ERRORS = "dropped", "errors"  # per record with its reason; damage events that are not one record
EDITED = "edited"  # parts removed from kept records (paragraphs cut by dedup), by what was removed
INPUT_BYTES = "input_bytes"  # a read stage's input bytes consumed so far (file offsets); live progress's numerator
TIME_US = "time_us"  # integer microseconds a stage's own work took on the workers, summed over workers
HIST = "hist"  # `<stage>|hist|<what>|<bin index>`: how many measured values fell in that bin
WORDS_IN, WORDS_OUT = "words_in", "words_out"  # histogram names of document length in words (whitespace-split)

# Bin edges, fixed so that histograms of every worker and every run add up bin by bin. Bin 0 holds values below
# the first edge, bin i values in [edge i-1, edge i), the last bin values at or above the last edge
# (bisect_right), so a histogram has len(edges) + 1 counts.
LENGTH_EDGES = tuple(m * 10 ** e for e in range(7) for m in (1, 2, 5)) + (10 ** 7,)  # 1-2-5 log scale, 1 .. 1e7
SCORE_EDGES = tuple(i / 20 for i in range(21))  # a probability-like score in [0, 1], 20 equal bins
PYLINT_EDGES = tuple(i / 2 for i in range(21))  # pylint's 0-10 score, 20 equal bins
LENGTH_NAMES = frozenset({CHARS_IN, CHARS_OUT, WORDS_IN, WORDS_OUT})


def counter_name(stage: str, kind: str, reason: str | None = None) -> str:
    """The counter for one stage and kind (and drop reason)."""
    return SEP.join((stage, kind, reason)) if reason else SEP.join((stage, kind))


def edges_of(what: str) -> tuple[float, ...]:
    """The bin edges of one histogram: lengths on the log scale, pylint scores on 0-10, other scores on 0-1."""
    if what in LENGTH_NAMES:
        return LENGTH_EDGES
    return PYLINT_EDGES if "pylint" in what else SCORE_EDGES


def bin_index(edges: tuple[float, ...], value: float) -> int:
    """The bin a value falls in (see LENGTH_EDGES for the rule)."""
    return bisect_right(edges, value)


def word_count(text: str) -> int:
    """Words as the length histograms count them: whitespace-split chunks (cheap, the same for every stage)."""
    return len(text.split())


@dataclass
class StageStats:
    """Totals of one stage."""

    docs_in: int = 0
    docs_out: int = 0
    chars_in: int = 0
    chars_out: int = 0
    time_us: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    edited: dict[str, int] = field(default_factory=dict)
    other: dict[str, int] = field(default_factory=dict)  # stage-specific counts (cache hits, model calls, rounds)
    hist: dict[str, dict[int, int]] = field(default_factory=dict)  # what -> {bin index: count}

    def as_dict(self) -> dict:
        return {
            "docs_in": self.docs_in,
            "docs_out": self.docs_out,
            "chars_in": self.chars_in,
            "chars_out": self.chars_out,
            "seconds": round(self.time_us / 1e6, 3),
            "dropped": _by_count(self.dropped),
            "errors": _by_count(self.errors),
            "edited": _by_count(self.edited),
            "other": dict(sorted(self.other.items())),
            "histograms": {what: histogram(what, bins) for what, bins in sorted(self.hist.items())},
        }


def histogram(what: str, bins: Mapping[int, int]) -> dict:
    """{"edges": [...], "counts": [...]} with len(counts) == len(edges) + 1; sum(counts) = values measured."""
    edges = edges_of(what)
    counts = [0] * (len(edges) + 1)
    for index, n in bins.items():
        counts[min(max(index, 0), len(edges))] += n
    return {"edges": list(edges), "counts": counts}


def _by_count(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _add(stage: StageStats, parts: list[str], value: int) -> None:
    """One counter total into its stage's field."""
    if parts[1] in (DROPPED, ERRORS, EDITED) and len(parts) == 3:
        bucket = {DROPPED: stage.dropped, ERRORS: stage.errors, EDITED: stage.edited}[parts[1]]
        bucket[parts[2]] = bucket.get(parts[2], 0) + value
    elif parts[1] in (DOCS_IN, DOCS_OUT, CHARS_IN, CHARS_OUT, TIME_US) and len(parts) == 2:
        setattr(stage, parts[1], getattr(stage, parts[1]) + value)
    elif parts[1] == HIST and len(parts) == 3 and SEP in parts[2]:
        what, index = parts[2].rsplit(SEP, 1)
        bins = stage.hist.setdefault(what, {})
        bins[int(index)] = bins.get(int(index), 0) + value
    else:
        what = SEP.join(parts[1:])
        stage.other[what] = stage.other.get(what, 0) + value


def build_report(
    counters: Mapping[str, int], *, stage_order: Iterable[str], wall_time_s: float, extra: Mapping | None = None
) -> dict:
    """Group counter totals by stage in pipeline order; stages not listed go last, alphabetically."""
    stages: dict[str, StageStats] = {}
    for name, value in counters.items():
        parts = name.split(SEP, 2)
        if len(parts) >= 2:
            _add(stages.setdefault(parts[0], StageStats()), parts, int(value))
    order = list(stage_order)
    ranked = sorted(stages, key=lambda s: (order.index(s) if s in order else len(order), s))
    return {
        "wall_time_s": round(wall_time_s, 3),
        "stages": {s: stages[s].as_dict() for s in ranked},
        **(dict(extra) if extra else {}),
    }


def format_summary(report: Mapping) -> str:
    """A table a person reads at the end of a run."""
    rows = [f"{'stage':<18}{'docs in':>10}{'docs out':>10}{'kept':>8}{'chars in':>14}{'chars out':>14}{'seconds':>10}"]
    for name, s in report["stages"].items():
        kept = f"{100 * s['docs_out'] / s['docs_in']:.1f}%" if s["docs_in"] else "-"
        rows.append(f"{name:<18}{s['docs_in']:>10,}{s['docs_out']:>10,}{kept:>8}{s['chars_in']:>14,}"
                    f"{s['chars_out']:>14,}{s.get('seconds', 0.0):>10,.1f}")
        for reason, n in s["dropped"].items():
            rows.append(f"  - {reason:<40}{n:>10,}")
        for reason, n in s.get("errors", {}).items():
            rows.append(f"  ! {reason:<40}{n:>10,}")
        for what, n in s.get("edited", {}).items():
            rows.append(f"  ~ {what:<40}{n:>10,}")
    rows.append(f"wall time: {report['wall_time_s']:.1f} s (seconds per stage: worker time, summed over workers)")
    return "\n".join(rows)


def dump_report(report: Mapping) -> str:
    """The stats JSON as written next to the shards."""
    return json.dumps(report, indent=2, sort_keys=False) + "\n"
