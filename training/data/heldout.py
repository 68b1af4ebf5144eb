"""Validation batches: the same rows at every evaluation, so losses at different steps compare.

No shuffle and no workers. The split's rows, in shard and row order, are cut into `world` equal parts; rank r
takes the first `len(evals)` batches of part r. Every rank gets the same number of batches (collectives in an
eval step cannot hang) and no row is evaluated twice. The validation split should be a random sample of the
corpus (tokenize writes it so), which makes the head of each part as good as any other rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from core.shards import ShardInfo, read_rows
from training.data.batches import Reader, fill_batches, read_group, to_tensors
from training.data.ranks import data_parallel
from training.data.splits import open_split


@dataclass(frozen=True, slots=True)
class RowSpan:
    """Rows [start, stop) of a split's rows in shard, row-group, row order."""

    start: int
    stop: int


def rank_span(total_rows: int, *, batch_size: int, max_batches: int | None, rank: int, world: int) -> RowSpan:
    """The rows rank `rank` of `world` evaluates: whole batches from the head of its equal part."""
    if batch_size < 1 or (max_batches is not None and max_batches < 1):
        raise ValueError(f"batch_size ({batch_size}) and max_batches ({max_batches}) must be >= 1 (None: all)")
    part = total_rows // world
    batches = part // batch_size if max_batches is None else min(part // batch_size, max_batches)
    if batches == 0:
        raise ValueError(f"the validation split has {total_rows} rows, fewer than batch_size ({batch_size}) x world "
                         f"({world}); lower the eval batch size or tokenize more validation text")
    start = rank * part
    return RowSpan(start, start + batches * batch_size)


def span_pieces(infos: Sequence[ShardInfo], span: RowSpan, *, reader: Reader) -> Iterator[np.ndarray]:
    """The rows of `span`, read one row group at a time and only from the groups it overlaps."""
    first = 0
    for info in infos:
        for group, rows in enumerate(info.row_group_rows):
            lo, hi = max(span.start, first), min(span.stop, first + rows)
            if lo < hi:
                yield read_group(info, group, reader)[lo - first:hi - first]
            first += rows
            if first >= span.stop:
                return


class EvalBatches:
    """One rank's validation batches (inputs, targets), int64 (B, seq_len); iterate it at every evaluation."""

    def __init__(self, shards: str | Path | Sequence[ShardInfo], *, batch_size: int, max_batches: int | None = None,
                 rank: int | None = None, world: int | None = None, seq_len: int | None = None,
                 model_vocab_size: int | None = None, reader: Reader = read_rows) -> None:
        self.infos = open_split(shards, seq_len=seq_len, model_vocab_size=model_vocab_size)
        rank, world = data_parallel(rank, world)
        total = sum(info.rows for info in self.infos)
        self.batch_size, self.reader = batch_size, reader
        self.span = rank_span(total, batch_size=batch_size, max_batches=max_batches, rank=rank, world=world)

    def __len__(self) -> int:
        return (self.span.stop - self.span.start) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        pieces = span_pieces(self.infos, self.span, reader=self.reader)
        width = self.infos[0].meta.seq_len + 1
        for batch in fill_batches(pieces, batch_size=self.batch_size, width=width):
            yield to_tensors(batch)
