"""Why a rule dropped a document, as data: the statistic that failed, its value and the limit it crossed.

Each filter module declares, per drop reason, a `Rule` (the stat name, the config field holding the limit and
the comparison that drops), so the evidence of any drop is read off the verdict's stats and the step's config
without touching the filters themselves. Reasons with no single numeric statistic (a URL on a blocklist, a
"lorem ipsum" line) have a note instead: the columns stay null and the note is the human-readable evidence.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Literal, Mapping

Op = Literal["<", "<=", ">", ">="]
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True, slots=True)
class Rule:
    """A drop rule: the document is dropped when `statistic op limit` holds (limit = config field, or its item)."""

    statistic: str
    limit_field: str
    op: Op
    index: int | None = None  # for a tuple-valued limit (one per n-gram size): which item

    def limit_of(self, cfg: Any) -> float:
        limit = getattr(cfg, self.limit_field)
        return float(limit[self.index] if self.index is not None else limit)

    def fails(self, value: float, limit: float) -> bool:
        return _OPS[self.op](value, limit)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the rejected row carries beside the reason; all null when nothing is known."""

    statistic: str | None = None
    value: float | None = None
    limit: float | None = None
    evidence: str | None = None

    def columns(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "value": self.value, "limit": self.limit, "evidence": self.evidence}


def number(x: float) -> str:
    """A value as people read it: integers plain, fractions with two decimals (more when that hides the gap)."""
    if float(x).is_integer():
        return str(int(x))
    text = f"{x:.2f}"
    return text if abs(float(text) - x) < 5e-5 else f"{x:.4f}"


def compared(statistic: str, value: float, op: str, limit: float) -> str:
    """`gopher_duplicate_line_fraction = 0.41 > 0.30`."""
    return f"{statistic} = {number(value)} {op} {number(limit)}"


def evidence_of(reason: str, stats: Mapping[str, float], cfg: Any, *, rules: Mapping[str, Rule],
                notes: Mapping[str, str]) -> Evidence:
    """The evidence of one drop: its rule applied to the verdict's stats and the step's config, else the note."""
    rule = rules.get(reason)
    if rule is None or rule.statistic not in stats:
        return Evidence(evidence=notes.get(reason))
    value, limit = float(stats[rule.statistic]), rule.limit_of(cfg)
    return Evidence(rule.statistic, value, limit, compared(rule.statistic, value, rule.op, limit))
