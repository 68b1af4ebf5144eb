"""Checkpoints with torch.distributed.checkpoint: model, optimizer, step, data position and RNG of every rank.

Layout: <run>/checkpoints/step-00000100/ holds DCP's shards plus `meta.json` (step, model shape, data
fingerprint, world size). A checkpoint is written to `step-N.tmp` and renamed when every rank has finished,
so a crash mid-save never leaves a folder that looks complete. Each rank stores its own data position and
RNG state under `rank<r>`, which is what makes a resumed run replay the uninterrupted one exactly.
"""
from __future__ import annotations

import contextlib
import json
import random
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from training.distributed import Dist, barrier, broadcast_object

PREFIX = "step-"
FLAT = StateDictOptions(flatten_optimizer_state_dict=True)  # optimizer state keyed by parameter name
META = "meta.json"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed into this run; the message says what differs and what to do."""


@dataclass(frozen=True)
class Resumed:
    """What a loaded checkpoint gives back besides the weights and optimizer state."""

    step: int
    tokens: int
    data_state: dict[str, Any]
    path: str


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
    """Complete checkpoints (meta.json present, not .tmp), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    done = [p for p in root.glob(f"{PREFIX}*") if p.is_dir() and not p.name.endswith(".tmp") and (p / META).is_file()]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX):]))


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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


def save(root: str | Path, *, d: Dist, step: int, tokens: int, parts: list[nn.Module],
         optimizers: list[torch.optim.Optimizer], data_state: dict[str, Any], meta: dict[str, Any],
         keep: int) -> Path:
    """Write step `step` for every rank (collective: all ranks call it), then prune to the newest `keep`."""
    root = Path(root)
    final = step_dir(root, step)
    tmp = final.with_name(final.name + ".tmp")
    if d.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(d)
    model_sd, optim_sd = parts_state(parts, optimizers)
    state = {"model": model_sd, "optim": optim_sd, "trainer": {"step": step, "tokens": tokens},
             f"rank{d.rank}": {"data": data_state, "rng": rng_state()}}
    with quiet_if_single(d.initialized):
        dcp.save(state, checkpoint_id=str(tmp))
    barrier(d)
    if d.is_main:
        (tmp / META).write_text(json.dumps({**meta, "step": step, "tokens": tokens, "world": d.world}, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
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


def load_latest(root: str | Path, *, d: Dist, parts: list[nn.Module], optimizers: list[torch.optim.Optimizer],
                meta: dict[str, Any], data_template: dict[str, Any]) -> Resumed | None:
    """Load the newest complete checkpoint under root into model and optimizer (collective); None if there is none.

    DCP fills only the keys the target holds, so `data_template` (the loader's current state) names them."""
    found = list_checkpoints(root)
    path = broadcast_object(d, str(found[-1]) if found else None)
    if path is None:
        return None
    path = Path(path)
    saved = json.loads((path / META).read_text())
    check_compatible(saved, meta, world=d.world, path=path)
    model_sd, optim_sd = parts_state(parts, optimizers)
    state = {"model": model_sd, "optim": optim_sd, "trainer": {"step": 0, "tokens": 0},
             f"rank{d.rank}": {"data": dict(data_template), "rng": rng_state()}}
    try:
        with quiet_if_single(d.initialized):
            dcp.load(state, checkpoint_id=str(path))
    except Exception as err:  # DCP raises CheckpointException wrapping per-rank errors (missing keys, shapes)
        raise CheckpointError(f"{path}: cannot load into this model/optimizer ({err}); resume with the config that "
                              "wrote it, or start fresh with checkpoint.resume=false") from err
    set_parts_state(parts, optimizers, state["model"], state["optim"])
    mine = state[f"rank{d.rank}"]
    set_rng_state(mine["rng"])
    return Resumed(step=int(state["trainer"]["step"]), tokens=int(state["trainer"]["tokens"]),
                   data_state=mine["data"], path=str(path))


def load_model_weights(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """Only the weights of a checkpoint (export, evaluation), in one process; returns its meta.json."""
    path = Path(path)
    if not (path / META).is_file():
        found = list_checkpoints(path / "checkpoints") or list_checkpoints(path)
        if not found:
            raise CheckpointError(f"{path}: no checkpoint here; pass a run folder or its checkpoints/step-N folder")
        path = found[-1]
    state = {"model": model.state_dict()}
    with quiet_if_single(False):
        dcp.load(state, checkpoint_id=str(path))
    model.load_state_dict(state["model"])
    return json.loads((path / META).read_text())
