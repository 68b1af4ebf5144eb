"""Counter names shared by every stage, and the stats report built from their totals.

Each stage counts documents and characters in and out, and every drop under its reason; the names are
`<stage>|<kind>` or `<stage>|dropped|<reason>`, so summing counters across workers is the whole report.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping

NAMESPACE = "refinery"
SEP = "|"
DOCS_IN, DOCS_OUT, CHARS_IN, CHARS_OUT = "docs_in", "docs_out", "chars_in", "chars_out"
DROPPED, ERRORS = "dropped", "errors"  # per record with its reason; damage events that are not one record
EDITED = "edited"  # parts removed from kept records (paragraphs cut by dedup), by what was removed


def counter_name(stage: str, kind: str, reason: str | None = None) -> str:
    """The counter for one stage and kind (and drop reason)."""
    return SEP.join((stage, kind, reason)) if reason else SEP.join((stage, kind))


@dataclass
class StageStats:
    """Totals of one stage."""

    docs_in: int = 0
    docs_out: int = 0
    chars_in: int = 0
    chars_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    edited: dict[str, int] = field(default_factory=dict)
    other: dict[str, int] = field(default_factory=dict)  # stage-specific counts (cache hits, model calls, rounds)

    def as_dict(self) -> dict:
        return {
            "docs_in": self.docs_in,
            "docs_out": self.docs_out,
            "chars_in": self.chars_in,
            "chars_out": self.chars_out,
            "dropped": _by_count(self.dropped),
            "errors": _by_count(self.errors),
            "edited": _by_count(self.edited),
            "other": dict(sorted(self.other.items())),
        }


def _by_count(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def build_report(
    counters: Mapping[str, int], *, stage_order: Iterable[str], wall_time_s: float, extra: Mapping | None = None
) -> dict:
    """Group counter totals by stage in pipeline order; stages not listed go last, alphabetically."""
    stages: dict[str, StageStats] = {}
    for name, value in counters.items():
        parts = name.split(SEP, 2)
        if len(parts) < 2:
            continue
        stage = stages.setdefault(parts[0], StageStats())
        if parts[1] in (DROPPED, ERRORS, EDITED) and len(parts) == 3:
            bucket = {DROPPED: stage.dropped, ERRORS: stage.errors, EDITED: stage.edited}[parts[1]]
            bucket[parts[2]] = bucket.get(parts[2], 0) + int(value)
        elif parts[1] in (DOCS_IN, DOCS_OUT, CHARS_IN, CHARS_OUT):
            setattr(stage, parts[1], getattr(stage, parts[1]) + int(value))
        else:
            what = SEP.join(parts[1:])
            stage.other[what] = stage.other.get(what, 0) + int(value)
    order = list(stage_order)
    ranked = sorted(stages, key=lambda s: (order.index(s) if s in order else len(order), s))
    return {
        "wall_time_s": round(wall_time_s, 3),
        "stages": {s: stages[s].as_dict() for s in ranked},
        **(dict(extra) if extra else {}),
    }


def format_summary(report: Mapping) -> str:
    """A table a person reads at the end of a run."""
    rows = [f"{'stage':<18}{'docs in':>10}{'docs out':>10}{'kept':>8}{'chars in':>14}{'chars out':>14}"]
    for name, s in report["stages"].items():
        kept = f"{100 * s['docs_out'] / s['docs_in']:.1f}%" if s["docs_in"] else "-"
        rows.append(
            f"{name:<18}{s['docs_in']:>10,}{s['docs_out']:>10,}{kept:>8}{s['chars_in']:>14,}{s['chars_out']:>14,}"
        )
        for reason, n in s["dropped"].items():
            rows.append(f"  - {reason:<40}{n:>10,}")
        for reason, n in s.get("errors", {}).items():
            rows.append(f"  ! {reason:<40}{n:>10,}")
        for what, n in s.get("edited", {}).items():
            rows.append(f"  ~ {what:<40}{n:>10,}")
    rows.append(f"wall time: {report['wall_time_s']:.1f} s")
    return "\n".join(rows)


def dump_report(report: Mapping) -> str:
    """The stats JSON as written next to the shards."""
    return json.dumps(report, indent=2, sort_keys=False) + "\n"
