"""Edges of training/data (issue 16 mutation survivors): rank defaults and bounds, the token-id check and batch
packing, the order arithmetic against brute force, split and held-out bounds, the shard format's shapes.

Every expected value is written out by hand or computed by a brute-force walk in the test, never by the
function under test."""
from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from core.shards import (FORMAT, ShardError, ShardInfo, ShardMeta, inspect_shard, inspect_split, pack,
                         read_rows, rows_table, shard_name, write_shard)
from training.data.batches import fill_batches, read_group, to_tensors
from training.data.heldout import EvalBatches, RowSpan, rank_span, span_pieces
from training.data.order import Position, batches_done, build_units, check_streams, locate, worker_role
from training.data.ranks import data_parallel
from training.data.splits import Splits, check_seq_len, check_vocab, open_split, resolve_splits

SEQ = 4
# Assigning a field of a frozen dataclass with slots=True raises TypeError on Python 3.11 (its __setattr__ calls
# super() from a class that slots re-created), FrozenInstanceError elsewhere; a mutable one raises neither.
FROZEN = (dataclasses.FrozenInstanceError, TypeError)
META = ShardMeta(seq_len=SEQ, vocab_size=1000, eos_id=0, tokenizer_sha256="s" * 64)


def info(rows: tuple[int, ...], *, path: str = "x/part-0.parquet", meta: ShardMeta = META) -> ShardInfo:
    return ShardInfo(path, meta, rows)


def write(folder: Path, sizes: tuple[int, ...], group: int = 4, meta: ShardMeta = META, first: int = 0) -> None:
    """Shards whose row r (counted over the whole split) starts with token first + r * SEQ."""
    for i, n in enumerate(sizes):
        rows = np.arange(first, first + n * SEQ, SEQ, dtype=np.int32)[:, None] + np.arange(SEQ + 1, dtype=np.int32)
        write_shard(folder / shard_name(i, len(sizes)), rows.reshape(n, SEQ + 1), meta, row_group_rows=group)
        first += n * SEQ


# ---------------------------------------------------------------- ranks.py


def test_data_parallel_defaults_without_torch_distributed():
    assert not torch.distributed.is_initialized()
    assert data_parallel(None, None) == (0, 1)
    assert data_parallel(0, None) == (0, 1)
    assert data_parallel(None, 3) == (0, 3)
    assert data_parallel(2, 3) == (2, 3)


@pytest.mark.parametrize("rank,world,ok", [(0, 1, True), (1, 2, True), (-1, 2, False), (2, 2, False),
                                           (1, 1, False), (0, 0, False)])
def test_data_parallel_rank_must_be_in_zero_to_world(rank, world, ok):
    if ok:
        assert data_parallel(rank, world) == (rank, world)
    else:
        with pytest.raises(ValueError, match=r"must be in \[0, world"):
            data_parallel(rank, world)


# ---------------------------------------------------------------- batches.py


def test_read_group_accepts_ids_zero_to_vocab_minus_one_and_refuses_each_side():
    def reader_of(rows):
        return lambda _info, _group: np.array(rows, dtype=np.int32)

    shard = info((1,))
    ok = [[0, 5, 999, 1, 2]]
    assert read_group(shard, 0, reader_of(ok)).tolist() == ok
    for bad, where in (([[-1, 0, 0, 0, 0]], "min -1, max 0"), ([[0, 0, 0, 0, 1000]], "min 0, max 1000")):
        with pytest.raises(ShardError, match=rf"row group 0 has token ids outside \[0, 1000\) \({where}"):
            read_group(shard, 0, reader_of(bad))
    empty = read_group(shard, 0, reader_of(np.empty((0, SEQ + 1))))  # nothing to check, and no min() of nothing
    assert empty.shape == (0, SEQ + 1)


@pytest.mark.parametrize("err", [OSError("gone"), pa.ArrowInvalid("bad footer")])
def test_read_group_names_the_file_and_group_when_the_reader_fails(err):
    def failing(_info, _group):
        raise err

    with pytest.raises(ShardError, match=r"x/part-0.parquet: cannot read row group 3 \("):
        read_group(info((1,)), 3, failing)


