"""The one way every job reads its config: `--config NAME|PATH`, then `key=value` overrides, then the job's own
flags (shortcuts onto keys), through the strict loader. The result keeps the mapping it was built from, so a run
can write what it ran with beside its output."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, Sequence, TypeVar

from core.config import apply_overrides, load_yaml, set_keys
from core.resources import configs_dir, find_config

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Loaded(Generic[T]):
    """A job's config and the mapping it came from (the file with every override and flag applied)."""

    config: T
    mapping: dict[str, Any]
    where: str  # the file, and the overrides when there were any: what errors name


def load_job_config(name_or_path: str | None, *, folder: str, what: str, build: Callable[..., T],
                    overrides: Sequence[str] = (), flags: Mapping[str, Mapping[str, Any]] | None = None) -> Loaded[T]:
    """Config `name_or_path` (a name under configs/<folder>/ or a YAML path; None = build's defaults) with the
    `key=value` overrides, then the keys each flag stands for (flags: the flag as typed, '--seq_len=512', -> {dotted
    key: value}), built by `build(mapping, where=...)`. The file is checked alone first, so an error names the file
    when the file is wrong and the overrides or flags when they are."""
    data: Mapping[str, Any] = {}
    where = "defaults"
    if name_or_path is not None:
        path = find_config(str(name_or_path), folder=folder, what=what, flag="--config")
        data, where = load_yaml(path), shown_path(path)
        if data is None:
            data = {}
    flags = flags or {}
    if not overrides and not flags:
        return Loaded(build(data, where=where), dict(data), where)
    build(data, where=where)
    changed = set_keys(apply_overrides(data, overrides), {k: v for keys in flags.values() for k, v in keys.items()})
    where = " ".join([where, *(["with overrides", *overrides] if overrides else []), *(["with", *flags] if flags else [])])
    return Loaded(build(changed, where=where), changed, where)


def shown_path(path: Path) -> str:
    """A shipped config as configs/<folder>/<name>.yaml, the same in a checkout and an installed package (errors
    and stats.json name it); any other file as given."""
    try:
        return str(Path("configs") / Path(path).resolve().relative_to(configs_dir().resolve()))
    except ValueError:
        return str(path)


def flag_keys(*flags: tuple[str, Any, str | Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """A job's flags as the config keys they are shortcuts for, for load_job_config: (flag name, value given or
    None, its key or {key: value, ...}) -> {'--name=value': {key: value}}; flags not given are left out."""
    return {f"--{name}={value}": ({keys: value} if isinstance(keys, str) else dict(keys))
            for name, value, keys in flags if value is not None}
