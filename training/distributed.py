"""Process-group setup for `python -m` (one process) and `torchrun` (many) with the same code path."""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """Who this process is: rank, world size, local rank and the device it computes on."""

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def initialized(self) -> bool:
        return self.world > 1 and dist.is_available() and dist.is_initialized()


def pick_device(kind: str, local_rank: int) -> torch.device:
    """cuda:<local_rank> when asked for (or auto and present), else cpu; a clear error if cuda is asked but absent."""
    if kind == "cuda" or (kind == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("train.device=cuda but torch sees no GPU; use train.device=cpu or auto")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(device_kind: str = "auto", *, timeout_s: int = 1800) -> Dist:
    """Join the torchrun process group if WORLD_SIZE > 1 (NCCL on GPU, gloo on CPU); a no-op for one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_kind, local_rank)
    if world > 1 and not dist.is_initialized():
        # on GPUs, NCCL for device tensors and gloo beside it for the few CPU scalars trainers reduce (losses,
        # token counts, norms) and for object collectives; a NCCL-only group would reject those
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s),
                                device_id=device if device.type == "cuda" else None)
    return Dist(rank=rank, world=world, local_rank=local_rank, device=device)


def teardown(d: Dist) -> None:
    if d.initialized:
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.initialized:
        dist.barrier()


def all_reduce_sum(d: Dist, values: list[float]) -> list[float]:
    """Sum a few floats over ranks (in fp64, so logged losses do not depend on the reduction's precision)."""
    if not d.initialized:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=d.device if d.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def broadcast_object(d: Dist, obj: object) -> object:
    """Rank 0's value on every rank (a checkpoint choice, a folder name)."""
    if not d.initialized:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_grads(d: Dist, params: list[torch.nn.Parameter], *, group: object | None = None,
                     bucket_bytes: int = 25 * 2**20) -> None:
    """Sum gradients over ranks in flat buckets: data parallelism for trainers whose backward DDP cannot hook."""
    if not d.initialized:
        return
    grads = [p.grad for p in params if p.grad is not None]
    bucket: list[torch.Tensor] = []
    size = 0
    for i, g in enumerate(grads):
        bucket.append(g)
        size += g.numel() * g.element_size()
        if size >= bucket_bytes or i == len(grads) - 1:
            flat = torch.cat([t.reshape(-1) for t in bucket])
            dist.all_reduce(flat, group=group)
            offset = 0
            for t in bucket:
                t.copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()
            bucket, size = [], 0


def all_gather_object(d: Dist, obj: object) -> list[object]:
    """Every rank's value, in rank order, on every rank (problems found by each rank, per-rank flags)."""
    if not d.initialized:
        return [obj]
    out: list[object] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out
