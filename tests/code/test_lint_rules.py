"""LintConfig at its edges (issue 16 mutation survivors): the 200,000-byte default cap on both sides, every bound
of __post_init__ on each side, and the frozen/keyword-only/slotted contract."""
from __future__ import annotations

import dataclasses

import pytest

from transforms.code.lint import LintConfig, final_score
from transforms.code.lint_pool import TOO_LARGE, LintPool


def comment_file(size: int) -> str:
    """Exactly `size` UTF-8 bytes, one comment line: pylint reads it in about a second."""
    return "#" + "a" * (size - 2) + "\n"


def test_the_default_cap_is_200000_bytes_on_both_sides() -> None:
    at, over = comment_file(200_000), comment_file(200_001)
    assert (len(at.encode()), len(over.encode())) == (200_000, 200_001)
    with LintPool(LintConfig()) as pool:
        linted, skipped = pool.lint_many([at, over])
    assert linted.reason is None  # linted (a comment alone has no statements, so no score)
    assert (skipped.score, skipped.reason) == (None, TOO_LARGE)


@pytest.mark.parametrize("value", [0.0, 10.0])
def test_min_score_accepts_both_ends_of_pylints_scale(value: float) -> None:
    assert LintConfig(min_score=value).min_score == value


@pytest.mark.parametrize("value", [-0.01, 10.01])
def test_min_score_outside_0_10_is_rejected(value: float) -> None:
    with pytest.raises(ValueError, match="min_score"):
        LintConfig(min_score=value)


@pytest.mark.parametrize("value", [0.5, 1.0, 30.0])
def test_a_positive_timeout_is_valid(value: float) -> None:
    assert LintConfig(timeout_s=value).timeout_s == value


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_a_timeout_of_zero_or_less_is_rejected(value: float) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        LintConfig(timeout_s=value)


@pytest.mark.parametrize("value", [None, 1, 2])
def test_max_bytes_none_or_positive_is_valid(value: int | None) -> None:
    assert LintConfig(max_bytes=value).max_bytes == value


@pytest.mark.parametrize("value", [0, -1])
def test_max_bytes_of_zero_or_less_is_rejected(value: int) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        LintConfig(max_bytes=value)


@pytest.mark.parametrize("name", ["workers", "batch_size", "max_snippets_per_worker"])
def test_counts_of_one_are_valid_and_zero_is_not(name: str) -> None:
    assert getattr(LintConfig(**{name: 1}), name) == 1
    with pytest.raises(ValueError, match=name):
        LintConfig(**{name: 0})
    with pytest.raises(ValueError, match=name):
        LintConfig(**{name: -1})


def test_a_ratio_of_zero_leaves_the_score() -> None:
    assert final_score(7.5, 0.0) == 7.5 and final_score(-3.0, 0.0) == -3.0  # pylint scores can be negative


def test_lint_config_is_frozen_hashable_keyword_only_and_slotted() -> None:
    cfg = LintConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.min_score = 5.0  # type: ignore[misc]
    assert cfg.min_score == 7.0
    assert hash(cfg) == hash(LintConfig()) and {cfg: 1}[LintConfig()] == 1
    with pytest.raises(TypeError, match="positional"):
        LintConfig(7.0)  # type: ignore[misc]
    assert not hasattr(cfg, "__dict__")
    with pytest.raises((AttributeError, TypeError)):
        object.__setattr__(cfg, "min_scor", 1.0)
