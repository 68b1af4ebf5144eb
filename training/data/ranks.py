"""Which data-parallel rank this process reads for: one rule for the training and the validation batches."""
from __future__ import annotations

import torch


def data_parallel(rank: int | None, world: int | None) -> tuple[int, int]:
    """Explicit data-parallel rank/world, else torch.distributed's when initialised, else a single process."""
    if rank is None or world is None:
        ready = torch.distributed.is_available() and torch.distributed.is_initialized()
        rank = (torch.distributed.get_rank() if ready else 0) if rank is None else rank
        world = (torch.distributed.get_world_size() if ready else 1) if world is None else world
    if not 0 <= rank < world:
        raise ValueError(f"rank ({rank}) must be in [0, world ({world}))")
    return rank, world
