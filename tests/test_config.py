"""Configs fail at once with the key, the value and the fix."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from transforms.config import ConfigError, from_mapping


@dataclass(frozen=True, kw_only=True, slots=True)
class Inner:
    ratio: float = 0.5
    words: tuple[str, ...] = ("a",)

    def __post_init__(self) -> None:
        if not 0 <= self.ratio <= 1:
            raise ValueError(f"ratio ({self.ratio}) must be in [0, 1]")


@dataclass(frozen=True, kw_only=True, slots=True)
class Outer:
    mode: Literal["fast", "exact"] = "fast"
    inner: Inner = Inner()
    limit: int | None = None


def test_nested_values_and_coercions():
    cfg = from_mapping(Outer, {"mode": "exact", "inner": {"ratio": 1, "words": ["x", "y"]}, "limit": 3}, where="r")
    assert cfg == Outer(mode="exact", inner=Inner(ratio=1.0, words=("x", "y")), limit=3)
    assert isinstance(cfg.inner.ratio, float)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"r.inner: unknown key\(s\) 'ratoi'; valid keys are: ratio, words"):
        from_mapping(Outer, {"inner": {"ratoi": 0.3}}, where="r")


def test_bad_literal_type_and_validation():
    with pytest.raises(ConfigError, match="r.mode: 'slow' is not one of 'fast', 'exact'"):
        from_mapping(Outer, {"mode": "slow"}, where="r")
    with pytest.raises(ConfigError, match="r.limit: expected int"):
        from_mapping(Outer, {"limit": "ten"}, where="r")
    with pytest.raises(ConfigError, match=r"ratio \(2.0\) must be in \[0, 1\]"):
        from_mapping(Outer, {"inner": {"ratio": 2}}, where="r")
