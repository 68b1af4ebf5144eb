"""The run folder: checked before anything starts, cleared for a fresh start, and given its config.yaml last.

A run folder holds one run's history: checkpoints/, metrics.jsonl, tensorboard/, pipeline/ traces and the
config.yaml that made them. A fresh start (checkpoint.resume=false) over an earlier run moves all of them into
`previous-<time>/` instead of mixing two runs or deleting one. config.yaml is written only once the run is known
to go on (after the resume check), so a refused resume leaves the config that wrote the checkpoints in place.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from core.config import ConfigError
from training.integrity import fsync_dir, write_durably

OUTPUTS = ("checkpoints", "metrics.jsonl", "tensorboard", "pipeline", "config.yaml")  # what a run writes there
HISTORY = OUTPUTS[:4]  # any of these means an earlier run left something behind (config.yaml alone does not)


def check_output(path: str, *, flag: str = "output=", create: bool = True) -> Path:
    """Create an output folder if needed and prove it writable, or raise a one-line ConfigError naming the fix.

    `flag` names the setting in the message: output= (training.pretrain) or --out (training.export). With
    create=False nothing is made: the nearest existing folder must only be writable (a job that may still fail
    leaves no empty folder behind)."""
    if not path:
        raise ConfigError(f"{flag.strip(' =')} is empty; give a folder to write to")
    out = Path(path)
    blocking = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        where = "" if blocking == out else f": {blocking}"
        raise ConfigError(f"{flag}{path}{where} is a file, not a folder; choose another output folder")
    nearest = next(p for p in (out, *out.parents) if p.exists())
    if not create and not os.access(nearest, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag}{path}: {nearest} is not writable; choose a folder you can write to")
    try:
        if create:
            out.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=out):  # a folder may exist and still refuse new files
                pass
    except OSError as err:
        where = f" ({err.filename})" if err.filename and str(err.filename) != path else ""
        raise ConfigError(f"{flag}{path}: cannot create or write the folder: {err.strerror or err}{where}; "
                          "choose a folder you can write to") from None
    return out


def move_aside(out: Path, *, now: float | None = None) -> Path | None:
    """Move an earlier run's outputs into out/previous-<local time>/ (a fresh start); None if there were none."""
    found = [out / name for name in OUTPUTS if (out / name).exists()]
    if not any(p.name in HISTORY for p in found):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    target = out / f"previous-{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = out / f"previous-{stamp}-{n}"
    target.mkdir()
    for path in found:
        path.rename(target / path.name)
    fsync_dir(target)
    fsync_dir(out)
    return target


def write_config(out: Path, config: dict[str, Any]) -> None:
    """config.yaml of the run, written whole or not at all."""
    out.mkdir(parents=True, exist_ok=True)
    write_durably(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))


def describe_moved(target: Path) -> str:
    """The one line a fresh start prints after moving an earlier run aside."""
    names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in sorted(target.iterdir()))
    return f"checkpoint.resume=false: starting fresh; the earlier run's {names} moved to {target}{os.sep}"