def test_fill_batches_spans_pieces_and_drops_the_partial_tail():
    # rows are [k, k]; pieces of 2, 5, 0, 3 rows = 10 rows -> three batches of 3, the 10th row left over
    pieces = [np.array([[k, k] for k in range(a, b)], dtype=np.int32).reshape(-1, 2)
              for a, b in ((0, 2), (2, 7), (7, 7), (7, 10))]
    got = [b.copy() for b in fill_batches(iter(pieces), batch_size=3, width=2)]
    assert [b[:, 0].tolist() for b in got] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert all(b.dtype == np.int32 and b.shape == (3, 2) for b in got)
    one = [b.copy() for b in fill_batches([np.array([[4, 4]] * 2, dtype=np.int32)], batch_size=1, width=2)]
    assert [b.tolist() for b in one] == [[[4, 4]], [[4, 4]]]
    assert list(fill_batches([np.zeros((2, 2), np.int32)], batch_size=3, width=2)) == []


def test_to_tensors_are_the_row_without_its_last_and_without_its_first_token():
    inputs, targets = to_tensors(np.array([[1, 2, 3], [7, 8, 9]], dtype=np.int32))
    assert inputs.dtype == targets.dtype == torch.int64
    assert inputs.tolist() == [[1, 2], [7, 8]] and targets.tolist() == [[2, 3], [8, 9]]


# ---------------------------------------------------------------- order.py


def test_units_and_positions_are_frozen_slotted_records():
    units, pos = build_units([[2]]), Position(epoch=0, index=1, row=2)
    for record in (units, pos):
        assert not hasattr(record, "__dict__")
        with pytest.raises(FROZEN):
            record.rows = None  # type: ignore[misc]


def test_build_units_keeps_groups_of_one_row_and_nothing_else_when_all_are_empty():
    units = build_units([[1, 0, 2], [0], [1]])
    assert units.shard.tolist() == [0, 0, 2] and units.group.tolist() == [0, 2, 0] and units.rows.tolist() == [1, 2, 1]
    for empty in ([], [[0, 0], []]):
        none = build_units(empty)
        assert len(none) == 0
        assert [a.shape for a in (none.shard, none.group, none.rows)] == [(0,)] * 3
        assert none.rows.dtype == np.int64


def test_check_streams_allows_as_many_streams_as_units_and_not_one_more():
    units = build_units([[1, 1, 1]])
    check_streams(units, streams=3, where="here")
    with pytest.raises(ValueError, match=r"here: 3 row groups \(units\) for 4 loader streams"):
        check_streams(units, streams=4, where="here")


@pytest.mark.parametrize("workers", [0, 1, 2, 3, 4])
def test_batches_done_counts_the_batches_of_a_worker_by_brute_force(workers):
    for worker in range(max(workers, 1)):
        for batches in range(14):
            want = sum(1 for i in range(batches) if i % max(workers, 1) == worker)  # batch i from worker i % W
            assert batches_done(batches, worker=worker, workers=workers) == want, (batches, worker, workers)


def test_worker_role_by_hand():
    # a fresh worker k serves the rank's batches start + k, start + k + W, ...: the slot of batch start + k
    assert worker_role(0, worker_id=0, workers=3) == 0
    assert worker_role(5, worker_id=2, workers=3) == 1
    assert worker_role(4, worker_id=1, workers=3) == 2
    assert worker_role(7, worker_id=0, workers=0) == 0 and worker_role(7, worker_id=0, workers=1) == 0


def _perm(n: int, *key: int) -> np.ndarray:
    """The documented rule, written out: argsort (stable) of PCG64(SeedSequence(key)) raw output."""
    return np.argsort(np.random.PCG64(np.random.SeedSequence(list(key))).random_raw(n), kind="stable")


