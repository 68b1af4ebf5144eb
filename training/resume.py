"""Resuming a run: the newest checkpoint that is intact and fits this run, loaded on every rank alike.

Two kinds of failure, handled differently. A damaged checkpoint (meta.json unreadable or of the wrong shape, a
file missing, truncated or changed since the save, or an unverified one that cannot be read) is passed over for
the next older one and set aside as `step-N.corrupt` once one loads. A checkpoint that does not fit this run
(another model, data, layout or rank count, or entries this run needs that it lacks) is not damaged: it is never
renamed, and the resume stops with one line naming the differences and the fix. RNG states are the exception:
a checkpoint without this run's RNG entries (one written on CPU, resumed on GPU) still loads, with a warning
that the resume is not bitwise.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint._nested_dict import flatten_state_dict

from core.config import ConfigError
from training.checkpoint import (LOAD_ERRORS, CheckpointError, candidates, collective_problem, one_line, parts_state,
                                 quiet_if_single, set_parts_state, sharded_view, verify)
from training.distributed import Dist, all_gather_object, barrier, broadcast_object
from training.rng import rng_state, set_rng_state
from training.rundir import describe_moved, fresh_start_problem, move_aside

COMPARED = ("model", "data", "tokens_per_step", "trainer")  # meta.json entries a resumed run must share
FRESH = ("start fresh with checkpoint.resume=false --overwrite (the old run is moved aside) or in another output "
         "folder")


@dataclass(frozen=True)
class Resumed:
    """What a loaded checkpoint gives back besides the weights and optimizer state."""

    step: int
    tokens: int
    rank_state: dict[str, Any]  # this rank's entries (data position, guard counters) without the RNG
    path: str
    passed_over: tuple[str, ...] = ()  # newer checkpoints that were damaged, each with the reason
    verified: bool = True  # False: written before checksums were recorded
    not_bitwise: tuple[str, ...] = ()  # why some rank's RNG state could not be restored


class Unreadable(Exception):
    """A checkpoint's files could not be read (the message says which and why)."""


def differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """'model.dim: checkpoint 32, this run 48' for every compared setting that differs, field by field."""
    out = []
    for key in (k for k in COMPARED if k in current):
        theirs, mine = saved.get(key), current[key]
        if isinstance(theirs, dict) and isinstance(mine, dict):
            out += [f"{key}.{k}: checkpoint {theirs.get(k, 'absent')!r}, this run {mine.get(k, 'absent')!r}"
                    for k in sorted(set(theirs) | set(mine)) if theirs.get(k, ...) != mine.get(k, ...)]
        elif theirs != mine:
            out.append(f"{key}: checkpoint {theirs!r}, this run {mine!r}")
    return out


def check_compatible(saved: dict[str, Any], current: dict[str, Any], *, world: int, path: Path) -> None:
    """Refuse, in one line, a checkpoint whose model, data or layout differs from this run, naming each difference."""
    config = path.parent.parent / "config.yaml"
    settings = f"the settings that wrote it ({config})" if config.is_file() else "the settings that wrote it"
    if saved["world"] != world:
        raise CheckpointError(f"{path} was written by {saved['world']} rank(s), this run has {world}: the data "
                              f"position cannot be replayed exactly; run with {saved['world']} rank(s), or {FRESH}")
    diffs = differences(saved, current)
    if diffs:
        raise CheckpointError(f"{path} does not fit this run: {'; '.join(diffs)}; resume with {settings}, or {FRESH}")


