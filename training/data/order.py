"""The training order as pure index arithmetic: which (shard, row group) and row each stream reads next.

A unit is one non-empty row group of one shard. Epoch e permutes all units with a generator seeded by
(seed, e); stream s of S = ranks * workers takes `perm_e[s::S]`, and the rows inside a unit are permuted with
(seed, e, unit). Streams are endless: epoch e + 1 follows epoch e. Because every unit's row count is in the
Parquet footers, the position after n rows is computed, never replayed (`locate`). Pure numpy, no torch.

Permutations argsort raw PCG64 output instead of calling `Generator.permutation`: NumPy keeps the bit
generator and `SeedSequence` streams stable across releases but not the `Generator` methods (NEP 19), and a
checkpoint must resume into the same order after an upgrade.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass(frozen=True, slots=True)
class Units:
    """The reading units of a split, in shard-name then row-group order."""

    shard: np.ndarray
    group: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a stream reads next: epoch, index into its unit list of that epoch, row inside that unit."""

    epoch: int
    index: int
    row: int


def build_units(row_group_rows: Sequence[Sequence[int]]) -> Units:
    """One unit per non-empty row group; empty groups would only make streams that read nothing."""
    triples = [(s, g, n) for s, groups in enumerate(row_group_rows) for g, n in enumerate(groups) if n > 0]
    shard, group, rows = (np.array(col, dtype=np.int64) for col in zip(*triples)) if triples else (
        np.empty(0, np.int64),) * 3
    return Units(shard=shard, group=group, rows=rows)


def fingerprint(paths: Sequence[str], row_group_rows: Sequence[Sequence[int]]) -> str:
    """sha256 of shard names and row-group sizes: the order depends on both, not on where the folder lives."""
    layout = [[Path(p).name, list(map(int, groups))] for p, groups in zip(paths, row_group_rows)]
    return hashlib.sha256(json.dumps(layout).encode()).hexdigest()


def permutation(n: int, *key: int) -> np.ndarray:
    """A uniform permutation of range(n) fixed by `key` (non-negative ints), stable across NumPy releases."""
    raw = np.random.PCG64(np.random.SeedSequence(list(key))).random_raw(n)
    return np.argsort(raw, kind="stable")


def stream_units(units: int, *, seed: int, epoch: int, stream: int, streams: int) -> np.ndarray:
    """The unit ids stream `stream` of `streams` reads in `epoch`, in reading order."""
    return permutation(units, seed, epoch)[stream::streams]


def row_order(rows: int, *, seed: int, epoch: int, unit: int) -> np.ndarray:
    """The order in which the rows of one unit are served in one epoch."""
    return permutation(rows, seed, epoch, unit)


def check_streams(units: Units, *, streams: int, where: str) -> None:
    """Every stream must get at least one unit per epoch; with perm[s::S] that means S <= units."""
    if streams > len(units):
        raise ValueError(
            f"{where}: {len(units)} row groups (units) for {streams} loader streams (ranks x workers), so "
            f"streams {len(units)}..{streams - 1} would never read anything; write more shards or smaller row "
            "groups in python -m pipelines.tokenize, or use fewer loader workers")


def batches_done(batches: int, *, worker: int, workers: int) -> int:
    """How many of the first `batches` batches of a rank worker `worker` served: batch i comes from worker i % W."""
    workers = max(workers, 1)
    return max(0, (batches - worker + workers - 1) // workers)


def worker_role(start: int, *, worker_id: int, workers: int) -> int:
    """The stream slot a fresh DataLoader worker plays when the rank has already served `start` batches."""
    workers = max(workers, 1)
    return (start + worker_id) % workers


def locate(rows_done: int, *, units: Units, seed: int, stream: int, streams: int) -> Position:
    """The position of a stream after it served `rows_done` rows, from the footers' row counts alone."""
    epoch = 0
    while True:
        mine = units.rows[stream_units(len(units), seed=seed, epoch=epoch, stream=stream, streams=streams)]
        total = int(mine.sum())
        if total == 0:
            raise ValueError(f"stream {stream} of {streams} has no rows; check_streams should have refused this layout")
        if rows_done < total:
            ends = np.cumsum(mine)
            index = int(np.searchsorted(ends, rows_done, side="right"))
            return Position(epoch=epoch, index=index, row=rows_done - int(ends[index] - mine[index]))
        rows_done -= total
        epoch += 1
