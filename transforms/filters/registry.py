"""Every filter step by name, the one list that recipes (transforms/recipe.py) choose from. Apart from base.py, which
the steps import, so that no filter module imports the others."""
from __future__ import annotations

from transforms.filters import c4, fineweb, gopher, pii, refinedweb
from transforms.filters.base import StepSpec


def registry() -> dict[str, StepSpec]:
    """All steps by name."""
    specs = [*gopher.STEPS, *c4.STEPS, *fineweb.STEPS, *refinedweb.STEPS, *pii.STEPS]
    return {s.name: s for s in specs}