@pytest.mark.parametrize("stream,streams", [(0, 1), (1, 3), (2, 3)])
def test_locate_equals_a_row_by_row_walk(stream, streams):
    rows = [[3, 1], [4], [2, 5, 1], [6]]
    units = build_units(rows)
    walk = []  # the position of every row the stream serves, epoch by epoch
    for epoch in range(3):
        for index, unit in enumerate(_perm(len(units), 9, epoch)[stream::streams]):
            walk += [Position(epoch, index, r) for r in range(int(units.rows[unit]))]
    for done, want in enumerate(walk):
        assert locate(done, units=units, seed=9, stream=stream, streams=streams) == want, done


class _Hung(Exception):
    pass


def test_locate_refuses_a_stream_without_units_and_serves_one_row_streams():
    def hung(_signum, _frame):
        raise _Hung("locate kept walking epochs of a stream without rows")

    old = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 5.0)  # a stream without rows must fail at once, never loop over epochs
    try:
        with pytest.raises(ValueError, match="stream 2 of 3 has no rows"):
            locate(0, units=build_units([[1, 1]]), seed=0, stream=2, streams=3)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    for stream in (0, 1):  # one row per stream and epoch: the position after n rows is epoch n, row 0
        assert locate(0, units=build_units([[1, 1]]), seed=0, stream=stream, streams=2) == Position(0, 0, 0)
        assert locate(3, units=build_units([[1, 1]]), seed=0, stream=stream, streams=2) == Position(3, 0, 0)


# ---------------------------------------------------------------- splits.py


def test_splits_is_a_frozen_slotted_record_whose_meta_is_the_first_train_shards():
    other = dataclasses.replace(META, split="relabelled")
    splits = Splits(train=[info((1,)), info((1,), meta=other)], valid=[])
    assert splits.meta is META
    assert not hasattr(splits, "__dict__")
    with pytest.raises(FROZEN):
        splits.train = []  # type: ignore[misc]


def test_holdout_bounds_one_to_train_shards_minus_one(tmp_path):
    write(tmp_path / "train", (2, 2, 2))
    for bad in (0, 3, -1):
        with pytest.raises(ValueError, match=r"holdout_shards \(%d\) must be between 1 and 2" % bad):
            resolve_splits(tmp_path, holdout_shards=bad)
    for n in (1, 2):
        held = resolve_splits(tmp_path, holdout_shards=n)
        assert [Path(i.path).name for i in held.valid] == [shard_name(i, 3) for i in range(3 - n, 3)]
        assert len(held.train) == 3 - n


def test_one_train_shard_with_a_valid_folder_and_an_incompatible_valid_split(tmp_path):
    write(tmp_path / "train", (3,))
    write(tmp_path / "valid", (2,))
    splits = resolve_splits(tmp_path)
    assert len(splits.train) == 1 and len(splits.valid) == 1 and splits.valid[0].rows == 2
    write(tmp_path / "valid", (2,), meta=dataclasses.replace(META, eos_id=7))
    with pytest.raises(ShardError, match="come from different tokenize runs"):
        resolve_splits(tmp_path)


def test_a_bare_split_folder_is_its_own_train_folder(tmp_path):
    write(tmp_path / "only", (2, 2))
    held = resolve_splits(tmp_path / "only", holdout_shards=1)
    assert len(held.train) == 1 and len(held.valid) == 1
    explicit = resolve_splits(tmp_path / "only", valid_path=tmp_path / "only", holdout_shards=1)
    assert len(explicit.valid) == 1  # valid_path == the train folder: not evaluated on what it trains on


def test_check_vocab_and_seq_len_boundaries():
    check_vocab(META, 1000)
    check_vocab(META, 1001)
    with pytest.raises(ValueError, match="tokenizer vocabulary 1000"):
        check_vocab(META, 999)
    check_seq_len(META, SEQ, where="w")
    with pytest.raises(ValueError, match="w: the shards hold rows of seq_len 4"):
        check_seq_len(META, SEQ + 1, where="w")


