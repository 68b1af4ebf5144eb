"""Shipped recipes load; a wrong step, section or key fails before any pipeline is built."""
from __future__ import annotations

import pytest

from transforms.config import ConfigError
from transforms.recipe import available_recipes, find_recipe, load_recipe, recipe_from_mapping


@pytest.mark.parametrize("name", ["bluwerp", "fineweb", "dclm"])
def test_shipped_recipes_load_with_their_extractor(name):
    recipe = load_recipe(name)
    assert recipe.name == name and recipe.steps and recipe.langid is not None
    assert recipe.extract.extractor == {"bluwerp": "justext", "fineweb": "trafilatura", "dclm": "resiliparse"}[name]
    assert len(recipe.stat_names) == len(set(recipe.stat_names)), "stat columns must be unique"


def test_steps_keep_order_and_config():
    recipe = recipe_from_mapping({"steps": ["gopher_repetition", {"c4": {"min_sentences": 3}}]}, where="r")
    assert [s.spec.name for s in recipe.steps] == ["gopher_repetition", "c4"]
    assert recipe.steps[1].config.min_sentences == 3


def test_unknown_step_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown step 'gopher'; valid steps are: c4, fineweb, gopher_quality"):
        recipe_from_mapping({"steps": ["gopher"]}, where="r")


def test_unknown_section_and_null_stage():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'filters'"):
        recipe_from_mapping({"filters": []}, where="r")
    assert recipe_from_mapping({"langid": None, "url_filter": None}, where="r").langid is None


def test_recipe_by_unknown_name_names_the_choices():
    assert {"bluwerp", "fineweb", "dclm"} <= set(available_recipes("werp"))
    with pytest.raises(ConfigError, match="unknown recipe; choose one of"):
        find_recipe("blu-werp")
