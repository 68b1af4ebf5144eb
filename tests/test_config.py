"""Configs fail at once with the key, the value and the fix."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pytest

from core.config import ConfigError, from_mapping, load_yaml, parse_yaml_value


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


def test_unknown_key_suggests_the_close_one_and_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"r: inner: unknown key\(s\) 'ratoi'; did you mean 'ratio' for 'ratoi'\? "
                                          r"valid keys are: ratio, words"):
        from_mapping(Outer, {"inner": {"ratoi": 0.3}}, where="r")
    with pytest.raises(ConfigError, match=r"r: inner: unknown key\(s\) 'zzz'; valid keys are: ratio, words"):
        from_mapping(Outer, {"inner": {"zzz": 0.3}}, where="r")  # nothing close: no guess


def test_bad_literal_type_and_validation():
    with pytest.raises(ConfigError, match="r: mode: 'slow' is not one of 'fast', 'exact'"):
        from_mapping(Outer, {"mode": "slow"}, where="r")
    with pytest.raises(ConfigError, match="r: limit: expected int"):
        from_mapping(Outer, {"limit": "ten"}, where="r")
    with pytest.raises(ConfigError, match=r"ratio \(2.0\) must be in \[0, 1\]"):
        from_mapping(Outer, {"inner": {"ratio": 2}}, where="r")


# -- exact types and YAML 1.2 scalars (issue 14 item 6) --------------------------------------------------------

@dataclass(frozen=True, kw_only=True, slots=True)
class Typed:
    steps: int = 1
    lr: float = 0.1
    name: str = "x"
    resume: bool = True
    sizes: tuple[int, ...] = ()
    limit: int | None = None


@pytest.mark.parametrize("key,value,expected", [
    ("steps", True, "int"), ("steps", False, "int"), ("steps", 2.5, "int"), ("steps", "10", "int"),
    ("lr", True, "float"), ("lr", "3e-3", "float"), ("name", 7, "str"), ("resume", 1, "bool"),
    ("resume", "yes", "bool"), ("sizes", [1, True], "int"), ("limit", False, "int"),
])
def test_types_are_checked_exactly(key, value, expected):
    """bool is not an int (YAML `true` turned ngram into 1), a string is not a number, 2.5 is not an int."""
    with pytest.raises(ConfigError) as err:
        from_mapping(Typed, {key: value}, where="run.yaml")
    message = str(err.value)
    assert message.startswith(f"run.yaml: {key}") and f"expected {expected}" in message
    assert f"got {type(value).__name__ if key != 'sizes' else 'bool'}" in message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(value):
    """`.nan` and `.inf` are valid YAML floats but no setting means them (grad_clip: .nan turned clipping off)."""
    with pytest.raises(ConfigError, match=r"^r: lr: -?(nan|inf) is not a finite number"):
        from_mapping(Typed, {"lr": value}, where="r")
    assert from_mapping(Typed, {"lr": 1e308}, where="r").lr == 1e308  # the largest finite ones still pass


def test_lossless_numbers_are_accepted():
    cfg = from_mapping(Typed, {"steps": 1e6, "lr": 3, "sizes": [1, 2]}, where="r")
    assert (cfg.steps, type(cfg.steps), cfg.lr, type(cfg.lr), cfg.sizes) == (1_000_000, int, 3.0, float, (1, 2))


@pytest.mark.parametrize("text,value", [
    ("3e-3", 0.003), ("3.0e-3", 0.003), ("1E5", 100000.0), ("-2.5e+2", -250.0), (".5", 0.5), ("1_000", 1000),
    ("1_000.5", 1000.5), ("010", 10), ("0x1F", 31), ("0o17", 15), ("true", True), ("False", False),
    ("no", "no"), ("yes", "yes"), ("on", "on"), ("1:30", "1:30"), ("null", None), ("~", None), ("abc", "abc"),
])
def test_yaml_scalars_follow_yaml_1_2(tmp_path, text, value):
    """YAML 1.2 core schema (spec 10.3.2): 3e-3 is a number; `no`, `on` and `1:30` are strings (PyYAML's 1.1 reads
    them as False, True and 90). Flags (`key=value`) and files read the same."""
    path = tmp_path / "c.yaml"
    path.write_text(f"v: {text}\n")
    loaded = load_yaml(path)["v"]
    assert loaded == value and type(loaded) is type(value)
    flag = parse_yaml_value(text)
    assert flag == value and type(flag) is type(value)


def test_yaml_special_floats_and_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: .inf\nb: -.Inf\nc: .nan\n")
    data = load_yaml(path)
    assert data["a"] == math.inf and data["b"] == -math.inf and math.isnan(data["c"])
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: not valid YAML"):
        load_yaml(path)


# -- through every job's loader: the cases the issue reported ----------------------------------------------------

def test_werp_recipe_rejects_a_bool_for_the_ngram_size(tmp_path):
    from transforms.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text("dedup:\n  paragraph:\n    ngram: true\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(str(path))
    assert str(err.value) == f"{path}: dedup.paragraph.ngram: expected int, got bool True"


def test_werp_recipe_step_errors_name_the_step(tmp_path):
    from transforms.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text("steps:\n  - gopher_quality: {min_words: 50}\n  - gopher_quality: {min_words: yes}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: steps\[1\]\.gopher_quality\.min_words: expected int, got str 'yes'$"):
        load_recipe(str(path))


def test_training_config_reads_exponent_floats_and_refuses_bool_steps(tmp_path):
    from training.config import load_config

    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr: 3e-3\ntrain:\n  steps: 1e3\n")
    cfg = load_config(str(path))
    assert cfg.optim.lr == 0.003 and cfg.train.steps == 1000 and type(cfg.train.steps) is int
    assert load_config(str(path), ["optim.lr=5e-4"]).optim.lr == 0.0005
    path.write_text("train:\n  steps: true\n")
    with pytest.raises(ConfigError, match=rf"^{path}: train\.steps: expected int, got bool True$"):
        load_config(str(path))
    path.write_text("train:\n  steps: 10\n")
    with pytest.raises(ConfigError, match=r"with overrides train\.steps=true: train\.steps: expected int, got bool True"):
        load_config(str(path), ["train.steps=true"])


def test_tokenize_config_types_are_exact(tmp_path):
    from transforms.packing import load_tokenize_config

    path = tmp_path / "t.yaml"
    path.write_text("seq_len: true\n")
    with pytest.raises(ConfigError, match=rf"^{path}: seq_len: expected int, got bool True$"):
        load_tokenize_config(str(path))
