"""Shipped recipes load; a wrong step, section or key fails before any pipeline is built."""
from __future__ import annotations

import pytest

from core.config import ConfigError
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


def test_recipes_run_dedup_and_the_classifier_in_their_papers_order():
    blu, fineweb, dclm = (load_recipe(n) for n in ("bluwerp", "fineweb", "dclm"))
    assert blu.dedup.stages == ["dedup_paragraph"] and blu.dedup.paragraph.ngram == 13
    assert dclm.dedup.stages == ["dedup_paragraph"] and dclm.dedup.paragraph.paragraph_threshold == 0.8
    assert fineweb.dedup.stages == ["dedup_minhash"] and (fineweb.dedup.minhash.bands, fineweb.dedup.minhash.rows) == (14, 8)
    assert fineweb.dedup.minhash_verify == 0.0  # FineWeb links every LSH candidate
    assert [s.spec.name for s in fineweb.after_dedup] == ["pii"] and not blu.after_dedup
    assert blu.classifier is None and dclm.classifier is None  # no model ships: --classifier_model turns it on


def test_classifier_flags_fill_in_the_recipe():
    from transforms.recipe import with_overrides
    blu = with_overrides(load_recipe("bluwerp"), classifier_model="m.bin")
    assert (blu.classifier.mode, blu.classifier.top_token_fraction) == ("top_fraction", 0.1)  # BETR's default
    assert "classifier_score" in blu.stat_names
    strict = with_overrides(load_recipe("dclm"), classifier_model="m.bin", classifier_threshold=0.2)
    assert (strict.classifier.mode, strict.classifier.threshold) == ("threshold", 0.2)
    with pytest.raises(ConfigError, match="need a model"):
        with_overrides(load_recipe("dclm"), classifier_threshold=0.2)
    with pytest.raises(ConfigError, match="top_token_fraction"):
        with_overrides(load_recipe("dclm"), classifier_model="m.bin", classifier_top_fraction=1.5)


def test_a_classifier_section_needs_a_model_path():
    with pytest.raises(ConfigError, match="model_path"):
        recipe_from_mapping({"classifier": {"mode": "threshold"}}, where="r")
