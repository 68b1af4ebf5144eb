"""transforms/filters/base.py's records are frozen, slotted values (issue 16, the module's first full mutation
run, helper E): a verdict, edit or step is shared between the steps of a chain and counted by reason, so none may
change after it is made, nor take a misspelt attribute."""
from __future__ import annotations

import dataclasses

import pytest

from transforms.filters.base import ConfiguredStep, Edit, StepSpec, Verdict


def _spec() -> StepSpec:
    return StepSpec(name="t", kind="filter", fn=lambda view, cfg: Verdict(), config_cls=object, stat_names=("a",),
                    reasons=("t.x",))


@pytest.mark.parametrize("make,field", [
    (lambda: Verdict("t.x", {"a": 1.0}), "reason"),
    (lambda: Edit("text", Verdict()), "text"),
    (_spec, "name"),
    (lambda: ConfiguredStep(_spec(), None), "config"),
])
def test_records_are_frozen_and_slotted(make, field):
    record = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, field, None)
    assert not hasattr(record, "__dict__")
    with pytest.raises((AttributeError, TypeError)):
        object.__setattr__(record, "misspelt", 1)  # slots: no attribute outside the fields


def test_a_verdict_keeps_only_without_a_reason():
    assert Verdict().keep and not Verdict("gopher.too_few_words").keep
    assert Verdict().stats == {} and Verdict().stats is not Verdict().stats
