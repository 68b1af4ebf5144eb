"""Shipped recipes load; a wrong step, section or key fails before any pipeline is built."""
from __future__ import annotations

import pytest

from core.config import ConfigError
from pipelines.jobs import JobError
from transforms.recipe import WebRecipe, available_recipes, find_recipe, load_recipe, recipe_from_mapping


@pytest.mark.parametrize("name", ["bluwerp", "fineweb", "dclm", "refinery"])
def test_shipped_recipes_load_with_their_extractor(name):
    recipe = load_recipe(name)
    assert recipe.name == name and recipe.steps and recipe.langid is not None
    assert recipe.extract.extractor == {"bluwerp": "justext", "fineweb": "trafilatura", "dclm": "resiliparse",
                                        "refinery": "lines"}[name]
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


def test_refinery_recipe_is_fineweb_with_our_extractor():
    """Ours differs from FineWeb's in the extractor and in checking LSH candidates' signatures, nothing else."""
    ours, fineweb = load_recipe("refinery"), load_recipe("fineweb")
    assert [(s.spec.name, s.config) for s in ours.steps] == [(s.spec.name, s.config) for s in fineweb.steps]
    assert (ours.url_filter, ours.langid) == (fineweb.url_filter, fineweb.langid)
    assert ours.dedup.minhash == fineweb.dedup.minhash and ours.dedup.minhash_verify == 0.7
    assert [s.spec.name for s in ours.after_dedup] == ["pii"]


def werp_recipe(*argv: str) -> WebRecipe:
    """The recipe as pipelines.werp resolves its command line: file, key=value overrides, then flags."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines import werp
    from pipelines.jobs import split_overrides

    overrides, flags = split_overrides(["--runner=FnApiRunner", *argv])
    return werp.resolve(PipelineOptions(flags), overrides)[0].config


def test_classifier_flags_fill_in_the_recipe(tmp_path):
    model = tmp_path / "m.bin"  # resolve checks the file starts as a fastText model: its magic int32, 793712314
    model.write_bytes((793712314).to_bytes(4, "little") + bytes(16))
    blu = werp_recipe("--config=bluwerp", f"--classifier_model={model}")
    assert (blu.classifier.model_path, blu.classifier.mode, blu.classifier.top_token_fraction) == (
        str(model), "top_fraction", 0.1)  # BETR's default
    assert "classifier_score" in blu.stat_names
    strict = werp_recipe("--config=dclm", f"--classifier_model={model}", "--classifier_threshold=0.2")
    assert (strict.classifier.mode, strict.classifier.threshold) == ("threshold", 0.2)
    with pytest.raises(ConfigError, match="model_path is empty"):
        werp_recipe("--config=dclm", "--classifier_threshold=0.2")
    with pytest.raises(ConfigError, match="top_token_fraction"):
        werp_recipe("--config=dclm", f"--classifier_model={model}", "--classifier_top_fraction=1.5")
    with pytest.raises(JobError, match="not both"):
        werp_recipe(f"--classifier_model={model}", "--classifier_threshold=0.2", "--classifier_top_fraction=0.2")


def test_overrides_set_any_key_then_flags_win():
    """key=value reaches nested sections and named steps; a flag is a shortcut onto its key and is applied last."""
    r = werp_recipe("--config=bluwerp", "dedup.bucket_bits=16", "steps.gopher_quality.min_words=40",
                    "extract.extractor=trafilatura", "--extractor=resiliparse")
    assert r.dedup.bucket_bits == 16 and r.extract.extractor == "resiliparse"
    gopher = next(s for s in r.steps if s.spec.name == "gopher_quality")
    assert gopher.config.min_words == 40
    base = load_recipe("bluwerp")  # every other key as the file says
    assert [s.config for s in r.steps if s.spec.name != "gopher_quality"] == [
        s.config for s in base.steps if s.spec.name != "gopher_quality"]


def test_a_misspelt_override_names_the_close_key():
    with pytest.raises(ConfigError, match=r"with overrides dedup\.bucket_bit=16: dedup: unknown key\(s\) "
                                          r"'bucket_bit'; did you mean 'bucket_bits'"):
        werp_recipe("dedup.bucket_bit=16")
    with pytest.raises(ConfigError, match=r"no item 'gopher_qualty' in the list; did you mean 'gopher_quality'"):
        werp_recipe("steps.gopher_qualty.min_words=40")


def test_a_classifier_section_needs_a_model_path():
    with pytest.raises(ConfigError, match="model_path"):
        recipe_from_mapping({"classifier": {"mode": "threshold"}}, where="r")