def test_open_split_checks_a_single_shard_against_the_config(tmp_path):
    write(tmp_path / "one", (2,))
    infos = open_split(tmp_path / "one", seq_len=SEQ, model_vocab_size=1000)
    assert len(infos) == 1 and infos[0].rows == 2
    assert open_split(infos) == infos
    with pytest.raises(ValueError, match=r"one: the shards hold rows of seq_len 4"):
        open_split(tmp_path / "one", seq_len=SEQ + 1)
    with pytest.raises(ValueError, match="does not fit the model's vocab_size 999"):
        open_split(infos, model_vocab_size=999)
    with pytest.raises(ShardError, match="no token shards given"):
        open_split([])


# ---------------------------------------------------------------- heldout.py


def test_row_span_is_a_frozen_slotted_record():
    span = RowSpan(1, 2)
    assert not hasattr(span, "__dict__")
    with pytest.raises(FROZEN):
        span.start = 0  # type: ignore[misc]


@pytest.mark.parametrize("total,bs,cap,rank,world,want", [
    (10, 2, None, 2, 3, (6, 8)),   # parts of 3 rows: one batch of 2 from the head of rows 6..8
    (10, 1, None, 1, 3, (3, 6)),   # batch_size 1 is allowed: the whole part
    (10, 1, 1, 1, 3, (3, 4)),      # max_batches 1 is allowed
    (12, 2, 2, 1, 2, (6, 10)),     # parts of 6 rows, capped at 2 of their 3 batches
    (12, 2, 5, 0, 2, (0, 6)),      # a cap above what fits changes nothing
    (6, 3, None, 1, 2, (3, 6)),    # exactly batch_size x world rows
])
def test_rank_span_by_hand(total, bs, cap, rank, world, want):
    assert rank_span(total, batch_size=bs, max_batches=cap, rank=rank, world=world) == RowSpan(*want)


@pytest.mark.parametrize("bs,cap", [(0, None), (0, 3), (1, 0), (2, -1)])
def test_rank_span_refuses_a_batch_size_or_cap_below_one(bs, cap):
    with pytest.raises(ValueError, match=r"must be >= 1 \(None: all\)"):
        rank_span(100, batch_size=bs, max_batches=cap, rank=0, world=1)


def test_rank_span_refuses_fewer_rows_than_one_batch_per_rank():
    with pytest.raises(ValueError, match="has 5 rows, fewer than batch_size \\(3\\) x world \\(2\\)"):
        rank_span(5, batch_size=3, max_batches=None, rank=0, world=2)


def test_span_pieces_read_only_the_overlapped_groups():
    # two shards, groups of 3, 2 | 4, 1 rows: split rows 0-2 | 3-4 | 5-8 | 9
    shards = [info((3, 2), path="a"), info((4, 1), path="b")]
    reads = []

    def reader(shard, group):
        reads.append((shard.path, group))
        first = {("a", 0): 0, ("a", 1): 3, ("b", 0): 5, ("b", 1): 9}[(shard.path, group)]
        n = shard.row_group_rows[group]
        return np.arange(first, first + n, dtype=np.int32)[:, None].repeat(SEQ + 1, axis=1)

    for (start, stop), want_reads in [((0, 3), [("a", 0)]), ((2, 6), [("a", 0), ("a", 1), ("b", 0)]),
                                      ((3, 5), [("a", 1)]), ((5, 10), [("b", 0), ("b", 1)]), ((4, 5), [("a", 1)])]:
        reads.clear()
        got = [int(r) for piece in span_pieces(shards, RowSpan(start, stop), reader=reader) for r in piece[:, 0]]
        assert got == list(range(start, stop)) and reads == want_reads, (start, stop)


