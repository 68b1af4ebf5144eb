"""The swallowcode recipe loader at its edges (issue 16 mutation survivors): an empty recipe is SwallowCode's
defaults, a rewrite stage drops looping output unless told not to, each stage is switched off by null alone,
and the frozen/keyword-only/slotted contract of CodeRecipe and RewriteStage."""
from __future__ import annotations

import dataclasses

import pytest

from transforms.code.lint import LintConfig
from transforms.code.recipe import SWITCHABLE, CodeRecipe, RewriteStage, code_recipe_from_mapping
from transforms.code.syntax import SyntaxConfig


def test_an_empty_recipe_is_the_documented_defaults() -> None:
    recipe = code_recipe_from_mapping({}, where="t")
    assert recipe.languages == ("Python",) and recipe.source_language == "Python"
    assert recipe.syntax == SyntaxConfig() and recipe.lint == LintConfig()
    assert (recipe.sgcr, recipe.scor, recipe.rewrites) == (None, None, [])
    assert recipe.final_check is True  # compile and lint the rewritten code (SwallowCode stored both)
    assert recipe.generation == {}


def test_a_rewrite_stage_drops_looping_output_by_default() -> None:
    recipe = code_recipe_from_mapping({"sgcr": {"prompt": "sgcr"}, "scor": {"prompt": "scor",
                                                                          "drop_repetition": False}}, where="t")
    assert recipe.sgcr == RewriteStage(prompt="sgcr", drop_repetition=True)
    assert recipe.scor.drop_repetition is False
    assert [name for name, _ in recipe.rewrites] == ["sgcr", "scor"]
    assert RewriteStage(prompt="x").drop_repetition is True


@pytest.mark.parametrize("name", SWITCHABLE)
def test_null_switches_off_that_stage_only(name: str) -> None:
    on = {"sgcr": {"prompt": "sgcr"}, "scor": {"prompt": "scor"}}
    recipe = code_recipe_from_mapping({**on, name: None}, where="t")
    assert getattr(recipe, name) is None
    others = {"languages": ("Python",), "syntax": SyntaxConfig(), "lint": LintConfig(),
              "sgcr": RewriteStage(prompt="sgcr"), "scor": RewriteStage(prompt="scor")}
    assert {k: getattr(recipe, k) for k in others if k != name} == {k: v for k, v in others.items() if k != name}


@pytest.mark.parametrize("cls", [CodeRecipe, RewriteStage])
def test_frozen_keyword_only_and_slotted(cls: type) -> None:
    value = cls() if cls is CodeRecipe else cls(prompt="sgcr")
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, first, getattr(value, first))
    with pytest.raises(TypeError, match="positional"):
        cls(getattr(value, first))
    assert not hasattr(value, "__dict__")
    with pytest.raises((AttributeError, TypeError)):
        object.__setattr__(value, "a_misspelt_field", 1)


def test_a_rewrite_stage_is_hashable_and_equal_by_value() -> None:
    assert hash(RewriteStage(prompt="sgcr")) == hash(RewriteStage(prompt="sgcr"))
    assert {RewriteStage(prompt="sgcr"): 1}[RewriteStage(prompt="sgcr", drop_repetition=True)] == 1
