"""Edges of training/data/loader.py (issue 16 mutation survivors): config defaults and bounds, the stream of
rows against a walk written from the documented order rule, positions, state checks, eval batch counts.

Expected orders come from `_perm`, the rule of training/data/order.py's docstring written out here (argsort of
raw PCG64 output seeded by the key), never from the loader or order functions under test."""
from __future__ import annotations

import dataclasses
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from core.shards import ShardInfo, ShardMeta, pack, shard_name, write_shard
from training.data.loader import (LoaderConfig, TokenLoader, TrainingData, open_training_data, stream_of,
                                  stream_pieces)
from training.data.order import Position, build_units

SEQ = 4
META = ShardMeta(seq_len=SEQ, vocab_size=10_000, eos_id=0, tokenizer_sha256="e" * 64)
FROZEN = (dataclasses.FrozenInstanceError, TypeError)  # slots=True frozen classes raise TypeError on Python 3.11


def _perm(n: int, *key: int) -> np.ndarray:
    return np.argsort(np.random.PCG64(np.random.SeedSequence(list(key))).random_raw(n), kind="stable")


def walk(rows_per_unit: list[int], *, seed: int, stream: int, streams: int,
         epochs: int) -> list[tuple[int, int, int, int, int]]:
    """(epoch, index, unit, k, row) of every row a stream serves, in order, by the documented rule: the k-th row
    served from a unit is its row `row`."""
    out = []
    for epoch in range(epochs):
        for index, unit in enumerate(_perm(len(rows_per_unit), seed, epoch)[stream::streams]):
            for k, row in enumerate(_perm(rows_per_unit[unit], seed, epoch, int(unit))):
                out.append((epoch, index, int(unit), k, int(row)))
    return out


# ---------------------------------------------------------------- LoaderConfig


def test_loader_config_defaults():
    cfg = LoaderConfig(batch_size=2)
    assert (cfg.seed, cfg.num_workers, cfg.prefetch_factor, cfg.pin_memory) == (0, 0, None, False)


def test_loader_config_is_frozen_keyword_only_and_slotted():
    cfg = LoaderConfig(batch_size=2)
    assert not hasattr(cfg, "__dict__")
    with pytest.raises(FROZEN):
        cfg.batch_size = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        LoaderConfig(2)  # type: ignore[misc]


@pytest.mark.parametrize("kwargs", [dict(batch_size=1), dict(batch_size=1, seed=0, num_workers=0),
                                    dict(batch_size=1, num_workers=1, prefetch_factor=1),
                                    dict(batch_size=1, num_workers=2, prefetch_factor=4)])
def test_loader_config_accepts_the_lowest_values(kwargs):
    assert LoaderConfig(**kwargs).batch_size == 1


