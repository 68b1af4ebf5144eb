"""training/data/ranks.py inside a real torch.distributed group: two gloo processes (torch.multiprocessing
spawn, a free local port). The oracle is the rank each process was started with and the world size of the
group it joined, never data_parallel itself."""
from __future__ import annotations

import json
import socket

import torch.distributed as dist
import torch.multiprocessing as mp

from training.data.ranks import data_parallel

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        seen = {"group": [dist.get_rank(), dist.get_world_size()],
                "both_from_group": data_parallel(None, None),
                "rank_from_group": data_parallel(None, 4),
                "world_from_group": data_parallel(0, None),
                "explicit": data_parallel(2, 3)}
        try:
            seen["rank_outside_explicit_world"] = data_parallel(None, 1)
        except ValueError as e:
            seen["rank_outside_explicit_world"] = str(e)
        with open(f"{out}/rank{rank}.json", "w", encoding="utf-8") as f:
            json.dump(seen, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_data_parallel_reads_rank_and_world_from_an_initialised_gloo_group(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        seen = json.loads((tmp_path / f"rank{rank}.json").read_text(encoding="utf-8"))
        assert seen["group"] == [rank, WORLD]  # the group is what this test set up
        assert seen["both_from_group"] == [rank, WORLD]
        assert seen["rank_from_group"] == [rank, 4]  # an explicit world wins, the rank still comes from the group
        assert seen["world_from_group"] == [0, WORLD]
        assert seen["explicit"] == [2, 3]  # both given: the group is not consulted
        # rank 1 of the group is outside an explicit world of 1; rank 0 is inside it
        expected = [0, 1] if rank == 0 else "rank (1) must be in [0, world (1))"
        assert seen["rank_outside_explicit_world"] == expected
