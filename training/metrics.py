"""What a run reports: loss, tokens/s, MFU and memory to metrics.jsonl and TensorBoard, plus a progress bar."""
from __future__ import annotations

import json
import math
import resource
import signal
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


def throughput(tokens: int, seconds: float, *, tokens_per_step: int, flops_per_token: float,
               peak_tflops: float | None, device: torch.device, world: int) -> dict[str, float]:
    """tokens/s over all ranks, the MFU estimate when the device peak is known, and peak memory."""
    rate = tokens / seconds if seconds > 0 else 0.0
    steps = max(1.0, tokens / tokens_per_step)
    out = {"tokens_per_s": rate, "step_time_s": seconds / steps, **memory_stats(device)}
    if peak_tflops:
        out["mfu"] = rate * flops_per_token / (peak_tflops * 1e12 * world)
    return out


def final_line(summary: dict[str, Any], *, steps: int, checkpoints: Path) -> str:
    """A run's last printed line: how it ended (done, stopped, interrupted), its loss and speed, its checkpoints."""
    step = summary["steps"]
    if "signal" in summary:
        ended = f"interrupted by {signal.Signals(summary['signal']).name} at step {step}/{steps}, checkpoint saved"
    else:
        ended = "done" if step >= steps else f"done (stopped at {step}/{steps}; run again to resume)"
    ev = f", held-out loss {summary['eval_loss']:.4f} (ppl {summary['eval_ppl']:.2f})" if "eval_loss" in summary else ""
    return (f"{ended}: {step} steps, {summary['tokens']:,} tokens, final loss {summary['final_loss']:.4f}{ev}; "
            f"{summary['tokens_per_s']:,.0f} tokens/s; checkpoints in {checkpoints}")


def eval_line(step: int, *, steps: int, values: dict[str, Any]) -> str:
    """A held-out evaluation as printed when it comes, in the training lines' style."""
    return (f"step {step}/{steps} held-out loss {values['eval_loss']:.4f} ppl {values['eval_ppl']:.2f} "
            f"({values['eval_tokens']:,} tokens)")


class MetricsLog:
    """Rank 0 appends one JSON object per line to metrics.jsonl and mirrors scalars to TensorBoard.

    `start(step)` opens both for a run that begins (or resumes) at `step`: records of later steps, written by an
    earlier invocation past its last checkpoint, are dropped (TensorBoard's purge_step), and so is an earlier
    invocation's summary at `step`, so a resumed run's log reads as one uninterrupted run with no step twice.
    Non-finite values (a skipped step's NaN gradient norm) are written as null: metrics.jsonl is strict JSON."""

    def __init__(self, run_dir: str | Path, *, enabled: bool, tensorboard: bool) -> None:
        self.enabled, self.tensorboard = enabled, tensorboard
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "metrics.jsonl"
        self.file = None
        self.writer = None

    def start(self, step: int) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        truncate_after(self.path, step)
        self.file = self.path.open("a", encoding="utf-8")
        if self.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is in the `train` extra; JSONL still has everything
                print("tensorboard is not installed (pip install 'refinery[train]'); logging to metrics.jsonl only",
                      file=sys.stderr)
            else:
                self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=step + 1)

    def log(self, step: int, values: dict[str, Any]) -> None:
        if self.file is None:
            return
        record = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}
        self.file.write(json.dumps({"step": step, "time": round(time.time(), 3), **record}, allow_nan=False) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def truncate_after(path: Path, step: int) -> None:
    """Drop the records of steps after `step`, summaries from `step` on (an earlier invocation's end) and a torn
    last line from a metrics file, atomically."""
    if not path.is_file():
        return
    keep, dropped = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped = True
            continue
        at = record.get("step", 0) if isinstance(record, dict) else 0
        if at > step or (at == step and isinstance(record, dict) and record.get("summary")):
            dropped = True
        else:
            keep.append(line)
    if dropped:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
        tmp.replace(path)


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

    def write(self, line: str) -> None:
        """Print a line to stdout, above the bar when there is one."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The metrics.jsonl of a run as a list of records (tests, benchmarks, comparisons)."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