def rank_entries(keys: Mapping[str, Any], *, rank: int, template: dict[str, Any],
                 rng: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """This rank's entries to load, and why an RNG state cannot be restored (if so).

    The data position is always needed; other entries (guard counters) only if the checkpoint has them. Each RNG
    state is loaded if the checkpoint holds it in the shape this run keeps it, else noted: the resume goes on."""
    prefix = f"rank{rank}."
    mine = {k: v for k, v in template.items() if k == "data" or any(x.startswith(f"{prefix}{k}.") for x in keys)}
    restored, notes = {}, []
    for name, value in rng.items():
        meta = keys.get(f"{prefix}rng.{name}")
        if meta is None:
            notes.append(f"the checkpoint holds no {name} RNG state for this rank's device")
        elif isinstance(value, torch.Tensor) and list(getattr(meta, "size", [])) != list(value.shape):
            notes.append(f"the checkpoint's {name} RNG state has another shape")
        else:
            restored[name] = value
    saved = {x[len(prefix) + 4:].split(".")[0] for x in keys if x.startswith(f"{prefix}rng.")}
    notes += [f"the checkpoint's {name} RNG state has no generator here" for name in sorted(saved - set(rng))]
    return {**mine, "rng": restored}, notes


def misfit(state: dict[str, Any], keys: Mapping[str, Any]) -> str | None:
    """The first entry this rank needs that the checkpoint lacks or holds in another shape, and how many more."""
    found = []
    for fqn, value in flatten_state_dict(state)[0].items():  # DCP's own key scheme
        meta = keys.get(fqn)
        if meta is None:
            found.append(f"{fqn} is missing")
        elif isinstance(value, torch.Tensor) and list(getattr(meta, "size", [None])) != list(value.shape):
            found.append(f"{fqn} is {list(getattr(meta, 'size', [])) or 'no tensor'} there, {list(value.shape)} here")
    return f"{found[0]}{f' (and {len(found) - 1} more)' if len(found) > 1 else ''}" if found else None


def read_state(path: Path, *, d: Dist, parts: list[nn.Module], optimizers: list[torch.optim.Optimizer],
               rank_template: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Load the checkpoint's entries this rank holds (collective): (state, RNG notes). Raises CheckpointError when
    the checkpoint does not fit this run, Unreadable when its files cannot be read; alike on every rank."""
    model_sd, optim_sd = (sharded_view(parts, sd) for sd in parts_state(parts, optimizers))
    keys: Mapping[str, Any] = {}
    problem = None
    try:
        keys = dcp.FileSystemReader(str(path)).read_metadata().state_dict_metadata
    except LOAD_ERRORS as err:
        problem = f"file .metadata: {one_line(err)}"
    if problem := collective_problem(d, problem):
        raise Unreadable(problem)
    mine, notes = rank_entries(keys, rank=d.rank, template=rank_template, rng=rng_state(d.device))
    state = {"model": model_sd, "optim": optim_sd, "trainer": {"step": 0, "tokens": 0}, f"rank{d.rank}": mine}
    if problem := collective_problem(d, misfit(state, keys)):
        raise CheckpointError(f"{path} does not fit this run's model, optimizer or trainer: {problem}; resume with "
                              f"the settings that wrote it, or {FRESH}")
    try:
        with quiet_if_single(d.initialized):
            dcp.load(state, checkpoint_id=str(path))
    except LOAD_ERRORS as err:  # failures of any rank (unreadable files) reach every rank
        problem = one_line(err)
    if problem := collective_problem(d, problem):
        raise Unreadable(problem)
    return state, notes


def set_aside(paths: list[Path], d: Dist) -> None:
    """Rename damaged checkpoints to step-N.corrupt: kept for inspection, never tried again."""
    if d.is_main:
        for path in paths:
            target = path.with_name(path.name + ".corrupt")
            shutil.rmtree(target, ignore_errors=True)
            path.rename(target)
    barrier(d)


def gather_notes(d: Dist, notes: list[str]) -> tuple[str, ...]:
    """Every rank's RNG notes, each once, with the ranks it concerns."""
    ranks: dict[str, list[int]] = {}
    for rank, found in enumerate(all_gather_object(d, notes)):
        for note in found:
            ranks.setdefault(note, []).append(rank)
    return tuple(f"{note} (rank{'s' if len(r) > 1 else ''} {', '.join(map(str, r))})" for note, r in ranks.items())


def report(resumed: Resumed) -> None:
    """Print what was passed over and where the run resumed; warn (stderr) if the resume is not bitwise."""
    for passed in resumed.passed_over:
        print(f"passing over {passed}; set aside as .corrupt", flush=True)
    instead = f"resuming from {Path(resumed.path).name} instead" if resumed.passed_over else "resumed from"
    unverified = "; unverified: written before checksums were recorded" if not resumed.verified else ""
    print(f"{instead} {resumed.path} at step {resumed.step} ({resumed.tokens:,} tokens){unverified}", flush=True)
    if resumed.not_bitwise:
        print(f"warning: resume is not bitwise: {'; '.join(resumed.not_bitwise)}", file=sys.stderr, flush=True)


def start_fresh(run_dir: Path, *, d: Dist, announce: bool, overwrite: bool) -> None:
    """checkpoint.resume=false: refuse an earlier run in the folder unless overwrite, else move it aside (collective,
    rank 0 decides so every rank stops or goes on alike), saying so in one line."""
    problem = broadcast_object(d, fresh_start_problem(run_dir, overwrite=overwrite) if d.is_main else None)
    if problem:
        raise ConfigError(problem)
    moved = broadcast_object(d, move_aside(run_dir) if d.is_main else None)
    if moved is not None and announce:
        print(describe_moved(moved), flush=True)


def load_latest(root: str | Path, *, d: Dist, parts: list[nn.Module], optimizers: list[torch.optim.Optimizer],
                meta: dict[str, Any], rank_template: dict[str, Any]) -> Resumed | None:
    """Load the newest checkpoint under root that is intact and fits (collective); None if there is none at all.

    DCP fills only the keys the target holds, so `rank_template` (this rank's current entries) names them."""
    root = Path(root)
    names = broadcast_object(d, [p.name for p in candidates(root)] if d.is_main else None)
    passed: list[tuple[Path, str]] = []
    for path in (root / name for name in reversed(names)):
        saved, problem = verify(path, d)
        if problem is not None:
            passed.append((path, problem))
            continue
        check_compatible(saved, meta, world=d.world, path=path)
        try:
            state, notes = read_state(path, d=d, parts=parts, optimizers=optimizers, rank_template=rank_template)
        except Unreadable as err:
            if "files" in saved:  # its bytes are the ones written: this torch cannot read them, nothing is damaged
                raise CheckpointError(f"{path}: its files match their checksums but cannot be read ({err}); resume "
                                      f"with the torch version that wrote it, or {FRESH}") from None
            passed.append((path, str(err)))
            continue
        try:
            set_parts_state(parts, optimizers, state["model"], state["optim"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"{path}: cannot load into this model/optimizer ({one_line(err)}); resume with the "
                                  f"settings that wrote it, or {FRESH}") from err
        set_aside([p for p, _ in passed], d)
        mine = state[f"rank{d.rank}"]
        set_rng_state(mine.pop("rng"), d.device)
        return Resumed(step=int(state["trainer"]["step"]), tokens=int(state["trainer"]["tokens"]), rank_state=mine,
                       path=str(path), passed_over=tuple(f"{p.name} ({why})" for p, why in passed),
                       verified="files" in saved, not_bitwise=gather_notes(d, notes))
    if passed:
        raise CheckpointError(f"no checkpoint in {root} loads: " + "; ".join(f"{p.name}: {why}" for p, why in passed)
                              + f"; {FRESH}")
    return None