def test_eval_batches_of_a_small_split_by_hand(tmp_path):
    write(tmp_path / "v", (3, 4), group=2)  # 7 rows, row r starts with token 4 r
    ev = EvalBatches(tmp_path / "v", batch_size=1, rank=1, world=2)  # parts of 3 rows: rank 1 has rows 3, 4, 5
    assert len(ev) == 3
    batches = list(ev)
    assert [int(x[0, 0]) for x, _ in batches] == [12, 16, 20]
    assert all(x.shape == y.shape == (1, SEQ) and torch.equal(y, x + 1) for x, y in batches)
    write(tmp_path / "one", (5,), group=2)  # a one-shard split, rows 0..4
    single = EvalBatches(tmp_path / "one", batch_size=2, rank=0, world=1)
    assert [x[:, 0].tolist() for x, _ in single] == [[0, 4], [8, 12]]


# ---------------------------------------------------------------- format.py


def test_shard_meta_is_frozen_and_round_trips_through_json():
    with pytest.raises(dataclasses.FrozenInstanceError):
        META.seq_len = 1  # type: ignore[misc]
    assert ShardMeta.from_json(META.to_json(), where="w") == META
    assert hash(META) == hash(dataclasses.replace(META))


def test_meta_json_is_written_with_sorted_keys():
    """The footer bytes are the same for the same meta: keys sorted, so byte-identical shards across runs."""
    want = ('{"eos_id": 0, "format": "refinery.tokens/1", "seq_len": 4, "split": "train", "tokenizer_sha256": "'
            + "s" * 64 + '", "vocab_size": 1000}').encode()
    assert META.to_json() == want


def test_meta_json_missing_a_field_or_of_another_format_is_refused():
    with pytest.raises(ShardError, match="w: unreadable token-shard metadata"):
        ShardMeta.from_json(b'{"seq_len": 4}', where="w")
    with pytest.raises(ShardError, match="w: token-shard format 'other/1'"):
        ShardMeta.from_json(dataclasses.replace(META, format="other/1").to_json(), where="w")
    extra = b'{"seq_len": 4, "vocab_size": 1000, "eos_id": 0, "tokenizer_sha256": "' + b"s" * 64 + b'", "new": 1}'
    assert ShardMeta.from_json(extra, where="w") == META  # unknown keys are ignored, defaults fill the rest


def test_compatible_compares_seq_len_vocab_eos_and_tokenizer_only():
    assert META.compatible(dataclasses.replace(META, split="valid"))
    for change in (dict(seq_len=5), dict(vocab_size=1001), dict(eos_id=1), dict(tokenizer_sha256="t" * 64)):
        assert not META.compatible(dataclasses.replace(META, **change)), change


def test_rows_table_shape_check_and_offsets():
    rows = np.arange(10, dtype=np.int64).reshape(2, SEQ + 1)
    table = rows_table(rows, META)
    assert table.column("tokens").to_pylist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert table.schema.field("tokens").type == pa.list_(pa.int32())
    assert table.schema.field("tokens").nullable is False
    assert rows_table(np.empty((0, SEQ + 1)), META).num_rows == 0
    for bad in (np.zeros((2, SEQ)), np.zeros((2, SEQ + 2)), np.zeros(SEQ + 1), np.zeros((1, 1, SEQ + 1))):
        with pytest.raises(ValueError, match=r"rows must have shape \(n, 5\)"):
            rows_table(bad, META)


def test_write_shard_row_groups_and_default(tmp_path):
    rows = np.zeros((2100, SEQ + 1), np.int32)
    assert write_shard(tmp_path / "a.parquet", rows, META) == 2100
    assert inspect_shard(tmp_path / "a.parquet").row_group_rows == (1024, 1024, 52)  # default 1024 rows a group
    write_shard(tmp_path / "b.parquet", rows[:3], META, row_group_rows=0)  # at least one row a group
    assert inspect_shard(tmp_path / "b.parquet").row_group_rows == (1, 1, 1)
    write_shard(tmp_path / "c.parquet", rows[:3], META, row_group_rows=2)
    assert inspect_shard(tmp_path / "c.parquet").row_group_rows == (2, 1)
    assert not list(tmp_path.glob(".*.tmp"))
    nested = tmp_path / "new" / "deeper" / shard_name(0, 1)  # missing parent folders are made
    assert write_shard(nested, rows[:2], META) == 2 and inspect_shard(nested).rows == 2


