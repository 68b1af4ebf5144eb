"""What a run reports: loss, tokens/s, MFU and memory to metrics.jsonl and TensorBoard, plus a progress bar."""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

# Dense bf16 peak TFLOP/s (no sparsity) of GPUs we expect, for the MFU estimate; override with train.peak_tflops.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


def device_peak_tflops(device: torch.device, override: float | None) -> float | None:
    """The device's peak for MFU; None on CPU unless given (CPU peaks vary too much to guess)."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def memory_stats(device: torch.device) -> dict[str, float]:
    """Peak memory of this process: CUDA allocator peak on GPU, max resident set size on CPU (MiB)."""
    if device.type == "cuda":
        return {"mem_peak_mib": torch.cuda.max_memory_allocated(device) / 2**20,
                "mem_reserved_mib": torch.cuda.max_memory_reserved(device) / 2**20}
    return {"mem_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


class MetricsLog:
    """Rank 0 appends one JSON object per line to metrics.jsonl and mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: str | Path, *, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is in the `train` extra; JSONL still has everything
                print("tensorboard is not installed (pip install 'refinery[train]'); logging to metrics.jsonl only",
                      file=sys.stderr)
            else:
                self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def log(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps({"step": step, "time": round(time.time(), 3), **values}) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.writer is not None:
                self.writer.close()


class Progress:
    """A tqdm bar on rank 0 when stderr is a terminal; otherwise silent (metrics lines are printed instead)."""

    def __init__(self, *, total: int, initial: int, enabled: bool) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def update(self, postfix: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The metrics.jsonl of a run as a list of records (tests, benchmarks, comparisons)."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
