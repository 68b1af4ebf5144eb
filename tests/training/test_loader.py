"""The token loader: every row once per epoch across ranks x workers, seeded order, exact resume, bounded reads."""
from __future__ import annotations

import weakref
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from core.shards import ShardError, ShardMeta, pack, read_rows, shard_name, write_shard
from training.data.heldout import EvalBatches
from training.data.loader import LoaderConfig, TokenLoader, open_training_data
from training.data.order import build_units, permutation, stream_units
from training.data.splits import check_vocab, resolve_splits

SEQ = 8
META = ShardMeta(seq_len=SEQ, vocab_size=4096, eos_id=0, tokenizer_sha256="t" * 64)
# Uneven files and row groups, one empty file: 37 + 64 + 5 + 100 = 206 rows in 3 + 4 + 2 + 7 = 16 units.
SIZES = (37, 0, 64, 5, 100)
GROUPS = (16, 7, 16, 3, 16)


def write_split(folder: Path, sizes=SIZES, groups=GROUPS, meta=META) -> int:
    """Shards cut from one arange stream, so row r starts with token r * SEQ and ids name rows; returns rows."""
    first = 0
    for i, (n, g) in enumerate(zip(sizes, groups)):
        rows, _ = pack(np.arange(first, first + n * SEQ + 1, dtype=np.int32), SEQ)
        write_shard(folder / shard_name(i, len(sizes)), rows[:n], meta, row_group_rows=g)
        first += n * SEQ + SEQ  # a gap, so rows of different files never share tokens
    return sum(sizes)


