"""Whether a step may update the model, and whether the run should stop: decided alike on every rank.

A non-finite loss or gradient norm stops the run (train.nonfinite=stop) before the optimizer step, so nothing
from the bad state is applied or saved; or, with train.nonfinite=skip, the step's gradients are dropped (the
optimizer does not step, its moments stay as they were; the step count, the data position and so the LR
schedule advance), and more than train.max_skipped skipped steps in a row stop the run. SIGINT, SIGTERM and SIGUSR1
ask for a checkpoint at the next step boundary; a second SIGINT exits at once. A signal may reach only some ranks
(a scheduler's warning, a forwarded Ctrl-C): its number rides in the rank's row, so every rank stops after the same
step and the checkpoint holds one step of all of them.

Every rank posts a row (step, bad, stop, signal, loss, grad norm) and the rows are summed over ranks, so all
ranks see the same table and take the same branch. The synchronous trainers agree at every step. The decoupled
pipeline never waits for a later stage, so there each module decides on its own numbers at once (its data-parallel
replicas hold the same ones), and the table arrives one step later, or at the next checkpoint, whichever is first.
"""
from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist

from training.checkpoint import list_checkpoints
from training.distributed import Dist

STEP, BAD, STOP, SIGNAL, LOSS, NORM = range(6)  # the columns of a rank's row


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss or gradient norm and the policy says stop; the message says what to do."""


PREEMPTION = (signal.SIGTERM, signal.SIGUSR1)
"""A scheduler taking the machines back (Slurm: SIGTERM, or SIGUSR1 ahead of it with --signal=USR1@<s>): the run
saves and exits 0, so a requeued job (the same command) resumes."""
STOPPING = (signal.SIGINT, *PREEMPTION)


def exit_status(signum: int | None) -> int:
    """The process status after a stop: 0 when done or preempted (a requeue resumes), 130 after Ctrl-C (as a shell)."""
    return 128 + signal.SIGINT if signum == signal.SIGINT else 0


class StopSignals:
    """SIGINT, SIGTERM and SIGUSR1 set `signum` for the loop to read at the next step boundary; a second SIGINT exits.

    torchrun passes a terminal's Ctrl-C on to workers that already got it from the terminal, so a SIGINT within
    `repeat_s` of the first counts as the same one. SIGTERM and SIGUSR1 (preemption) never exit at once.
    """

    def __init__(self, *, announce: bool, repeat_s: float = 1.0) -> None:
        self.announce, self.repeat_s = announce, repeat_s
        self.signum: int | None = None
        self.sigint_at: float | None = None
        self.previous: dict[int, Any] = {}
        self.pid = os.getpid()

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # Python installs handlers from there only
            for sig in STOPPING:
                self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self.pid:  # a DataLoader worker forked from this process: the trainer decides
            return
        now = time.monotonic()
        if signum == signal.SIGINT:
            if self.sigint_at is not None and now - self.sigint_at > self.repeat_s:
                raise KeyboardInterrupt
            self.sigint_at = self.sigint_at or now
        if self.signum is None:
            self.signum = signum
            if self.announce:
                os.write(2, announcement(signum).encode())


def announcement(signum: int) -> str:
    """The line the reporting rank prints when a stop signal reaches it."""
    if signum == signal.SIGINT:
        then = "exiting 130 (Ctrl-C again to exit at once, without it)"
    else:
        then = "exiting 0 (preemption: the same command resumes)"
    grace = ""
    if "TORCHELASTIC_RUN_ID" in os.environ and signum == signal.SIGUSR1:
        grace = "; torchrun itself dies of SIGUSR1 unless its --signals-to-handle names it: send it to the workers only"
    elif "TORCHELASTIC_RUN_ID" in os.environ:
        grace = ("; if torchrun got the signal too, it kills the workers when that takes longer than its shutdown "
                 "timeout (30 s unless torchrun --shutdown-timeout says otherwise)")
    return f"{signal.Signals(signum).name}: saving a checkpoint at the next step boundary, then {then}{grace}\n"


class StepGuard:
    """The non-finite policy and the stop requests of one run, agreed over ranks (see the module docstring)."""

    def __init__(self, *, d: Dist, policy: str, max_skipped: int, lagged: bool, checkpoints: Path,
                 announce: bool) -> None:
        self.d, self.policy, self.max_skipped, self.lagged, self.checkpoints = d, policy, max_skipped, lagged, checkpoints
        self.signals = StopSignals(announce=announce)
        self.skipped, self.streak = 0, 0  # agreed skipped steps of the run; this rank's current run of them
        self.signum: int | None = None  # agreed: a rank was asked to stop
        self.signal_ranks: list[int] = []  # agreed: the ranks that had been asked, when the stop was decided
        self.events: list[dict[str, Any]] = []  # agreed skipped steps not yet logged
        self.group = dist.new_group(backend="gloo") if d.initialized and lagged else None
        self.pending: tuple[torch.Tensor, Any] | None = None

    def state_dict(self) -> dict[str, int]:
        return {"skipped": self.skipped, "streak": self.streak}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped, self.streak = int(state["skipped"]), int(state["streak"])

    def judge(self, *, step: int, loss: float, grad_norm: float) -> bool:
        """True if this rank takes the optimizer step; raises NonFiniteError on every rank when the run must stop."""
        bad = not (math.isfinite(loss) and math.isfinite(grad_norm))
        stop = False
        if self.lagged:  # this module's own verdict now; the table of the previous step follows
            self.streak = self.streak + 1 if bad else 0
            stop = bad and (self.policy == "stop" or self.streak > self.max_skipped)
        row = [step, bad, stop, self.signals.signum or 0, loss, grad_norm]
        if not self.lagged:
            table = self.exchange(row)
            self.resolve(table)
            return not table[:, BAD].any()
        previous, self.pending = self.pending, self.start(row)
        if previous is not None:
            self.resolve(self.finish(previous))
        return not bad

    def settle(self) -> None:
        """Resolve the table still in flight (decoupled pipeline) before a checkpoint or the end of the run."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.resolve(self.finish(pending))

    def resolve(self, table: torch.Tensor) -> None:
        """Act on an agreed table: stop (raise), remember a signal, count and record a skipped step."""
        step = int(table[:, STEP].max())
        asked = [r for r in range(table.shape[0]) if table[r, SIGNAL]]
        if asked and self.signum is None:  # the lowest asking rank's signal: the same choice on every rank
            self.signum, self.signal_ranks = int(table[asked[0], SIGNAL]), asked
        bad = [r for r in range(table.shape[0]) if table[r, BAD]]
        if not self.lagged:  # every rank skips together: one streak for all (the decoupled one counts in judge)
            self.streak = self.streak + 1 if bad else 0
        if not bad:
            return
        row = table[bad[0]]
        where = f" on rank {bad[0]}" if self.lagged and self.d.world > 1 else ""
        values = f"loss {float(row[LOSS]):.6g}, grad norm {float(row[NORM]):.6g}{where}"
        over = bool(table[:, STOP].any()) if self.lagged else self.streak > self.max_skipped
        if self.policy == "stop" or over:
            raise NonFiniteError(self.message(step, values))
        self.skipped += 1
        self.events.append({"step": step, "skipped": True, "skipped_ranks": bad, "loss": float(row[LOSS]),
                            "grad_norm": float(row[NORM]), "skipped_steps": self.skipped})

    def message(self, step: int, values: str) -> str:
        found = list_checkpoints(self.checkpoints)
        resume = f"resume from {found[-1]}" if found else "start again (no checkpoint was saved yet)"
        if self.policy == "stop":
            what = (f"step {step}: the loss or gradient norm is not finite ({values}); train.nonfinite=stop, so the "
                    "run stops before this step's update and saves nothing from it")
            other = "; or set train.nonfinite=skip to skip such steps"
        else:
            what = (f"step {step}: more than train.max_skipped = {self.max_skipped} steps in a row had a non-finite "
                    f"loss or gradient norm (last: {values}); the run has diverged")
            other = ""
        return f"{what}. Lower optim.lr or raise optim.warmup_steps, check the data, then {resume}{other}"

    def own_row(self, row: list[float]) -> torch.Tensor:
        """A table of zeros but for this rank's row: summed over ranks, it holds every rank's row."""
        table = torch.zeros(self.d.world, len(row), dtype=torch.float64)
        table[self.d.rank] = torch.tensor(row, dtype=torch.float64)
        return table

    def exchange(self, row: list[float]) -> torch.Tensor:
        table = self.own_row(row)
        if self.d.initialized:
            dist.all_reduce(table)
        return table

    def start(self, row: list[float]) -> tuple[torch.Tensor, Any]:
        """Start summing the table on the guard's own group (no other traffic waits on it); finish() waits."""
        table = self.own_row(row)
        work = dist.all_reduce(table, group=self.group, async_op=True) if self.group is not None else None
        return table, work

    @staticmethod
    def finish(pending: tuple[torch.Tensor, Any]) -> torch.Tensor:
        table, work = pending
        if work is not None:
            work.wait()
        return table
