"""Checkpoints with torch.distributed.checkpoint: model, optimizer, step, data position and RNG of every rank.

Layout: <run>/checkpoints/step-00000100/ holds DCP's files plus `meta.json` (step, model shape, data fingerprint,
world size, and the size and SHA-256 of every file). A checkpoint is written to `step-N.tmp`; meta.json is the
last file written (fsynced), then the folder is renamed, so a crash mid-save never leaves a folder that looks
complete, and older checkpoints are pruned only after that. Non-finite weights or optimizer state are refused,
so a diverged run never replaces a good checkpoint. A resume verifies each file against meta.json and falls back
to the newest checkpoint that verifies and loads, setting the others aside as `step-N.corrupt`. Each rank stores
its own data position and RNG state under `rank<r>`, which makes a resumed run replay the uninterrupted one.
"""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from training.distributed import Dist, all_gather_object, barrier, broadcast_object
from training.integrity import describe_files, file_problem, fsync_dir, nonfinite_entries, write_durably
from training.rng import rng_state, set_rng_state

PREFIX = "step-"
COMPLETE = re.compile(rf"{PREFIX}(\d+)")  # step-N exactly: not .tmp (being written), .old, .corrupt (set aside)
FLAT = StateDictOptions(flatten_optimizer_state_dict=True)  # optimizer state keyed by parameter name
META = "meta.json"
REQUIRED = ("data", "rng")  # per-rank entries every checkpoint has; others (guard) may be absent from older ones
LOAD_ERRORS = (Exception, CheckpointException)  # DCP's CheckpointException derives from BaseException


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed into this run; the message says what differs and what to do."""


@dataclass(frozen=True)
class Resumed:
    """What a loaded checkpoint gives back besides the weights and optimizer state."""

    step: int
    tokens: int
    rank_state: dict[str, Any]  # this rank's entries (data position, guard counters) without the RNG
    path: str
    passed_over: tuple[str, ...] = ()  # newer checkpoints that did not verify or load, each with the reason
    verified: bool = True  # False: written before checksums were recorded


@contextlib.contextmanager
def quiet_if_single(initialized: bool) -> Iterator[None]:
    """DCP warns that it 'assumes' one process when no group exists; in a one-process run that is the intent."""
    with warnings.catch_warnings():
        if not initialized:
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def step_dir(root: Path, step: int) -> Path:
    return root / f"{PREFIX}{step:08d}"


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints (named step-N, meta.json present), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and COMPLETE.fullmatch(p.name) and (p / META).is_file()]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX):]))


def parts_state(parts: list[nn.Module], optimizers: list[torch.optim.Optimizer]) -> tuple[dict, dict]:
    """Model and optimizer state of this rank's model parts, keyed by the full model's parameter names.

    A pipeline stage keeps the names it had in the whole model (layers.7.attn...), so the parts of all ranks
    together form one model's state: a checkpoint exports, or resumes, whatever wrote it."""
    model_sd: dict[str, Any] = {}
    optim_sd: dict[str, Any] = {}
    for part, optimizer in zip(parts, optimizers, strict=True):
        m, o = get_state_dict(part, optimizer, options=FLAT)
        model_sd.update(m)
        optim_sd.update(o)
    return model_sd, optim_sd


def set_parts_state(parts: list[nn.Module], optimizers: list[torch.optim.Optimizer], model_sd: dict,
                    optim_sd: dict) -> None:
    for part, optimizer in zip(parts, optimizers, strict=True):
        mine = {k for k in part.state_dict()}
        set_state_dict(part, optimizer, model_state_dict={k: v for k, v in model_sd.items() if k in mine},
                       optim_state_dict=optim_sd, options=FLAT)


def one_line(err: BaseException) -> str:
    """The first line of an error; for DCP's CheckpointException, of the first rank's own error."""
    if isinstance(err, CheckpointException) and err.failures:
        err = next(iter(err.failures.values()))[0]
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def refuse_nonfinite(d: Dist, state: dict[str, Any], *, step: int, root: Path) -> None:
    """Raise on every rank if any rank's weights or optimizer state hold NaN or inf (collective)."""
    bad = [f"rank {r}: {found[0]}" for r, found in enumerate(all_gather_object(d, nonfinite_entries(state))) if found]
    if bad:
        good = list_checkpoints(root)
        raise CheckpointError(f"refusing to save step {step}: the state is not finite ({'; '.join(bad)}); training "
                              f"diverged, so {good[-1] if good else 'no checkpoint'} stays the newest: lower optim.lr or "
                              "check the data, then resume from it")


