"""The rewrite pipelines' recipes (configs/swallowmath/*.yaml) as validated dataclasses."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from core.config import ConfigError, from_mapping
from transforms.io.samples import SampleFields
from transforms.llm.handlers import GenerationConfig, ModelNotLocal, check_model_paths
from transforms.llm.parse import MIN_OUTPUT_CHARS

MiB = 2**20


@dataclass(frozen=True, kw_only=True, slots=True)
class SampleReadConfig:
    """Which columns hold the text and id, and the largest record read."""

    fields: SampleFields = SampleFields()
    max_bytes: int = MiB  # larger records or files are skipped and counted (input.too_large)

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes ({self.max_bytes}) must be >= 1")


@dataclass(frozen=True, kw_only=True, slots=True)
class ShardConfig:
    """How output shards are written."""

    num_shards: int = 0  # 0 lets the runner choose
    codec: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    row_group_bytes: int = 32 * MiB  # uncompressed bytes a writer buffers per row group

    def __post_init__(self) -> None:
        if self.num_shards < 0:
            raise ValueError(f"num_shards ({self.num_shards}) must be >= 0; 0 lets the runner choose")
        if self.row_group_bytes < 1:
            raise ValueError(f"row_group_bytes ({self.row_group_bytes}) must be >= 1")


@dataclass(frozen=True, kw_only=True, slots=True)
class MathRecipe:
    """SwallowMath: read -> math-tutor rewrite -> drop short outputs -> shards."""

    name: str = "custom"
    read: SampleReadConfig = SampleReadConfig()
    prompt: str = "swallowmath"  # a name under configs/prompts or a .yaml path
    generation: Mapping[str, Any] = field(default_factory=dict)  # GenerationConfig keys; model_path from --model
    min_output_chars: int = MIN_OUTPUT_CHARS
    output: ShardConfig = ShardConfig()


def generation_config(settings: Mapping[str, Any], *, where: str) -> GenerationConfig:
    """The recipe's generation settings (overrides and flags already in), validated; a model the workers would
    load must be a local folder now, since nothing is downloaded at run time."""
    merged = dict(settings)
    if not merged.get("model_path"):
        raise ConfigError(f"{where}: no model; pass --model=PATH (a local model folder, or the served model name "
                          "with --backend=openai --base_url=...) or set generation.model_path")
    cfg = from_mapping(GenerationConfig, merged, where=where)
    try:
        check_model_paths(cfg)
    except ModelNotLocal as exc:
        raise ConfigError(str(exc)) from None
    return cfg


def math_recipe_from_mapping(data: Mapping[str, Any], *, where: str) -> MathRecipe:
    """Validate a parsed YAML recipe; the generation section is checked once the flags are merged in."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a recipe is a mapping of sections, got {type(data).__name__}")
    data = dict(data)
    generation = pop_generation(data, where=where)
    return dataclasses.replace(from_mapping(MathRecipe, data, where=where), generation=generation)


def pop_generation(data: dict, *, where: str) -> dict:
    """The recipe's generation section, its keys checked now; values are checked once --model is merged in."""
    generation = data.pop("generation", None) or {}
    if not isinstance(generation, Mapping):
        raise ConfigError(f"{where}: generation must be a mapping of GenerationConfig keys")
    unknown = set(generation) - {f.name for f in dataclasses.fields(GenerationConfig)}
    if unknown:
        raise ConfigError(f"{where}: generation: unknown key(s) {', '.join(sorted(map(repr, unknown)))}; valid keys "
                          f"are: {', '.join(f.name for f in dataclasses.fields(GenerationConfig))}")
    return dict(generation)