@pytest.mark.parametrize("kwargs,match", [
    (dict(batch_size=0), "batch_size"), (dict(batch_size=1, seed=-1), "seed"),
    (dict(batch_size=1, num_workers=-1), "num_workers"),
    (dict(batch_size=1, prefetch_factor=2), "prefetch_factor .* needs num_workers > 0"),
    (dict(batch_size=1, num_workers=1, prefetch_factor=0), "prefetch_factor"),
])
def test_loader_config_refuses_each_value_below_its_bound(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LoaderConfig(**kwargs)


# ---------------------------------------------------------------- stream_pieces and positions


def fake_split(rows_per_group: list[list[int]]) -> tuple[list[ShardInfo], object]:
    """ShardInfos without files and a reader whose row r of (shard s, group g) is [s, g, r, 0, 0]."""
    infos = [ShardInfo(f"s{s}", META, tuple(groups)) for s, groups in enumerate(rows_per_group)]

    def reader(info, group):
        s = int(info.path[1:])
        n = info.row_group_rows[group]
        return np.array([[s, group, r, 0, 0] for r in range(n)], dtype=np.int32).reshape(n, SEQ + 1)

    return infos, reader


@pytest.mark.parametrize("start,stream,streams,chunk", [
    (Position(0, 0, 0), 0, 1, 2), (Position(0, 1, 2), 0, 1, 3), (Position(0, 0, 1), 1, 2, 1),
    (Position(1, 1, 0), 1, 2, 4), (Position(0, 2, 2), 0, 1, 5),
])
def test_stream_pieces_follow_the_documented_order_from_any_start(start, stream, streams, chunk):
    layout = [[3, 5], [4], [3, 6]]
    infos, reader = fake_split(layout)
    units = build_units(layout)
    unit_key = [(int(s), int(g)) for s, g in zip(units.shard, units.group)]
    order = walk([int(n) for n in units.rows], seed=7, stream=stream, streams=streams, epochs=40)
    first = next(i for i, (e, idx, _u, _k, _r) in enumerate(order) if (e, idx) == (start.epoch, start.index))
    first += start.row
    want = [(*unit_key[u], r) for _e, _i, u, _k, r in order[first:]]
    pieces = stream_pieces(infos, units, seed=7, stream=stream, streams=streams, start=start, chunk_rows=chunk,
                           reader=reader)
    got, sizes = [], []
    for piece in islice(pieces, 40):
        sizes.append(len(piece))
        got += [tuple(int(x) for x in row[:3]) for row in piece]
        assert len({tuple(row[:2]) for row in piece.tolist()}) == 1  # a piece never spans two row groups
    assert got == want[:len(got)] and len(got) >= 30
    assert max(sizes) == chunk and min(sizes) >= 1


def test_stream_of_by_hand():
    assert stream_of(2, 1, workers=3) == 7
    assert stream_of(3, 0, workers=0) == 3 and stream_of(3, 0, workers=1) == 3


def write_split(folder: Path, sizes: list[int], group: int) -> list[list[int]]:
    """Shards whose row r of the whole split starts with token r * SEQ; returns the row-group sizes."""
    first, layout = 0, []
    for i, n in enumerate(sizes):
        rows, _ = pack(np.arange(first, first + n * SEQ + 1, dtype=np.int32), SEQ)
        write_shard(folder / shard_name(i, len(sizes)), rows, META, row_group_rows=group)
        layout.append([min(group, n - k) for k in range(0, n, group)])
        first += n * SEQ
    return layout


@pytest.mark.parametrize("workers,rank,world", [(0, 0, 1), (0, 1, 2), (1, 1, 2), (2, 1, 2), (3, 0, 1)])
def test_position_of_each_batch_equals_the_walk(tmp_path, workers, rank, world):
    layout = write_split(tmp_path, [7, 5, 9], group=3)  # units of 3, 3, 1 | 3, 2 | 3, 3, 3 rows
    bs, seed = 3, 5
    loader = TokenLoader(tmp_path, LoaderConfig(batch_size=bs, seed=seed, num_workers=workers), rank=rank,
                         world=world)
    per_rank, streams = max(workers, 1), world * max(workers, 1)
    rows = [n for groups in layout for n in groups]
    for b in range(20):
        slot = b % per_rank  # batch b of the rank comes from its worker b % W
        served = b // per_rank * bs  # rows that worker served before it
        e, i, _u, k, _r = walk(rows, seed=seed, stream=rank * per_rank + slot, streams=streams, epochs=8)[served]
        assert loader.position(b) == Position(e, i, k), b
    assert loader.position() == loader.position(0)


def test_loader_batches_are_the_walk_for_a_single_stream(tmp_path):
    layout = write_split(tmp_path, [7, 5], group=3)
    loader = TokenLoader(tmp_path, LoaderConfig(batch_size=4, seed=2))
    rows = [n for groups in layout for n in groups]
    firsts = np.cumsum([0] + rows)  # split row number of each unit's first row
    want = [int(firsts[u] + r) * SEQ for _e, _i, u, _k, r in walk(rows, seed=2, stream=0, streams=1, epochs=3)]
    got = [int(x) for inputs, _ in islice(iter(loader), 6) for x in inputs[:, 0]]
    assert got == want[:24] and loader.batches == 6


# ---------------------------------------------------------------- state


def test_a_state_missing_a_key_or_of_another_format_is_refused(tmp_path):
    write_split(tmp_path, [6], group=3)
    loader = TokenLoader(tmp_path, LoaderConfig(batch_size=2))
    state = loader.state_dict()
    assert state["format"] == "refinery.loader/1" and state["batches"] == 0 and state["rows"] == 6
    partial = {k: v for k, v in state.items() if k != "rows"}
    with pytest.raises(ValueError, match=r"not a refinery.loader/1 loader state \(format 'refinery.loader/1', missing "
                                         r"\['rows'\]\)"):
        loader.load_state_dict(partial)
    with pytest.raises(ValueError, match="format 'other'"):
        loader.load_state_dict({**state, "format": "other"})
    loader.load_state_dict({**state, "batches": 4})
    assert loader.batches == 4
    inputs, targets = next(iter(loader))  # a one-shard split iterates (batch 4 of its single stream)
    assert inputs.shape == targets.shape == (2, SEQ) and loader.batches == 5


@pytest.mark.parametrize("saved,now,ok", [(0, 1, True), (1, 0, True), (1, 2, False), (2, 1, False), (2, 3, False)])
def test_zero_and_one_workers_resume_each_other_and_no_other_counts(tmp_path, saved, now, ok):
    write_split(tmp_path, [9], group=3)
    state = TokenLoader(tmp_path, LoaderConfig(batch_size=2, num_workers=saved)).state_dict()
    other = TokenLoader(tmp_path, LoaderConfig(batch_size=2, num_workers=now))
    if ok:
        other.load_state_dict(state)
    else:
        with pytest.raises(ValueError, match=f"workers: saved {saved}, now {now}"):
            other.load_state_dict(state)


# ---------------------------------------------------------------- open_training_data


def test_training_data_is_a_frozen_slotted_record(tmp_path):
    write_split(tmp_path / "train", [6], group=3)
    data = open_training_data(DataOptions(str(tmp_path)), micro_batch_size=2, eval_batches=0, rank=0, world=1)
    assert isinstance(data, TrainingData) and not hasattr(data, "__dict__")
    with pytest.raises(FROZEN):
        data.valid = None  # type: ignore[misc]


@dataclasses.dataclass
class DataOptions:
    path: str
    valid_path: str | None = None
    num_workers: int = 0
    seed: int = 0
    holdout_shards: int | None = None


@pytest.mark.parametrize("eval_batches,world,want", [(1, 2, 1), (3, 2, 1), (4, 2, 2), (5, 1, 5)])
def test_eval_batches_are_split_over_ranks_and_at_least_one_each(tmp_path, eval_batches, world, want):
    write_split(tmp_path / "train", [6], group=3)
    write_split(tmp_path / "valid", [20], group=4)
    data = open_training_data(DataOptions(str(tmp_path)), micro_batch_size=2, eval_batches=eval_batches, rank=0,
                              world=world)
    assert len(data.valid) == want
