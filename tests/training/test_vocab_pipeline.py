"""The vocabulary-parallel pipeline (training/parallel/vocab_pipeline.py) on real gloo groups of 2 and 4
processes: one step's loss and every gradient equal one process running the whole model (vocab_pp_check.py),
in fp64 (≤ 1e-12) and fp32 (≤ 1e-6), for each schedule it runs, one and two barriers, a vocabulary the ranks do
not divide, tied weights, ignored targets and a batch that does not split into equal microbatches."""
from __future__ import annotations

import json
import socket

import pytest
import torch.multiprocessing as mp

from tests.training.vocab_pp_check import worker

TOL = {"float64": 1e-12, "float32": 1e-6}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp_path, world: int, cases: list[dict]) -> list[list[dict]]:
    mp.spawn(worker, args=(world, _port(), cases, str(tmp_path)), nprocs=world, join=True)
    return [json.loads((tmp_path / f"rank{r}.json").read_text(encoding="utf-8")) for r in range(world)]


CASES_2 = [
    {"schedule": s, "barriers": b, "microbatches": m, "rows": rows, "vocab": v, "tied": tied, "dtype": dt}
    for s, m, rows in (("1f1b", 4, 4), ("gpipe", 2, 3), ("interleaved1f1b", 4, 4))
    for b in (1, 2)
    for v, tied, dt in ((37, False, "float64"), (40, True, "float32"))
]
CASES_4 = [
    {"schedule": s, "barriers": b, "microbatches": 4, "rows": 4, "vocab": 37, "tied": tied, "dtype": "float64"}
    for s in ("1f1b", "interleaved1f1b") for b in (1, 2) for tied in (False, True)
]


@pytest.mark.parametrize("world,cases", [(2, CASES_2), (4, CASES_4)], ids=["2-ranks", "4-ranks"])
def test_vocabulary_parallel_pipeline_equals_one_process(tmp_path, world, cases):
    per_rank = _run(tmp_path, world, cases)
    for rank, results in enumerate(per_rank):
        for r in results:
            tol = TOL[r["dtype"]]
            where = f"rank {rank}/{world}: {r}"
            assert r["grad"] <= tol, where
            assert r["padding"] == 0.0, where
            assert r["loss"] <= tol * 10, where  # a sum of microbatch losses, each within tol
            assert r["loss_ranks"] == [world - 1], where  # only the last stage's rank (loop placement) reports loss
            assert r["params"] > 2, where