@pytest.fixture(scope="module")
def train(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tok") / "train"
    write_split(folder)
    return folder


def row_ids(batches) -> list[int]:
    return [int(x) for inputs, _ in batches for x in inputs[:, 0]]


def take(loader, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(islice(iter(loader), n))


@pytest.mark.parametrize("ranks,workers", [(1, 1), (2, 1), (2, 3), (4, 4)])
def test_every_row_once_per_epoch_in_the_order(train, ranks, workers):
    loader = TokenLoader(train, LoaderConfig(batch_size=3, num_workers=0), rank=0, world=1)
    units, streams = loader.units, ranks * workers
    for epoch in range(3):
        seen = [(int(u), r) for s in range(streams)
                for u in stream_units(len(units), seed=5, epoch=epoch, stream=s, streams=streams)
                for r in range(units.rows[u])]
        assert len(seen) == len(set(seen)) == sum(SIZES)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_streams_cover_each_row_once_in_epoch_zero(train, workers):
    batch, ranks = 4, 2
    per_rank, streams = max(workers, 1), ranks * max(workers, 1)
    served = []
    for rank in range(ranks):
        loader = TokenLoader(train, LoaderConfig(batch_size=batch, num_workers=workers, seed=3), rank=rank, world=ranks)
        batches = take(loader, 2 * 40 * per_rank)
        for slot in range(per_rank):
            stream = rank * per_rank + slot
            first_epoch = loader.units.rows[stream_units(len(loader.units), seed=3, epoch=0, stream=stream,
                                                         streams=streams)].sum()
            served += row_ids(batches[slot::per_rank])[:first_epoch]
    ids = sorted(i // SEQ for i in served)
    assert len(ids) == len(set(ids)) == sum(SIZES)


def test_targets_are_inputs_shifted_by_one(train):
    for inputs, targets in take(TokenLoader(train, LoaderConfig(batch_size=5)), 30):
        assert inputs.dtype == targets.dtype == torch.int64 and inputs.shape == (5, SEQ)
        assert torch.equal(targets[:, :-1], inputs[:, 1:]) and torch.equal(targets, inputs + 1)


def test_seed_fixes_the_order_and_epochs_differ(train):
    def order(seed):
        return row_ids(take(TokenLoader(train, LoaderConfig(batch_size=206, seed=seed)), 2))

    first = order(0)
    assert first == order(0) and first != order(1)
    assert first[:206] != first[206:] and sorted(first[:206]) == sorted(first[206:])
    assert permutation(8, 7, 3).tolist() == [2, 4, 7, 3, 5, 1, 0, 6]  # PCG64 + SeedSequence: pinned across NumPy


@pytest.mark.parametrize("workers", [0, 1, 2])
@pytest.mark.parametrize("rank", [0, 1])
def test_resume_gives_the_uninterrupted_batches(train, workers, rank):
    cfg = LoaderConfig(batch_size=5, num_workers=workers, seed=11)
    whole = take(TokenLoader(train, cfg, rank=rank, world=2), 31)
    for k in (7, 23):  # mid-unit, and after an epoch boundary of some stream
        first = TokenLoader(train, cfg, rank=rank, world=2)
        assert row_ids(take(first, k)) == row_ids(whole[:k])
        resumed = TokenLoader(train, cfg, rank=rank, world=2)
        resumed.load_state_dict(first.state_dict())
        rest = take(resumed, 31 - k)
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(rest, whole[k:]))
    again = TokenLoader(train, cfg, rank=rank, world=2)  # a second iteration continues where the first stopped
    assert row_ids(take(again, 10) + take(again, 21)) == row_ids(whole)
    assert again.state_dict()["epoch"] >= 1


def test_one_and_zero_workers_share_one_stream(train):
    single = TokenLoader(train, LoaderConfig(batch_size=4, num_workers=0))
    take(single, 9)
    worker = TokenLoader(train, LoaderConfig(batch_size=4, num_workers=1))
    worker.load_state_dict(single.state_dict())
    assert row_ids(take(worker, 5)) == row_ids(take(single, 5))


def test_reads_one_row_group_at_a_time_and_never_ahead(train):
    live, reads = [], []

    def counting_reader(info, group):
        reads.append(sum(ref() is not None for ref in live))  # row groups still alive when a new one is read
        rows = read_rows(info, group)
        live.append(weakref.ref(rows))
        return rows

    loader = TokenLoader(train, LoaderConfig(batch_size=6), reader=counting_reader)
    per_epoch = len(loader.units)
    for n, _ in enumerate(loader, start=1):
        pos = loader.position()
        assert len(reads) == pos.epoch * per_epoch + pos.index + (pos.row > 0)  # no read-ahead
        if n == 80:  # a bit over two epochs
            break
    assert max(reads) == 0  # the previous row group is freed before the next one is read


def test_eval_batches_disjoint_across_ranks_and_identical_across_calls(train):
    ranks = [EvalBatches(train, batch_size=4, rank=r, world=3) for r in range(3)]
    ids = [row_ids(list(e)) for e in ranks]
    assert len({len(e) for e in ranks}) == 1 and len(ranks[0]) == 206 // 3 // 4
    flat = [i for part in ids for i in part]
    assert len(flat) == len(set(flat)) == 3 * len(ranks[0]) * 4
    assert row_ids(list(ranks[1])) == ids[1]
    capped = EvalBatches(train, batch_size=4, max_batches=2, rank=2, world=3)
    assert len(capped) == 2 and row_ids(list(capped)) == ids[2][:8]
    for inputs, targets in capped:
        assert torch.equal(targets, inputs + 1)


def test_resolve_splits(tmp_path):
    write_split(tmp_path / "train")
    with pytest.raises(ShardError, match="no validation shards.*holdout_shards"):
        resolve_splits(tmp_path)
    write_split(tmp_path / "valid", sizes=(0,), groups=(4,))
    with pytest.raises(ShardError, match="valid/ missing or empty"):
        resolve_splits(tmp_path)
    held = resolve_splits(tmp_path, holdout_shards=1)
    assert [Path(i.path).name for i in held.valid] == [shard_name(4, 5)] and len(held.train) == 3
    write_split(tmp_path / "valid", sizes=(20,), groups=(8,))
    both = resolve_splits(tmp_path, holdout_shards=1)
    assert len(both.train) == 4 and both.valid[0].rows == 20 and both.meta == META


def test_bad_folders_raise_with_the_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShardError, match="no .parquet token shards"):
        TokenLoader(tmp_path / "empty", LoaderConfig(batch_size=2))
    write_split(tmp_path / "zero", sizes=(0, 0), groups=(4, 4))
    with pytest.raises(ShardError, match="every token shard is empty"):
        TokenLoader(tmp_path / "zero", LoaderConfig(batch_size=2))
    (tmp_path / "text").mkdir()
    pq.write_table(pa.table({"text": ["hello"]}), tmp_path / "text" / "part-0.parquet")
    with pytest.raises(ShardError, match=r"text/part-0.parquet: not a token shard"):
        EvalBatches(tmp_path / "text", batch_size=1)


def test_bad_token_ids_surface_from_a_worker_with_the_path(tmp_path):
    rows, _ = pack(np.arange(0, 4 * SEQ + 1, dtype=np.int32) + 4090, SEQ)
    write_shard(tmp_path / shard_name(0, 1), rows, META, row_group_rows=4)
    with pytest.raises(ShardError, match=r"part-00000-of-00001.parquet: row group 0 has token ids outside \[0, 4096\)"):
        take(TokenLoader(tmp_path, LoaderConfig(batch_size=2, num_workers=1)), 1)


def test_config_mismatches(train):
    with pytest.raises(ValueError, match=r"tokenizer vocabulary 4096 does not fit the model's vocab_size 4000; "
                                         r"set model.vocab_size ≥ 4096 \(or retrain the tokenizer\)"):
        check_vocab(META, 4000)
    with pytest.raises(ValueError, match="tokenizer vocabulary 4096"):
        TokenLoader(train, LoaderConfig(batch_size=2), model_vocab_size=4000)
    TokenLoader(train, LoaderConfig(batch_size=2), model_vocab_size=4096, seq_len=SEQ)
    with pytest.raises(ValueError, match="seq_len 8 .* config says seq_len 16"):
        EvalBatches(train, batch_size=2, seq_len=16)
    with pytest.raises(ValueError, match=r"16 row groups \(units\) for 18 loader streams.*smaller row groups"):
        TokenLoader(train, LoaderConfig(batch_size=2, num_workers=9), rank=0, world=2)


@pytest.mark.parametrize("change,match", [
    (dict(world=4), "ranks: saved 2, now 4"),
    (dict(num_workers=2), "workers: saved 0, now 2"),
    (dict(batch_size=6), "batch_size: saved 5, now 6"),
    (dict(seed=2), "seed: saved 1, now 2"),
    (dict(shards="other"), "shards: saved 4 shards / 206 rows .* now 3 / 201"),
])
def test_mismatched_state_is_refused(train, tmp_path, change, match):
    saved = TokenLoader(train, LoaderConfig(batch_size=5, seed=1), rank=0, world=2)
    take(saved, 3)
    shards = train
    if change.pop("shards", None):
        shards = tmp_path / "other"
        write_split(shards, sizes=(37, 64, 100), groups=(16, 16, 16))
    world = change.pop("world", 2)
    cfg = LoaderConfig(**{"batch_size": 5, "seed": 1, **change})
    with pytest.raises(ValueError, match=match + ".*Resume with the saved settings"):
        TokenLoader(shards, cfg, rank=0, world=world).load_state_dict(saved.state_dict())


def test_foreign_state_and_empty_row_groups(train):
    with pytest.raises(ValueError, match="not a refinery.loader/1 loader state"):
        TokenLoader(train, LoaderConfig(batch_size=5), rank=0, world=2).load_state_dict({"batches": 3})
    units = build_units([[3, 0], [], [2]])
    assert units.rows.tolist() == [3, 2] and units.shard.tolist() == [0, 2] and units.group.tolist() == [0, 0]


def test_open_training_data_from_a_tokenize_output(tmp_path):
    from training.config import DataSection

    write_split(tmp_path / "train")
    write_split(tmp_path / "valid", sizes=(30, 11), groups=(8, 8))
    data = open_training_data(DataSection(path=str(tmp_path), num_workers=0, seed=4), micro_batch_size=3,
                              eval_batches=5, rank=1, world=2)
    assert data.meta == META and len(data.train.infos) == 4 and len(data.valid) == 2
    inputs, targets = next(iter(data.train))
    assert inputs.shape == targets.shape == (3, SEQ)
    no_eval = open_training_data(DataSection(path=str(tmp_path / "train")), micro_batch_size=3, eval_batches=0,
                                 rank=0, world=1)
    assert no_eval.valid is None and no_eval.splits.valid == []
