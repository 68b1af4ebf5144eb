"""Where shipped recipes and lists live, and how a path in a recipe is resolved against them."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def configs_dir() -> Path:
    """The shipped configs package folder (recipes and lists)."""
    return Path(str(resources.files("configs")))


def resolve_resource(path: str) -> str:
    """A list or model path: URLs and absolute paths as given, else relative to the CWD or the configs package."""
    if "://" in path or os.path.isabs(path) or os.path.exists(path):
        return path
    return str(configs_dir() / path)
