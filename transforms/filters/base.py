"""What every filter and line editor returns, and the registry the recipe names them from.

A filter is `fn(view, cfg) -> Verdict`: it measures and decides, it never edits. A line editor is
`fn(view, cfg) -> Edit`: it returns the new text and may also drop the document (RefinedWeb's 5% rule).
Reasons are `<family>.<rule>` constants named for the failure (`gopher.too_few_stop_words`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

from transforms.text import TextView


@dataclass(frozen=True, slots=True)
class Verdict:
    """Keep (reason None) or drop (reason set), with the scores measured on the way."""

    reason: str | None = None
    stats: Mapping[str, float] = field(default_factory=dict)

    @property
    def keep(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class Edit:
    """A line editor's result: the edited text and whether the document survives the edit."""

    text: str
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class StepSpec:
    """A named step a recipe can list: its function, its config dataclass and the stats it reports."""

    name: str
    kind: Literal["filter", "editor"]
    fn: Callable[[TextView, Any], Any]
    config_cls: type
    stat_names: tuple[str, ...]
    reasons: tuple[str, ...]


def registry() -> dict[str, StepSpec]:
    """All steps by name; imported lazily so a module only pays for what it uses."""
    from transforms.filters import c4, fineweb, gopher, refinedweb

    specs = [*gopher.STEPS, *c4.STEPS, *fineweb.STEPS, *refinedweb.STEPS]
    return {s.name: s for s in specs}