@pytest.mark.parametrize("length,rows,tail", [(0, 0, 0), (1, 0, 1), (4, 0, 4), (5, 1, 0), (6, 1, 1), (8, 1, 3),
                                              (9, 2, 0), (12, 2, 3), (13, 3, 0)])
def test_pack_by_hand(length, rows, tail):
    got, left = pack(np.arange(length, dtype=np.int32), SEQ)
    assert got.shape == (rows, SEQ + 1) and got.dtype == np.int32 and left == tail
    assert got.tolist() == [list(range(i * SEQ, i * SEQ + SEQ + 1)) for i in range(rows)]


def test_shard_info_rows_is_the_sum_of_its_groups_and_it_is_frozen():
    assert info((3, 0, 4)).rows == 7 and info(()).rows == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        info((1,)).path = "y"  # type: ignore[misc]
    assert hash(info((1,))) == hash(info((1,)))


def test_inspect_shard_refuses_files_that_are_not_token_shards(tmp_path):
    import pyarrow.parquet as pq

    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(ShardError, match="junk.parquet: not a readable Parquet file"):
        inspect_shard(tmp_path / "junk.parquet")
    meta = {b"refinery": META.to_json()}
    two = pa.table({"tokens": [[1]], "more": [1]}).replace_schema_metadata(meta)
    pq.write_table(two, tmp_path / "two.parquet")
    with pytest.raises(ShardError, match="not a token shard"):
        inspect_shard(tmp_path / "two.parquet")
    pq.write_table(pa.table({"tokens": [[1]]}), tmp_path / "nometa.parquet")
    with pytest.raises(ShardError, match="not a token shard"):
        inspect_shard(tmp_path / "nometa.parquet")
    for name, col in (("flat", pa.array([1], pa.int32())), ("floats", pa.array([[1.0]]))):
        pq.write_table(pa.table({"tokens": col}).replace_schema_metadata(meta), tmp_path / f"{name}.parquet")
        with pytest.raises(ShardError, match=f"{name}.parquet: column 'tokens' has type"):
            inspect_shard(tmp_path / f"{name}.parquet")
    pq.write_table(pa.table({"tokens": pa.array([[1]], pa.list_(pa.int64()))}).replace_schema_metadata(meta),
                   tmp_path / "int64.parquet")
    assert inspect_shard(tmp_path / "int64.parquet").row_group_rows == (1,)  # any integer list is accepted


def test_inspect_split_refuses_mixed_runs_and_keeps_empty_shards_out(tmp_path):
    write(tmp_path / "s", (2, 0, 3))
    assert [i.rows for i in inspect_split(tmp_path / "s")] == [2, 3]
    write(tmp_path / "m", (2, 2))
    write_shard(tmp_path / "m" / shard_name(1, 2), np.zeros((1, SEQ + 1), np.int32),
                dataclasses.replace(META, eos_id=7))
    with pytest.raises(ShardError, match="a split must come from one tokenize run"):
        inspect_split(tmp_path / "m")
    with pytest.raises(ShardError, match="no such folder"):
        inspect_split(tmp_path / "missing")


def test_read_rows_reshapes_and_checks_the_row_width(tmp_path):
    write(tmp_path / "r", (5,), group=2)
    shard = inspect_split(tmp_path / "r")[0]
    got = [read_rows(shard, g) for g in range(3)]
    assert [g.shape for g in got] == [(2, SEQ + 1), (2, SEQ + 1), (1, SEQ + 1)] and got[0].dtype == np.int32
    assert got[2].tolist() == [[16, 17, 18, 19, 20]]
    lying = ShardInfo(shard.path, shard.meta, (3, 2, 1))  # footers that disagree with the rows
    with pytest.raises(ShardError, match="row group 0 has rows that are not 5 tokens long"):
        read_rows(lying, 0)
    assert FORMAT == "refinery.tokens/1"
