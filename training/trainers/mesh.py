"""The dp x pp mesh that both pipeline trainers (pipeline.py, decoupled.py) stand on: its degrees, its process
groups, sums over a group and the traced spans gathered from every rank."""
from __future__ import annotations

import torch
import torch.distributed as dist

from training.config import RunConfig
from training.distributed import Dist
from training.parallel.actions import Span


def pipeline_degrees(cfg: RunConfig, world: int) -> tuple[int, int]:
    """(dp, pp): data-parallel replicas and ranks per pipeline."""
    dp = cfg.pipeline.dp
    if dp < 1 or world % dp:
        raise ValueError(f"pipeline.dp = {dp} must divide the number of ranks ({world})")
    return dp, world // dp


def mesh_groups(d: Dist, dp: int, pp: int) -> tuple[object, object]:
    """pp and dp process groups of a (dp, pp) device mesh (None for one process)."""
    if not d.initialized:
        return None, None
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(d.device.type, (dp, pp), mesh_dim_names=("dp", "pp"))
    return mesh.get_group("pp"), mesh.get_group("dp")


def gather_spans(d: Dist, spans: list[Span], pp: int) -> list[Span]:
    """The first replica's spans of a traced step, on every rank (collective: all ranks call it)."""
    gathered = [spans]
    if d.initialized:
        gathered = [None] * d.world
        dist.all_gather_object(gathered, spans)
    return [s for rank_spans in gathered[:pp] for s in rank_spans]


def reduce_over(group: object, size: int, values: list[float]) -> list[float]:
    """Sum `values` over a process group (as is when the group is trivial)."""
    if group is None or size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, group=group)
    return t.tolist()
