"""What a run's stats.json records about the run itself, so its figures can be reproduced from the output alone:
the code and library versions that shape results, the input files with their sizes, the recipe in force."""
from __future__ import annotations

import dataclasses
import enum
from importlib import metadata
from typing import Any, Iterable, Mapping

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

# Distributions whose version changes a run's output or speed: the engine, the extractors, language ID, the
# linter, the tokenizer and the classifier. Absent optional ones are recorded as null, not left out.
RESULT_SHAPING = ("apache-beam", "pyarrow", "trafilatura", "justext", "resiliparse", "lxml", "py3langid",
                  "fasttext-numpy2", "pylint", "astroid", "tokenizers", "warcio", "datasketch", "numpy")
PROJECT = "refinery"


def versions(names: Iterable[str] = RESULT_SHAPING) -> dict[str, str | None]:
    """Installed version of each distribution (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def project_version() -> str | None:
    try:
        return metadata.version(PROJECT)
    except metadata.PackageNotFoundError:
        return None


def input_files(paths: Iterable[str]) -> list[dict[str, Any]]:
    """Each input file once, in the order read, with its size in bytes (None where the filesystem cannot say)."""
    seen: dict[str, int | None] = {}
    for path in paths:
        if path in seen:
            continue
        try:
            seen[path] = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
        except (BeamIOError, IndexError, ValueError):
            seen[path] = None
    return [{"path": p, "bytes": n} for p, n in seen.items()]


def resolved(config: Any) -> Any:
    """A config dataclass as plain JSON data, every default in force included (tuples as lists, enums by value)."""
    spec = getattr(config, "spec", None)
    if dataclasses.is_dataclass(config) and hasattr(spec, "name") and hasattr(config, "config"):
        return {"name": spec.name, **resolved(config.config)}  # a configured recipe step: its name and thresholds
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: resolved(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {str(k): resolved(v) for k, v in config.items()}
    if isinstance(config, (list, tuple, set, frozenset)):
        items = [resolved(v) for v in config]
        return sorted(items, key=repr) if isinstance(config, (set, frozenset)) else items
    if isinstance(config, enum.Enum):
        return config.value
    if config is None or isinstance(config, (bool, int, float, str)):
        return config
    return getattr(config, "__name__", None) or repr(config)  # a registered function: its name


def run_record(*, job: str, loaded: Any, inputs: Iterable[str], files: Iterable[str], config: Any) -> dict[str, Any]:
    """The run-level keys of every job's stats.json: which job and recipe, the inputs as given and as read, the
    config as written (`config`, a --config that reproduces the run) and in force (`recipe_resolved`), versions."""
    return {"job": job, "recipe": getattr(config, "name", None), "inputs": list(inputs), "config": loaded.mapping,
            "config_source": loaded.where, **run_info(files=files, config=config)}


def run_info(*, files: Iterable[str] = (), config: Any = None) -> dict[str, Any]:
    """The stats.json keys every job adds: versions, and when given the input files and the resolved config."""
    info: dict[str, Any] = {"refinery_version": project_version(), "versions": versions()}
    files = list(files)
    if files:
        info["input_files"] = input_files(files)
    if config is not None:
        info["recipe_resolved"] = resolved(config)
    return info
