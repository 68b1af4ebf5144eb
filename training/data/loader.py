"""Endless, shuffled, rank-sharded training batches from token shards, with a position that resumes exactly.

Each data-parallel rank runs W DataLoader workers (W = 0: the main process acts as one), and stream
s = rank * max(W, 1) + worker reads the units `order.stream_units` gives it, one row group in memory at a
time. The DataLoader serves a rank's batch i from worker i % W, so the whole position is the rank's batch
count: on resume every stream works out its (epoch, unit, row) from the footers (`order.locate`), no
replay. All ranks step together, so every rank's state is the same and a checkpoint needs it once.

    loader = TokenLoader(splits.train, LoaderConfig(batch_size=8, num_workers=2), seq_len=2048,
                         model_vocab_size=model_cfg.vocab_size, rank=dp_rank, world=dp_world)
    loader.load_state_dict(ckpt["loader"])          # optional
    for step, (inputs, targets) in zip(range(steps), loader): ...   # int64, (B, seq_len) each
    ckpt["loader"] = loader.state_dict()
"""
from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from core.shards import ShardInfo, ShardMeta, read_rows
from training.data.batches import Reader, fill_batches, read_group, to_tensors
from training.data.heldout import EvalBatches
from training.data.order import (Position, Units, batches_done, build_units, check_streams, fingerprint, locate,
                                 row_order, stream_units, worker_role)
from training.data.ranks import data_parallel
from training.data.splits import Splits, open_split, resolve_splits, train_folder

STATE_FORMAT = "refinery.loader/1"
# Keys whose change would make the saved batch count point somewhere else in the order.
MUST_MATCH = ("ranks", "batch_size", "seed", "seq_len", "tokenizer_sha256")


@dataclass(frozen=True, kw_only=True, slots=True)
class LoaderConfig:
    """How one rank reads its training batches."""

    batch_size: int  # rows (sequences of seq_len tokens) per batch per data-parallel rank
    seed: int = 0  # shuffle seed, >= 0; with the shard set it fixes the whole order
    num_workers: int = 0  # DataLoader worker processes per rank; 0 reads in the training process
    prefetch_factor: int | None = None  # batches each worker reads ahead (torch's default, 2, when None)
    pin_memory: bool = False  # page-locked batches for faster host-to-GPU copies

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.seed < 0 or self.num_workers < 0:
            raise ValueError(f"batch_size ({self.batch_size}) must be >= 1, seed ({self.seed}) and num_workers "
                             f"({self.num_workers}) >= 0")
        if self.prefetch_factor is not None and (self.num_workers == 0 or self.prefetch_factor < 1):
            raise ValueError(f"prefetch_factor ({self.prefetch_factor}) needs num_workers > 0 and must be >= 1; "
                             "leave it None otherwise")


def stream_pieces(infos: Sequence[ShardInfo], units: Units, *, seed: int, stream: int, streams: int,
                  start: Position, chunk_rows: int, reader: Reader) -> Iterator[np.ndarray]:
    """A stream's rows from `start` on, forever, in chunks of at most chunk_rows; one row group held at a time."""
    epoch, index, row = start.epoch, start.index, start.row
    while True:
        for unit in stream_units(len(units), seed=seed, epoch=epoch, stream=stream, streams=streams)[index:]:
            order = row_order(int(units.rows[unit]), seed=seed, epoch=epoch, unit=int(unit))
            rows = read_group(infos[units.shard[unit]], int(units.group[unit]), reader)
            for first in range(row, len(order), chunk_rows):
                yield rows[order[first:first + chunk_rows]]
            del rows
            row = 0
        epoch, index = epoch + 1, 0


