"""Token shards: the contract between `pipelines.tokenize` (writer) and `training.data` (reader).

A split is a folder of Parquet files `part-NNNNN-of-MMMMM.parquet` with one column, `tokens: list<int32>`.
Every row holds exactly `seq_len + 1` tokens: row i of a shard's packed stream is
`stream[i * seq_len : i * seq_len + seq_len + 1]`, so consecutive rows overlap by one token and every adjacent
pair of the stream is a training target exactly once (inputs `row[:-1]`, targets `row[1:]`). Documents are
joined with the end-of-document token. The schema metadata key `refinery` holds `ShardMeta` as JSON, so a
reader checks the sequence length, vocabulary and tokenizer of every file before it trains on it.

Pure pyarrow: Beam workers that write shards never import torch.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FORMAT = "refinery.tokens/1"
META_KEY = b"refinery"
TOKENS = "tokens"
SPLITS = ("train", "valid")


class ShardError(ValueError):
    """A token shard (or a folder of them) that training cannot use; the message says what to do."""


@dataclass(frozen=True)
class ShardMeta:
    """What every token shard says about itself."""

    seq_len: int
    vocab_size: int
    eos_id: int
    tokenizer_sha256: str
    split: str = "train"
    format: str = FORMAT

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, where: str) -> "ShardMeta":
        try:
            data = json.loads(raw)
            meta = cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})
        except (ValueError, TypeError, KeyError) as err:
            raise ShardError(f"{where}: unreadable token-shard metadata ({err}); re-run python -m pipelines.tokenize") from err
        if meta.format != FORMAT:
            raise ShardError(f"{where}: token-shard format {meta.format!r}, this version reads {FORMAT!r}; "
                             "re-run python -m pipelines.tokenize")
        return meta

    def compatible(self, other: "ShardMeta") -> bool:
        """Shards that may be mixed in one run: same sequence length and tokenizer."""
        return (self.seq_len, self.vocab_size, self.eos_id, self.tokenizer_sha256) == (
            other.seq_len, other.vocab_size, other.eos_id, other.tokenizer_sha256)


def shard_schema(meta: ShardMeta) -> pa.Schema:
    """The Parquet schema of a token shard, metadata included."""
    return pa.schema([pa.field(TOKENS, pa.list_(pa.int32()), nullable=False)], metadata={META_KEY: meta.to_json()})


def shard_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.parquet"


def rows_table(rows: np.ndarray, meta: ShardMeta) -> pa.Table:
    """A (n, seq_len + 1) int array as a shard table, without copying the tokens twice."""
    rows = np.ascontiguousarray(rows, dtype=np.int32)
    if rows.ndim != 2 or rows.shape[1] != meta.seq_len + 1:
        raise ValueError(f"rows must have shape (n, {meta.seq_len + 1}), got {rows.shape}")
    offsets = pa.array(np.arange(0, rows.size + 1, rows.shape[1], dtype=np.int32))
    tokens = pa.ListArray.from_arrays(offsets, pa.array(rows.reshape(-1)))
    return pa.Table.from_arrays([tokens], schema=shard_schema(meta))


def write_shard(path: str | Path, rows: np.ndarray, meta: ShardMeta, *, row_group_rows: int = 1024,
                compression: str = "zstd") -> int:
    """Write one shard atomically (temporary name, then rename); returns the number of rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table = rows_table(rows, meta)
    pq.write_table(table, tmp, row_group_size=max(1, row_group_rows), compression=compression)
    tmp.replace(path)
    return table.num_rows


def pack(stream: np.ndarray, seq_len: int) -> tuple[np.ndarray, int]:
    """Cut a token stream into overlapping rows of seq_len + 1; returns (rows, tokens left over at the tail)."""
    n = max(0, (len(stream) - 1) // seq_len)
    if n == 0:
        return np.empty((0, seq_len + 1), dtype=np.int32), len(stream)
    view = np.lib.stride_tricks.sliding_window_view(stream[: n * seq_len + 1], seq_len + 1)[::seq_len]
    return np.ascontiguousarray(view, dtype=np.int32), len(stream) - (n * seq_len + 1)


@dataclass(frozen=True)
class ShardInfo:
    """One shard file as the reader sees it: its metadata and the rows of each row group."""

    path: str
    meta: ShardMeta
    row_group_rows: tuple[int, ...]

    @property
    def rows(self) -> int:
        return sum(self.row_group_rows)


def inspect_shard(path: str | Path) -> ShardInfo:
    """Read a shard's footer only and check it is a token shard."""
    where = str(path)
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise ShardError(f"{where}: not a readable Parquet file ({err})") from err
    schema = pf.schema_arrow
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None or schema.names != [TOKENS]:
        raise ShardError(f"{where}: not a token shard (columns {schema.names}, expected ['{TOKENS}'] with refinery "
                         "metadata); token shards come from python -m pipelines.tokenize")
    if not pa.types.is_list(schema.field(TOKENS).type) or not pa.types.is_integer(schema.field(TOKENS).type.value_type):
        raise ShardError(f"{where}: column {TOKENS!r} has type {schema.field(TOKENS).type}, expected list<int32>")
    meta = ShardMeta.from_json(raw, where=where)
    md = pf.metadata
    return ShardInfo(where, meta, tuple(md.row_group(i).num_rows for i in range(md.num_row_groups)))


def list_shards(folder: str | Path) -> list[str]:
    """The shard files of one split folder, in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ShardError(f"{folder}: no such folder; pass the output of python -m pipelines.tokenize "
                         "(its train/ or valid/ folder, or the folder holding them)")
    return sorted(str(p) for p in folder.glob("*.parquet"))


def inspect_split(folder: str | Path) -> list[ShardInfo]:
    """Every shard of a split, checked to agree with each other; empty shards are kept out, an empty split refused."""
    paths = list_shards(folder)
    if not paths:
        raise ShardError(f"{folder}: no .parquet token shards; run python -m pipelines.tokenize first")
    infos = [inspect_shard(p) for p in paths]
    first = infos[0].meta
    for info in infos[1:]:
        if not info.meta.compatible(first):
            raise ShardError(f"{info.path}: seq_len/tokenizer {info.meta} differs from {infos[0].path} ({first}); "
                             "a split must come from one tokenize run")
    nonempty = [i for i in infos if i.rows]
    if not nonempty:
        raise ShardError(f"{folder}: every token shard is empty (0 rows); the tokenize run produced no sequences — "
                         "check its stats.json (too little text for one sequence of seq_len tokens?)")
    return nonempty


def read_rows(info: ShardInfo, row_group: int) -> np.ndarray:
    """One row group as an (n, seq_len + 1) int32 array."""
    table = pq.ParquetFile(info.path).read_row_group(row_group, columns=[TOKENS])
    values = table.column(TOKENS).combine_chunks().flatten().to_numpy()
    width = info.meta.seq_len + 1
    if values.size != info.row_group_rows[row_group] * width:
        raise ShardError(f"{info.path}: row group {row_group} has rows that are not {width} tokens long")
    return values.astype(np.int32, copy=False).reshape(-1, width)


def iter_rows(infos: Iterable[ShardInfo]) -> Iterable[np.ndarray]:
    """Every row group of the given shards, in order (evaluation and tests)."""
    for info in infos:
        for g in range(len(info.row_group_rows)):
            yield read_rows(info, g)
