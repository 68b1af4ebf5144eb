"""Checkpoints with torch.distributed.checkpoint: model, optimizer, step, data position and RNG of every rank.

Layout: <run>/checkpoints/step-00000100/ holds DCP's files plus `meta.json` (step, model shape, data fingerprint,
world size, and the size and SHA-256 of every file). A checkpoint is written to `step-N.tmp`; meta.json is the
last file written (fsynced), then the folder is renamed, so a crash mid-save never leaves a folder that looks
complete, and older checkpoints are pruned only after that. Non-finite weights or optimizer state are refused,
so a diverged run never replaces a good checkpoint. Each rank stores its own data position and RNG state under
`rank<r>`, which makes a resumed run replay the uninterrupted one (training/resume.py loads them).

Pruning keeps the newest `keep` checkpoints up to the step just saved; a later step-N belongs to another history
and is never deleted. Leftovers older than the oldest checkpoint kept go with it: `step-N.tmp` (a crashed save),
`step-N.old` (a crashed replace) and `step-N.corrupt` (set aside by a resume), except the newest `.corrupt`, kept
for inspection. With keep=0 nothing is deleted.
"""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from training.distributed import Dist, all_gather_object, barrier, broadcast_object
from training.integrity import (describe_files, file_problem, fsync_dir, meta_problem, nonfinite_entries,
                                write_durably)
from training.rng import rng_state

PREFIX = "step-"
COMPLETE = re.compile(rf"{PREFIX}(\d+)")  # step-N exactly: not .tmp (being written), .old, .corrupt (set aside)
LEFTOVER = re.compile(rf"{PREFIX}(\d+)\.(tmp|old|corrupt)")
FLAT = StateDictOptions(flatten_optimizer_state_dict=True)  # optimizer state keyed by parameter name
META = "meta.json"
LOAD_ERRORS = (Exception, CheckpointException)  # DCP's CheckpointException derives from BaseException


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed into this run; the message says what differs and what to do."""


@contextlib.contextmanager
def quiet_if_single(initialized: bool) -> Iterator[None]:
    """DCP warns that it 'assumes' one process when no group exists; in a one-process run that is the intent."""
    with warnings.catch_warnings():
        if not initialized:
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def step_dir(root: Path, step: int) -> Path:
    return root / f"{PREFIX}{step:08d}"


def step_of(path: Path) -> int:
    """N of a step-N folder (or of step-N.tmp, .old, .corrupt)."""
    return int(path.name[len(PREFIX):].split(".")[0])


def candidates(root: str | Path) -> list[Path]:
    """Every step-N folder, oldest first, whether complete or not (a resume names those without meta.json)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and COMPLETE.fullmatch(p.name)), key=step_of)


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints (named step-N, meta.json present), oldest first."""
    return [p for p in candidates(root) if (p / META).is_file()]


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


def sharded_view(parts: list[nn.Module], state: dict) -> dict:
    """`state` with each part's split entries as DTensors of the whole tensor (a part that holds rows of a matrix
    split over ranks says so with a `to_checkpoint` method: vocab_pipeline.VocabLayers)."""
    for part in parts:
        if hasattr(part, "to_checkpoint"):
            state = part.to_checkpoint(state)
    return state


def set_parts_state(parts: list[nn.Module], optimizers: list[torch.optim.Optimizer], model_sd: dict,
                    optim_sd: dict) -> None:
    for part in parts:
        if hasattr(part, "from_checkpoint"):
            model_sd, optim_sd = part.from_checkpoint(model_sd), part.from_checkpoint(optim_sd)
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
    state = {"model": sharded_view(parts, model_sd), "optim": sharded_view(parts, optim_sd),
             "trainer": {"step": step, "tokens": tokens}, f"rank{d.rank}": {**rank_state, "rng": rng_state(d.device)}}
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
        prune(root, step=step, keep=keep)
    barrier(d)
    return final


def prune(root: Path, *, step: int, keep: int) -> None:
    """Delete checkpoints up to `step` but the newest `keep`, and older leftovers (see the module docstring)."""
    if keep <= 0:
        return
    mine = [p for p in list_checkpoints(root) if step_of(p) <= step]  # a later step is another run's history
    oldest = step_of(mine[-keep:][0]) if mine else step
    leftovers = sorted((p for p in root.iterdir() if p.is_dir() and LEFTOVER.fullmatch(p.name)), key=step_of)
    newest_corrupt = next((p for p in reversed(leftovers) if p.name.endswith(".corrupt")), None)
    stale = [p for p in leftovers if step_of(p) < oldest and p != newest_corrupt]
    for old in mine[:-keep] + stale:
        shutil.rmtree(old, ignore_errors=True)


def read_meta(path: Path) -> dict[str, Any]:
    """A checkpoint's meta.json, checked field by field, or a CheckpointError naming what is wrong with it."""
    if not (path / META).exists():
        raise CheckpointError(f"no {META}: an interrupted save or copy")
    try:
        saved = json.loads((path / META).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"file {META}: unreadable ({one_line(err)})") from None
    problem = meta_problem(saved, step=step_of(path) if COMPLETE.fullmatch(path.name) else None)
    if problem:
        raise CheckpointError(f"file {META}: {problem}")
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


def resolve(path: str | Path) -> Path:
    """A checkpoint folder itself, or the newest complete one of a run folder (or of its checkpoints/)."""
    path = Path(path)
    if (path / META).is_file():
        return path
    found = list_checkpoints(path / "checkpoints") or list_checkpoints(path)
    if not found:
        raise CheckpointError(f"{path}: no checkpoint here; pass a run folder or its checkpoints/step-N folder")
    return found[-1]


def older_hint(path: Path) -> str:
    older = [p for p in list_checkpoints(path.parent) if p.name < path.name]
    return f"pass an older one, e.g. {older[-1]}" if older else "no older checkpoint is left"


def verified_meta(path: Path) -> dict[str, Any]:
    """meta.json of one checkpoint folder whose files all match it (one process), or a CheckpointError."""
    try:
        saved = read_meta(path)
    except CheckpointError as err:
        raise CheckpointError(f"{path} is corrupt ({err}); {older_hint(path)}") from None
    problem = next((p for n, r in sorted(saved.get("files", {}).items()) if (p := file_problem(path, n, r))), None)
    if problem:
        raise CheckpointError(f"{path} is corrupt ({problem}); {older_hint(path)}")
    return saved


def load_model_weights(path: str | Path, model: nn.Module, *, verified: dict[str, Any] | None = None) -> dict[str, Any]:
    """Only the weights of a checkpoint (export, evaluation), in one process, verified and finite; returns meta.

    `verified`: the checkpoint's meta.json from verified_meta, so that its files are not hashed twice."""
    path = resolve(path)
    saved = verified if verified is not None else verified_meta(path)
    hint = older_hint(path)
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