class TokenStream(IterableDataset):
    """The batches of one rank from its `start`-th on; each DataLoader worker plays one stream of the rank."""

    def __init__(self, infos: Sequence[ShardInfo], units: Units, *, batch_size: int, seed: int, rank: int,
                 world: int, workers: int, start: int, reader: Reader) -> None:
        super().__init__()
        self.infos, self.units, self.batch_size, self.seed = list(infos), units, batch_size, seed
        self.rank, self.world, self.workers, self.start, self.reader = rank, world, workers, start, reader

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        worker = get_worker_info()
        slot = worker_role(self.start, worker_id=worker.id if worker else 0, workers=self.workers)
        stream, streams = stream_of(self.rank, slot, workers=self.workers), self.world * max(self.workers, 1)
        done = batches_done(self.start, worker=slot, workers=self.workers) * self.batch_size
        start = locate(done, units=self.units, seed=self.seed, stream=stream, streams=streams)
        pieces = stream_pieces(self.infos, self.units, seed=self.seed, stream=stream, streams=streams, start=start,
                               chunk_rows=self.batch_size, reader=self.reader)
        width = self.infos[0].meta.seq_len + 1
        for batch in fill_batches(pieces, batch_size=self.batch_size, width=width):
            yield to_tensors(batch)


def stream_of(rank: int, slot: int, *, workers: int) -> int:
    """The global stream id of a rank's worker slot: rank * max(W, 1) + slot."""
    return rank * max(workers, 1) + slot


