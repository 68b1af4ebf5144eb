"""The `@dataclass(frozen=True, kw_only=True, slots=True)` contract of every step and dedup config.

A recipe builds each config once and shares it between workers and steps, so it must not change after
validation (frozen), must be usable as a dict key or cache key (hashable, which `eq` without `frozen` takes
away), must not take thresholds positionally (`GopherQualityConfig(50)` would silently set the first field),
and must reject misspelt attributes (slots, no `__dict__`). Each flag dropped is a mutant that no
behaviour test notices (tests/MUTATION.md, "Survivors shared by every module").
"""
from __future__ import annotations

import dataclasses

import pytest

from transforms.dedup.config import DedupConfig
from transforms.dedup.minhash import MinHashConfig
from transforms.dedup.paragraph import ParagraphDecision, ParagraphDedupConfig
from transforms.filters.registry import registry

# Every config class a recipe can name: the registry's steps (gopher x2, c4, fineweb, refinedweb, pii) and
# the dedup section. Listed by name as well, so a step silently leaving the registry fails here too.
STEP_CONFIGS = {name: spec.config_cls for name, spec in sorted(registry().items())}
CONFIGS = {**STEP_CONFIGS, "ParagraphDedupConfig": ParagraphDedupConfig, "MinHashConfig": MinHashConfig,
           "DedupConfig": DedupConfig}


def test_the_registry_lists_the_six_steps_we_check() -> None:
    """Guards the parametrisation below: it covers exactly these configs."""
    assert {name: cls.__name__ for name, cls in STEP_CONFIGS.items()} == {
        "c4": "C4Config",
        "fineweb": "FineWebQualityConfig",
        "gopher_quality": "GopherQualityConfig",
        "gopher_repetition": "GopherRepetitionConfig",
        "pii": "PiiConfig",
        "refinedweb_lines": "RefinedWebLinesConfig",
    }


@pytest.mark.parametrize("cls", list(CONFIGS.values()), ids=list(CONFIGS))
def test_config_is_frozen_hashable_keyword_only_and_slotted(cls: type) -> None:
    """frozen: assignment raises; hashable; kw_only: a positional value is a TypeError; slots: no __dict__."""
    cfg = cls()
    first = dataclasses.fields(cls)[0].name
    default = getattr(cfg, first)

    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cfg, first, default)
    assert getattr(cfg, first) == default

    assert hash(cfg) == hash(cls())  # equal configs hash equally (frozen + eq generate __hash__)
    assert {cfg: 1}[cls()] == 1

    # The first field's own default, passed positionally: valid as a value, so only kw_only can reject it.
    with pytest.raises(TypeError, match="positional"):
        cls(default)

    assert not hasattr(cfg, "__dict__")
    assert "__slots__" in vars(cls)
    with pytest.raises((AttributeError, TypeError)):
        object.__setattr__(cfg, "a_misspelt_threshold", 1)  # no slot and no __dict__ to put it in


def test_paragraph_decision_is_frozen_hashable_and_slotted() -> None:
    """ParagraphDecision is `frozen=True, slots=True` (positional by design): a decision cannot be edited."""
    decision = ParagraphDecision("text", (1,), False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.dropped = True  # type: ignore[misc]
    assert decision.dropped is False
    assert hash(decision) == hash(ParagraphDecision("text", (1,), False))
    assert not hasattr(decision, "__dict__")
    with pytest.raises((AttributeError, TypeError)):
        object.__setattr__(decision, "extra", 1)
