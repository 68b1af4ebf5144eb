"""Every filter step by name, the one list that recipes (transforms/recipe.py) choose from. Apart from base.py, which
the steps import, so that no filter module imports the others."""
from __future__ import annotations

from transforms.filters import c4, fineweb, gopher, pii, refinedweb, url
from transforms.filters.base import StepSpec
from transforms.filters.evidence import Rule

_MODULES = (gopher, c4, fineweb, refinedweb, pii, url)


def registry() -> dict[str, StepSpec]:
    """All steps by name."""
    specs = [*gopher.STEPS, *c4.STEPS, *fineweb.STEPS, *refinedweb.STEPS, *pii.STEPS]
    return {s.name: s for s in specs}


def evidence_rules() -> tuple[dict[str, Rule], dict[str, str]]:
    """Per drop reason of every filter: its Rule (stat, limit field, comparison), and notes for reasons without one."""
    rules = {reason: rule for m in _MODULES for reason, rule in m.EVIDENCE.items()}
    notes = {reason: note for m in _MODULES for reason, note in m.NOTES.items()}
    return rules, notes


def edit_totals() -> dict[str, str]:
    """Stats that count an editor's replacements, by the name their totals carry in the report's `edited`."""
    return {stat: name for m in _MODULES for stat, name in getattr(m, "EDIT_TOTALS", {}).items()}