def leave_signals_to_the_rank(worker_id: int) -> None:
    """A DataLoader worker ignores SIGINT, SIGTERM and SIGUSR1: its rank saves a checkpoint at the next step, then
    stops it.

    torchrun and Slurm signal whole process groups (Slurm: every process of a job step), and torch's worker dies of
    SIGTERM or SIGUSR1, which fails its rank in the middle of that save ("DataLoader worker is killed by signal:
    Terminated") and loses the checkpoint."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)


def stop_workers(batches: Iterator[Any]) -> None:
    """Stop DataLoader workers now: after a worker error the iterator sits in a reference cycle (torch's reraise
    frame), and when the garbage collector finally reaps it the shutdown waits 5 s on queues already torn down."""
    getattr(batches, "_shutdown_workers", lambda: None)()


class TokenLoader:
    """One data-parallel rank's endless training batches (inputs, targets), each int64 (B, seq_len).

    Iterate it as often as you like: each new iteration starts new workers at the current position. Do not
    run two iterations at once. `state_dict()` is the same on every rank, so saving rank 0's is enough.
    """

    def __init__(self, shards: str | Path | Sequence[ShardInfo], cfg: LoaderConfig, *, rank: int | None = None,
                 world: int | None = None, seq_len: int | None = None, model_vocab_size: int | None = None,
                 reader: Reader = read_rows) -> None:
        self.infos = open_split(shards, seq_len=seq_len, model_vocab_size=model_vocab_size)
        self.cfg, self.reader = cfg, reader
        self.rank, self.world = data_parallel(rank, world)
        self.meta = self.infos[0].meta
        self.units = build_units([info.row_group_rows for info in self.infos])
        self.streams = self.world * max(cfg.num_workers, 1)
        check_streams(self.units, streams=self.streams, where=str(Path(self.infos[0].path).parent))
        self.batches = 0  # batches this rank has handed out; the whole resume position

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        cfg = self.cfg
        dataset = TokenStream(self.infos, self.units, batch_size=cfg.batch_size, seed=cfg.seed, rank=self.rank,
                              world=self.world, workers=cfg.num_workers, start=self.batches, reader=self.reader)
        # its own generator: the iterator draws the workers' base seed from it, never from torch's global one,
        # which a resumed run has just restored and must leave exactly as the uninterrupted run has it
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, self.rank, self.batches])
                                                      .generate_state(1)[0]))
        loader = DataLoader(dataset, batch_size=None, num_workers=cfg.num_workers, pin_memory=cfg.pin_memory,
                            prefetch_factor=cfg.prefetch_factor, persistent_workers=False, generator=generator,
                            worker_init_fn=leave_signals_to_the_rank)
        batches = iter(loader)
        try:
            for batch in batches:
                self.batches += 1
                yield batch
        finally:
            stop_workers(batches)

    def position(self, batches: int | None = None) -> Position:
        """Where the stream that serves this rank's batch number `batches` (default: the next one) reads it."""
        batches = self.batches if batches is None else batches
        workers = self.cfg.num_workers
        slot = batches % max(workers, 1)
        done = batches_done(batches, worker=slot, workers=workers) * self.cfg.batch_size
        return locate(done, units=self.units, seed=self.cfg.seed, stream=stream_of(self.rank, slot, workers=workers),
                      streams=self.streams)

    def state_dict(self) -> dict[str, Any]:
        """The resume position plus everything the order depends on; `epoch` is for logs only."""
        return {"format": STATE_FORMAT, "batches": self.batches, "epoch": self.position().epoch,
                "ranks": self.world, "workers": self.cfg.num_workers, "batch_size": self.cfg.batch_size,
                "seed": self.cfg.seed, "seq_len": self.meta.seq_len, "tokenizer_sha256": self.meta.tokenizer_sha256,
                "shards": fingerprint([i.path for i in self.infos], [i.row_group_rows for i in self.infos]),
                "shard_count": len(self.infos), "rows": int(self.units.rows.sum())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly after the saved batch; refuse a state saved under another order."""
        mine = self.state_dict()
        missing = sorted(set(mine) - set(state))
        if state.get("format") != STATE_FORMAT or missing:
            raise ValueError(f"not a {STATE_FORMAT} loader state (format {state.get('format')!r}, missing "
                             f"{missing}); pass the dict TokenLoader.state_dict() returned")
        diffs = [f"{key}: saved {state[key]!r}, now {mine[key]!r}" for key in MUST_MATCH if state[key] != mine[key]]
        if max(state["workers"], 1) != max(mine["workers"], 1):  # W = 0 and W = 1 read the same single stream
            diffs.append(f"workers: saved {state['workers']}, now {mine['workers']}")
        if state["shards"] != mine["shards"]:
            diffs.append(f"shards: saved {state['shard_count']} shards / {state['rows']} rows (sha256 "
                         f"{state['shards'][:12]}), now {mine['shard_count']} / {mine['rows']} ({mine['shards'][:12]})")
        if diffs:
            raise ValueError(
                "the loader state does not fit this run, so its batch count would point elsewhere in the data order: "
                + "; ".join(diffs) + f". Resume with the saved settings (ranks={state['ranks']}, workers="
                f"{state['workers']}, batch_size={state['batch_size']}, seed={state['seed']}, the same shard folder), "
                "or leave the loader state out to start the data order from the beginning")
        self.batches = int(state["batches"])


class DataOptions(Protocol):
    """The data section of a run config (training.config.DataSection), by shape so data/ needs no config import."""

    path: str
    valid_path: str | None
    num_workers: int
    seed: int
    holdout_shards: int | None


@dataclass(frozen=True, slots=True)
class TrainingData:
    """What a trainer reads: endless training batches, fixed validation batches (None: no evaluation), metadata."""

    train: TokenLoader
    valid: EvalBatches | None
    splits: Splits

    @property
    def meta(self) -> ShardMeta:
        return self.splits.meta


def open_training_data(cfg: DataOptions, *, micro_batch_size: int, eval_batches: int, rank: int | None = None,
                       world: int | None = None, model_vocab_size: int | None = None) -> TrainingData:
    """The train loader and the eval batches of one rank; `eval_batches` counts all ranks together (0: no eval)."""
    rank, world = data_parallel(rank, world)
    if eval_batches:
        splits = resolve_splits(cfg.path, valid_path=cfg.valid_path, holdout_shards=cfg.holdout_shards)
    else:  # no evaluation wanted, so no validation shards required
        splits = Splits(train=open_split(train_folder(cfg.path)), valid=[])
    train = TokenLoader(splits.train, LoaderConfig(batch_size=micro_batch_size, seed=cfg.seed,
                                                   num_workers=cfg.num_workers),
                        rank=rank, world=world, model_vocab_size=model_vocab_size)
    valid = EvalBatches(splits.valid, batch_size=micro_batch_size, max_batches=max(1, eval_batches // world),
                        rank=rank, world=world) if eval_batches else None
    return TrainingData(train=train, valid=valid, splits=splits)
