"""The web recipe (configs/werp/*.yaml) as validated dataclasses; a typo fails before any pipeline is built."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence


from core.config import ConfigError, from_mapping
from core.job_config import load_job_config
from core.resources import find_config, shipped_configs
from transforms.dedup.config import DedupConfig
from transforms.extract import ExtractConfig
from transforms.filters.base import ConfiguredStep
from transforms.filters.registry import registry
from transforms.filters.url import UrlFilterConfig
from transforms.langid import LangIdConfig
from transforms.quality.classifier import SCORE, ClassifierConfig

MiB = 2**20


@dataclass(frozen=True, kw_only=True, slots=True)
class ReadConfig:
    """How WARC/ARC files are read."""

    max_record_bytes: int = 10 * MiB  # records above this are skipped unread and counted (warc.too_large)
    split_bytes: int = 64 * MiB  # byte range per reader for per-record-gzip files (Common Crawl layout)

    def __post_init__(self) -> None:
        if self.max_record_bytes <= 0:
            raise ValueError(f"max_record_bytes ({self.max_record_bytes}) must be > 0")
        if self.split_bytes < 64 * 1024:
            raise ValueError(f"split_bytes ({self.split_bytes}) must be >= 65536; use a larger range")


@dataclass(frozen=True, kw_only=True, slots=True)
class OutputConfig:
    """How shards are written."""

    num_shards: int = 0  # 0 lets the runner choose (one per bundle on the DirectRunner)
    codec: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    # Uncompressed bytes a writer buffers per row group: bounds writer memory (Beam's default is 64 MiB);
    # 32 MiB still gives readers (pandas, HF datasets) row groups of thousands of documents.
    row_group_bytes: int = 32 * MiB

    def __post_init__(self) -> None:
        if self.num_shards < 0:
            raise ValueError(f"num_shards ({self.num_shards}) must be >= 0")
        if self.row_group_bytes < MiB:
            raise ValueError(f"row_group_bytes ({self.row_group_bytes}) must be >= 1 MiB ({MiB})")


@dataclass(frozen=True, kw_only=True, slots=True)
class WebRecipe:
    """Everything the werp pipeline needs to know, in order of the stages."""

    name: str = "custom"
    read: ReadConfig = ReadConfig()
    url_filter: UrlFilterConfig | None = None
    extract: ExtractConfig = ExtractConfig()
    langid: LangIdConfig | None = None
    steps: tuple[ConfiguredStep, ...] = ()  # per-document filters and line edits, before dedup
    dedup: DedupConfig = DedupConfig()
    after_dedup: tuple[ConfiguredStep, ...] = ()  # steps on the deduplicated documents (FineWeb: PII last)
    classifier: ClassifierConfig | None = None  # the last stage: fastText quality score (Blu-WERP, DCLM)
    output: OutputConfig = OutputConfig()

    @property
    def stat_names(self) -> tuple[str, ...]:
        """Every score the steps report, in step order: the columns of the filter_stats struct."""
        names = tuple(n for s in (*self.steps, *self.after_dedup) for n in s.spec.stat_names)
        return names + ((SCORE,) if self.classifier is not None else ())


def parse_steps(items: Any, *, where: str, key: str = "steps") -> tuple[ConfiguredStep, ...]:
    """Steps are a list of one-key mappings `- name: {config}` (or a bare name for the defaults)."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ConfigError(f"{where}: {key}: expected a list of steps, got {type(items).__name__}")
    known = registry()
    out = []
    for i, item in enumerate(items):
        name, cfg = (item, None) if isinstance(item, str) else _single_key(item, where=f"{where}: {key}[{i}]")
        if name not in known:
            raise ConfigError(f"{where}: {key}[{i}]: unknown step {name!r}; valid steps are: {', '.join(sorted(known))}")
        spec = known[name]
        out.append(ConfiguredStep(spec, from_mapping(spec.config_cls, cfg, where=where, key=f"{key}[{i}].{name}")))
    return tuple(out)


def _single_key(item: Any, *, where: str) -> tuple[str, Any]:
    if not isinstance(item, Mapping) or len(item) != 1:
        raise ConfigError(f"{where}: a step is `- name: {{...}}` with exactly one name, got {item!r}")
    return next(iter(item.items()))


def recipe_from_mapping(data: Mapping[str, Any], *, where: str) -> WebRecipe:
    """Validate a parsed YAML recipe."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a recipe is a mapping of sections, got {type(data).__name__}")
    data = dict(data)
    steps = parse_steps(data.pop("steps", None), where=where, key="steps")
    after_dedup = parse_steps(data.pop("after_dedup", None), where=where, key="after_dedup")
    for optional in ("url_filter", "langid", "classifier"):
        if optional in data and data[optional] is None:
            data.pop(optional)  # an explicit null switches the stage off
    return dataclasses.replace(from_mapping(WebRecipe, data, where=where), steps=steps, after_dedup=after_dedup)


def find_recipe(name_or_path: str, *, family: str = "werp") -> Path:
    """A recipe by name (configs/<family>/<name>.yaml) or by path."""
    return find_config(name_or_path, folder=family, what="recipe", flag="--config")


def available_recipes(family: str) -> list[str]:
    """Names of the shipped recipes of one pipeline."""
    return shipped_configs(family)


def load_recipe(name_or_path: str, overrides: Sequence[str] = ()) -> WebRecipe:
    """Read, parse and validate a recipe, with key=value overrides (pipelines.werp adds its flags)."""
    return load_job_config(name_or_path, folder="werp", what="recipe", build=recipe_from_mapping,
                           overrides=overrides).config
