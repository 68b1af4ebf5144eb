"""Where shipped recipes and lists live, and how a path in a recipe is resolved against them."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from core.config import ConfigError


def configs_dir() -> Path:
    """The shipped configs package folder (recipes and lists)."""
    return Path(str(resources.files("configs")))


def resolve_resource(path: str) -> str:
    """A list or model path: URLs and absolute paths as given, else relative to the CWD or the configs package."""
    if "://" in path or os.path.isabs(path) or os.path.exists(path):
        return path
    return str(configs_dir() / path)


def shipped_configs(folder: str) -> list[str]:
    """Names of the YAML files shipped in configs/<folder>/ (recipes of one pipeline, prompts)."""
    return sorted(p.stem for p in (configs_dir() / folder).glob("*.yaml"))


def find_config(name_or_path: str, *, folder: str, what: str, flag: str) -> Path:
    """A shipped YAML by name (configs/<folder>/<name>.yaml) or any YAML by path; errors name the choices."""
    if name_or_path.endswith((".yaml", ".yml")):
        path = Path(resolve_resource(name_or_path))
        if path.is_file():
            return path
        raise ConfigError(f"{flag} {name_or_path}: no such file; give a YAML path or one of {shipped_configs(folder)}")
    path = configs_dir() / folder / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"{flag} {name_or_path!r}: unknown {what}; choose one of {shipped_configs(folder)} or a YAML "
                          "path")
    return path
