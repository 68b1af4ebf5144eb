"""What every filter and line editor returns, and the registry the recipe names them from.

A filter is `fn(view, cfg) -> Verdict`: it measures and decides, it never edits. A line editor is
`fn(view, cfg) -> Edit`: it returns the new text and may also drop the document (RefinedWeb's 5% rule).
Reasons are `<family>.<rule>` constants named for the failure (`gopher.too_few_stop_words`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

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


@dataclass(frozen=True, slots=True)
class ConfiguredStep:
    """A step from the registry with its validated config, as a recipe lists it."""

    spec: StepSpec
    config: Any


def apply_steps(view: TextView, steps: Sequence[ConfiguredStep]) -> Iterator[tuple[ConfiguredStep, Verdict, TextView]]:
    """Each step's verdict and the text after it, in order, stopping after the first drop.

    The view (and its cached split) is shared until an editor changes the text; only then is it rebuilt."""
    for step in steps:
        result = step.spec.fn(view, step.config)
        verdict = result.verdict if step.spec.kind == "editor" else result
        if verdict.keep and step.spec.kind == "editor" and result.text != view.text:
            view = TextView(result.text)
        yield step, verdict, view
        if not verdict.keep:
            return