def publish(tmp: Path, final: Path) -> None:
    """Rename a finished tmp folder to its final name (replacing one of the same step) and make it durable."""
    old = final.with_name(final.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def save(root: str | Path, *, d: Dist, step: int, tokens: int, parts: list[nn.Module],
         optimizers: list[torch.optim.Optimizer], rank_state: dict[str, Any], meta: dict[str, Any],
         keep: int) -> Path:
    """Write step `step` for every rank (collective: all ranks call it), then prune to the newest `keep`."""
    root = Path(root)
    final = step_dir(root, step)
    tmp = final.with_name(final.name + ".tmp")
    model_sd, optim_sd = parts_state(parts, optimizers)
    refuse_nonfinite(d, {"model": model_sd, "optim": optim_sd}, step=step, root=root)
    if d.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(d)
    state = {"model": model_sd, "optim": optim_sd, "trainer": {"step": step, "tokens": tokens},
             f"rank{d.rank}": {**rank_state, "rng": rng_state()}}
    with quiet_if_single(d.initialized):
        dcp.save(state, checkpoint_id=str(tmp))  # DCP fsyncs each file it writes
    barrier(d)
    names = broadcast_object(d, sorted(p.name for p in tmp.iterdir() if p.is_file()) if d.is_main else None)
    records = all_gather_object(d, describe_files(tmp, names[d.rank::d.world]))  # each rank hashes a share
    if d.is_main:
        files = {name: record for part in records for name, record in part.items()}
        write_durably(tmp / META, json.dumps({**meta, "step": step, "tokens": tokens, "world": d.world,
                                              "files": files}, indent=2))
        publish(tmp, final)
        if keep > 0:
            for old in list_checkpoints(root)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    barrier(d)
    return final


def check_compatible(saved: dict[str, Any], current: dict[str, Any], *, world: int, path: Path) -> None:
    """Refuse a checkpoint whose model, data or layout differs from this run, naming the difference."""
    if saved.get("world") != world:
        raise CheckpointError(f"{path} was written by {saved.get('world')} rank(s), this run has {world}: the data "
                              f"position cannot be replayed exactly; run with {saved.get('world')} rank(s), or start "
                              "fresh with checkpoint.resume=false or a new output folder")
    for key in ("model", "data", "tokens_per_step", "trainer"):
        if key in current and saved.get(key) != current[key]:
            raise CheckpointError(f"{path}: {key} differs from this run's\n  checkpoint: {saved.get(key)}\n  this run:   "
                                  f"{current[key]}\nresume with the config that wrote it, or start fresh with "
                                  "checkpoint.resume=false or a new output folder")


def read_meta(path: Path) -> dict[str, Any]:
    """A checkpoint's meta.json, or a CheckpointError naming the file and what is wrong with it."""
    try:
        saved = json.loads((path / META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"file {META}: unreadable ({one_line(err)})") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"file {META}: a JSON {type(saved).__name__}, not an object")
    return saved


def verify(path: Path, d: Dist) -> tuple[dict[str, Any] | None, str | None]:
    """(meta.json, None) if every recorded file is intact, else (meta or None, the first problem); collective:
    rank 0 reads meta.json, each rank checks a share of the files, and all ranks get the same answer."""
    found: tuple[dict | None, str | None] = (None, None)
    if d.is_main:
        try:
            found = (read_meta(path), None)
        except CheckpointError as err:
            found = (None, str(err))
    saved, problem = broadcast_object(d, found)
    if problem is not None or "files" not in saved:  # no "files": written before checksums were recorded
        return saved, problem
    names = sorted(saved["files"])
    mine = next((p for n in names[d.rank::d.world] if (p := file_problem(path, n, saved["files"][n]))), None)
    problems = [p for p in all_gather_object(d, mine) if p]
    return saved, problems[0] if problems else None


def collective_problem(d: Dist, problem: str | None) -> str | None:
    """The first rank's problem, on every rank, so all ranks take the same branch."""
    return next((p for p in all_gather_object(d, problem) if p), None)


def read_state(path: Path, *, d: Dist, parts: list[nn.Module], optimizers: list[torch.optim.Optimizer],
               rank_template: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Load the checkpoint's entries this rank holds (collective); (state, None) or (None, why it failed)."""
    model_sd, optim_sd = parts_state(parts, optimizers)
    mine: dict[str, Any] = {**rank_template, "rng": rng_state()}
    problem = None
    try:
        keys = dcp.FileSystemReader(str(path)).read_metadata().state_dict_metadata
        mine = {k: v for k, v in mine.items() if k in REQUIRED or any(x.startswith(f"rank{d.rank}.{k}.") for x in keys)}
    except LOAD_ERRORS as err:
        problem = f"file .metadata: {one_line(err)}"
    if problem := collective_problem(d, problem):
        return None, problem
    state = {"model": model_sd, "optim": optim_sd, "trainer": {"step": 0, "tokens": 0}, f"rank{d.rank}": mine}
    try:
        with quiet_if_single(d.initialized):
            dcp.load(state, checkpoint_id=str(path))
    except LOAD_ERRORS as err:  # failures of any rank (missing keys, shapes, unreadable files) reach every rank
        problem = one_line(err)
    problem = collective_problem(d, problem)
    return (None, problem) if problem else (state, None)


def set_aside(paths: list[Path], d: Dist) -> None:
    """Rename checkpoints that failed to step-N.corrupt: kept for inspection, never tried or pruned again."""
    if d.is_main:
        for path in paths:
            target = path.with_name(path.name + ".corrupt")
            shutil.rmtree(target, ignore_errors=True)
            path.rename(target)
    barrier(d)


def load_latest(root: str | Path, *, d: Dist, parts: list[nn.Module], optimizers: list[torch.optim.Optimizer],
                meta: dict[str, Any], rank_template: dict[str, Any]) -> Resumed | None:
    """Load the newest checkpoint under root that verifies and loads (collective); None if there is none at all.

    DCP fills only the keys the target holds, so `rank_template` (this rank's current entries) names them."""
    root = Path(root)
    names = broadcast_object(d, [p.name for p in list_checkpoints(root)] if d.is_main else None)
    passed: list[tuple[Path, str]] = []
    for path in (root / name for name in reversed(names)):
        saved, problem = verify(path, d)
        state = None
        if problem is None:
            check_compatible(saved, meta, world=d.world, path=path)
            state, problem = read_state(path, d=d, parts=parts, optimizers=optimizers, rank_template=rank_template)
        if problem is not None:
            passed.append((path, problem))
            continue
        try:
            set_parts_state(parts, optimizers, state["model"], state["optim"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"{path}: cannot load into this model/optimizer ({one_line(err)}); resume with the "
                                  "config that wrote it, or start fresh with checkpoint.resume=false") from err
        set_aside([p for p, _ in passed], d)
        mine = state[f"rank{d.rank}"]
        set_rng_state(mine.pop("rng"))
        return Resumed(step=int(state["trainer"]["step"]), tokens=int(state["trainer"]["tokens"]), rank_state=mine,
                       path=str(path), passed_over=tuple(f"{p.name} ({why})" for p, why in passed),
                       verified="files" in saved)
    if passed:
        raise CheckpointError(f"no checkpoint in {root} loads: " + "; ".join(f"{p.name}: {why}" for p, why in passed)
                              + "; start fresh with checkpoint.resume=false or another output folder")
    return None


def resolve(path: str | Path) -> Path:
    """A checkpoint folder itself, or the newest complete one of a run folder (or of its checkpoints/)."""
    path = Path(path)
    if (path / META).is_file():
        return path
    found = list_checkpoints(path / "checkpoints") or list_checkpoints(path)
    if not found:
        raise CheckpointError(f"{path}: no checkpoint here; pass a run folder or its checkpoints/step-N folder")
    return found[-1]


def load_model_weights(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """Only the weights of a checkpoint (export, evaluation), in one process, verified and finite; returns meta."""
    path = resolve(path)
    older = [p.name for p in list_checkpoints(path.parent) if p.name < path.name]
    hint = f"pass an older one, e.g. {path.parent / older[-1]}" if older else "no older checkpoint is left"
    try:
        saved = read_meta(path)
    except CheckpointError as err:
        raise CheckpointError(f"{path} is corrupt ({err}); {hint}") from None
    problem = next((p for n, r in sorted(saved.get("files", {}).items()) if (p := file_problem(path, n, r))), None)
    if problem:
        raise CheckpointError(f"{path} is corrupt ({problem}); {hint}")
    state = {"model": model.state_dict()}
    try:
        with quiet_if_single(False):
            dcp.load(state, checkpoint_id=str(path))
    except LOAD_ERRORS as err:
        raise CheckpointError(f"{path}: cannot load the weights ({one_line(err)}); {hint}") from None
    model.load_state_dict(state["model"])
    bad = nonfinite_entries(state["model"])
    if bad:
        raise CheckpointError(f"{path}: the weights are not finite ({bad[0]}{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}"
                              f"), saved after training diverged; {hint}")
    return saved
