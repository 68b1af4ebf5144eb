"""Run by test_robustness.py (plain python for 1 rank, torchrun for 2): for each trainer, N steps in one go against
N/2 + 1 steps, a bit flipped in the newest checkpoint, and a resume to N from the one before it.

Each phase runs `training.pretrain.train` in this process; before each, every global RNG is scrambled as a new
process would find it, so nothing may depend on the state a process starts with. Rank 0 then converts both final
checkpoints to plain torch files and compares every entry bit for bit, and both metrics logs record for record.
Prints one JSON line per case on rank 0: {"case": name, "diffs": [...], "entries": n, "ranks": [...], ...}.
"""
from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from training.config import load_config
from training.distributed import Dist, barrier, setup, teardown
from training.metrics import read_metrics
from training.pretrain import train

SMALL = ["model.dim=32", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=2", "model.ffn_dim=64",
         "train.micro_batch_size=4", "train.threads=1", "log.every=1", "log.tensorboard=false", "log.progress=false",
         "optim.warmup_steps=4", "train.device=cpu", "train.steps=8", "checkpoint.every=4", "eval.every=4",
         "eval.batches=2"]
WALL_CLOCK = ("time", "tokens_per_s", "step_time_s", "mem_peak_mib", "mem_reserved_mib", "train_s", "mfu")


def scramble() -> None:
    """Global RNGs as a fresh process has them: unrelated to any earlier phase."""
    seed = int.from_bytes(os.urandom(4), "little")
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def flip_a_bit(folder: Path) -> str:
    """Flip one bit in the middle of the checkpoint's largest data file; returns its name."""
    target = max(folder.glob("*.distcp"), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x10
    target.write_bytes(bytes(data))
    return target.name


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested checkpoint as {dotted name: leaf}."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in leaves(item, f"{prefix}.{key}" if prefix else str(key)).items()}
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in leaves(item, f"{prefix}.{i}").items()}
    return {prefix: value}


def same_bits(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and a.contiguous().view(-1).view(torch.uint8).equal(
            b.contiguous().view(-1).view(torch.uint8))
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return type(a) is type(b) and a == b


def checkpoint_leaves(folder: Path, scratch: Path) -> dict[str, Any]:
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    dcp_to_torch_save(str(folder), str(scratch))
    return leaves(torch.load(scratch, weights_only=False))


def curve(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in read_metrics(run) if not r.get("summary")]


def run_case(case: dict, shards: str, out: Path, d: Any) -> dict | None:
    common = ["--config", "tiny", f"data.path={shards}", *SMALL, *case["overrides"]]
    whole, parts = out / case["name"] / "whole", out / case["name"] / "parts"

    def phase(folder: Path, *extra: str) -> dict:
        scramble()
        return train(load_config("tiny", [*common[2:], f"output={folder}", *extra]), d)

    phase(whole)
    phase(parts, "train.stop_after=5")
    flipped = flip_a_bit(parts / "checkpoints" / "step-00000005") if d.is_main else None
    barrier(d)
    phase(parts)
    if not d.is_main:
        return None
    a = checkpoint_leaves(whole / "checkpoints" / "step-00000008", out / "a.pt")
    b = checkpoint_leaves(parts / "checkpoints" / "step-00000008", out / "b.pt")
    diffs = sorted(set(a) ^ set(b)) + [k for k in sorted(set(a) & set(b)) if not same_bits(a[k], b[k])]
    return {"case": case["name"], "diffs": diffs[:20], "entries": len(a),
            "ranks": sorted({k.split(".")[0] for k in a if k.startswith("rank")}),
            "rng": sorted({".".join(k.split(".")[:3]) for k in a if ".rng." in k}),
            "same_metrics": curve(whole) == curve(parts), "steps_logged": [r["step"] for r in curve(parts)
                                                                            if "loss" in r],
            "set_aside": sorted(p.name for p in (parts / "checkpoints").iterdir() if p.name.endswith(".corrupt")),
            "flipped": flipped}


def run_cases(cases: list, run: Callable[[int, Any, Dist], dict | None]) -> int:
    """Each case in turn on every rank, in step; a rank with a result prints it as one JSON line."""
    d = setup("cpu")
    try:
        for i, case in enumerate(cases):
            result = run(i, case, d)
            if result is not None:
                print(json.dumps(result), flush=True)
            barrier(d)
    finally:
        teardown(d)
    return 0


def main() -> int:
    cases, shards, out = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    return run_cases(cases, lambda _, case, d: run_case(case, shards, out, d))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
