"""The run folder: checked before anything starts, cleared for a fresh start, and given its config.yaml last.

A run folder holds one run's history: checkpoints/, metrics.jsonl, tensorboard/, pipeline/ traces, the
config.yaml that made them and commands.jsonl (the command line of each invocation). A fresh start
(checkpoint.resume=false) over an earlier run is refused unless overwrite=true (--overwrite), which moves all of
them into `previous-<time>/` instead of mixing two runs or deleting one. config.yaml is written only once the run
is known to go on (after the resume check), so a refused resume leaves the config that wrote the checkpoints in place.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from core.config import ConfigError
from training.integrity import fsync_dir, write_durably

OUTPUTS = ("checkpoints", "metrics.jsonl", "tensorboard", "pipeline", "config.yaml", "commands.jsonl")  # a run's
HISTORY = OUTPUTS[:4]  # any of these, not empty, means an earlier run left something behind (a config alone does not)
COMMANDS = "commands.jsonl"


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


def earlier_run(out: Path) -> list[str]:
    """What an earlier run left in `out` (checkpoints/, metrics.jsonl, ...): the names that exist and are not empty."""
    found = [out / name for name in HISTORY]
    return [p.name + ("/" if p.is_dir() else "") for p in found
            if (p.is_dir() and any(p.iterdir())) or (p.is_file() and p.stat().st_size > 0)]


def fresh_start_problem(out: Path, *, overwrite: bool) -> str | None:
    """Why checkpoint.resume=false may not start in `out` (it holds an earlier run and overwrite is off), or None."""
    held = earlier_run(out) if out.is_dir() else []
    if overwrite or not held:
        return None
    return (f"output={out} already holds a run ({', '.join(held)}) and checkpoint.resume=false would start another "
            f"over it; resume it (checkpoint.resume=true), choose another output folder, or pass --overwrite "
            f"(overwrite=true) to move that run into {out}{os.sep}previous-<time>{os.sep} and start fresh")


def check_fresh_start(out: Path, *, overwrite: bool) -> None:
    """Refuse (ConfigError) a fresh start over an earlier run without overwrite, before anything is written."""
    problem = fresh_start_problem(out, overwrite=overwrite)
    if problem:
        raise ConfigError(problem)


def move_aside(out: Path, *, now: float | None = None) -> Path | None:
    """Move an earlier run's outputs into out/previous-<local time>/ (a fresh start); None if there were none."""
    found = [out / name for name in OUTPUTS if (out / name).exists()]
    if not earlier_run(out):
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


def record_command(out: Path, *, command: str | None, step: int, ranks: int) -> None:
    """Append this invocation's command line to commands.jsonl (the model card says how the run was made); None
    (a run started from Python, not the CLI) records nothing."""
    if command is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"command": command, "step": step, "ranks": ranks, "time": round(time.time(), 3)})
    with (out / COMMANDS).open("a", encoding="utf-8") as f:
        f.write(line + "\n")


def read_commands(out: Path) -> list[dict[str, Any]]:
    """The invocations recorded in a run folder, oldest first (torn or foreign lines are left out)."""
    path = out / COMMANDS
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("command"), str):
            found.append(record)
    return found


def describe_moved(target: Path) -> str:
    """The one line a fresh start prints after moving an earlier run aside."""
    names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in sorted(target.iterdir()))
    return (f"checkpoint.resume=false, overwrite=true: starting fresh; the earlier run's {names} moved to "
            f"{target}{os.sep}")
