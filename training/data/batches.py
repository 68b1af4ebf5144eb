"""From row groups to (inputs, targets) tensors, holding one row group and one batch buffer at a time."""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import torch

from core.shards import ShardError, ShardInfo, read_rows

Reader = Callable[[ShardInfo, int], np.ndarray]


def read_group(info: ShardInfo, group: int, reader: Reader = read_rows) -> np.ndarray:
    """One row group, checked so that a bad token id fails here with its file and not as a CUDA assert later."""
    try:
        rows = reader(info, group)
    except (OSError, pa.ArrowInvalid) as err:
        raise ShardError(f"{info.path}: cannot read row group {group} ({err}); was the file changed or "
                         "removed after the loader started? re-run python -m pipelines.tokenize") from err
    if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= info.meta.vocab_size):
        raise ShardError(f"{info.path}: row group {group} has token ids outside [0, {info.meta.vocab_size}) "
                         f"(min {int(rows.min())}, max {int(rows.max())}); the shard is corrupt or its metadata "
                         "is wrong; re-run python -m pipelines.tokenize")
    return rows


def fill_batches(pieces: Iterable[np.ndarray], *, batch_size: int, width: int) -> Iterator[np.ndarray]:
    """Pack pieces of rows into (batch_size, width) batches that may span pieces; the buffer is reused, so
    each batch must be copied (`to_tensors` does) before the next one is asked for."""
    buffer = np.empty((batch_size, width), dtype=np.int32)
    have = 0
    for piece in pieces:
        start = 0
        while start < len(piece):
            take = min(batch_size - have, len(piece) - start)
            buffer[have:have + take] = piece[start:start + take]
            have, start = have + take, start + take
            if have == batch_size:
                yield buffer
                have = 0


def to_tensors(batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of seq_len + 1 tokens as int64 inputs row[:-1] and targets row[1:], each (B, seq_len)."""
    inputs = torch.from_numpy(batch[:, :-1].astype(np.int64))  # (B, seq_len)
    targets = torch.from_numpy(batch[:, 1:].astype(np.int64))  # (B, seq_len)
    return inputs, targets
