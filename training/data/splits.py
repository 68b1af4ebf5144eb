"""Find the train and validation shards of a tokenize output, and check them against the model config.

`resolve_splits(out)` takes what `python -m pipelines.tokenize` wrote (`<out>/train/`, `<out>/valid/`,
`<out>/manifest.json`) or a bare split folder. Without validation shards it refuses, unless `data.holdout_shards=N`
asks to evaluate on the last N train shards, which are then left out of training (whole shards, so the
held-out rows can never leak into the training order). Pure pyarrow, no torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from core.shards import ShardError, ShardInfo, ShardMeta, inspect_shard, inspect_split, list_shards


@dataclass(frozen=True, slots=True)
class Splits:
    """The shards to train on and to evaluate on, from one tokenize run; valid is [] only when no eval is asked."""

    train: list[ShardInfo]
    valid: list[ShardInfo]

    @property
    def meta(self) -> ShardMeta:
        return self.train[0].meta


def resolve_splits(path: str | Path, *, valid_path: str | Path | None = None,
                   holdout_shards: int | None = None) -> Splits:
    """`<path>/train` (or `path` itself) and `valid_path` (default `<path>/valid`); `holdout_shards` only
    applies when there are no validation shards."""
    path = Path(path)
    train_dir = train_folder(path)
    train = inspect_split(train_dir)
    valid_dir = Path(valid_path) if valid_path is not None else path / "valid"
    valid = nonempty_split(valid_dir) if valid_dir != train_dir else []
    if not valid:
        if holdout_shards is None:
            raise ShardError(f"{valid_dir}: no validation shards (valid/ missing or empty); re-run python -m "
                             "pipelines.tokenize with valid_fraction > 0, or set data.holdout_shards=N to evaluate on "
                             "the last N train shards (they are then not trained on)")
        if not 0 < holdout_shards < len(train):
            raise ValueError(f"data.holdout_shards ({holdout_shards}) must be between 1 and {len(train) - 1}: {train_dir} "
                             f"has {len(train)} non-empty shards and training needs at least one")
        train, valid = train[:-holdout_shards], train[-holdout_shards:]
    if not valid[0].meta.compatible(train[0].meta):
        raise ShardError(f"{valid[0].path} ({valid[0].meta}) and {train[0].path} ({train[0].meta}) come from "
                         "different tokenize runs; re-run python -m pipelines.tokenize")
    return Splits(train=train, valid=valid)


def train_folder(path: str | Path) -> Path:
    """`<path>/train` of a tokenize output, or `path` itself when it is a split folder."""
    path = Path(path)
    return path / "train" if (path / "train").is_dir() else path


def nonempty_split(folder: Path) -> list[ShardInfo]:
    """The non-empty shards of an optional split; [] when it is missing, has no files or only empty ones."""
    if not folder.is_dir():
        return []
    paths = list_shards(folder)
    if not any(inspect_shard(p).rows for p in paths):
        return []
    return inspect_split(folder)


def check_vocab(meta: ShardMeta, model_vocab_size: int) -> None:
    """Token ids up to the tokenizer's vocabulary must index the model's embedding."""
    if meta.vocab_size > model_vocab_size:
        raise ValueError(f"tokenizer vocabulary {meta.vocab_size} does not fit the model's vocab_size "
                         f"{model_vocab_size}; set model.vocab_size ≥ {meta.vocab_size} (or retrain the tokenizer)")


def check_seq_len(meta: ShardMeta, seq_len: int, *, where: str) -> None:
    """The shards fix the sequence length; a config that disagrees would train on rows of the wrong shape."""
    if meta.seq_len != seq_len:
        raise ValueError(f"{where}: the shards hold rows of seq_len {meta.seq_len} (+1) tokens but the config says "
                         f"seq_len {seq_len}; set seq_len: {meta.seq_len} in the training config, or re-run python "
                         f"-m pipelines.tokenize with seq_len {seq_len}")


def open_split(shards: str | Path | Sequence[ShardInfo], *, seq_len: int | None = None,
               model_vocab_size: int | None = None) -> list[ShardInfo]:
    """A split folder or already inspected shards, checked against the config values that are given."""
    infos = inspect_split(shards) if isinstance(shards, (str, Path)) else list(shards)
    if not infos:
        raise ShardError("no token shards given; pass a split folder or resolve_splits(...).train / .valid")
    if seq_len is not None:
        check_seq_len(infos[0].meta, seq_len, where=str(Path(infos[0].path).parent))
    if model_vocab_size is not None:
        check_vocab(infos[0].meta, model_vocab_size)
    return infos
