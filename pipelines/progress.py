"""Live progress of a local run: input bytes read of the total, documents read and kept, docs/s and an ETA.

Workers write their stages' running counts to small JSON files in a folder named by the REFINERY_PROGRESS_DIR
environment variable (transforms/beam/metrics.py), which this process sets before the run so that every local
worker process inherits it; a thread here sums the files and draws a bar on a terminal, or logs a line every
`every_s` seconds when the output is a file. Beam metrics would need the runner's cooperation while the job runs,
which the local FnApiRunner does not give (its result exists only once the run is over). Cluster runners keep
their own progress (Beam's job-state messages, the runner's console).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import IO, Iterator, Sequence

from transforms import stats
from transforms.beam.progress_files import ENV

BAR_WIDTH = 24
log = logging.getLogger("refinery")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the progress line shows, summed over every worker."""

    bytes_read: int
    docs_read: int
    docs_kept: int


def read_totals(folder: str) -> Counter[str]:
    """The sum of every worker's counts file (a file being replaced or half-written is skipped this time)."""
    totals: Counter[str] = Counter()
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if not entry.name.endswith(".json"):
                continue
            try:
                with open(entry.path, encoding="utf-8") as fh:
                    totals.update({k: int(v) for k, v in json.load(fh).items()})
            except (OSError, ValueError, AttributeError):
                continue
    return totals


def snapshot(totals: Counter[str], stages: Sequence[str]) -> Snapshot:
    """Read = what the first stage passed on, kept = what the last stage passed on (the shards written so far)."""
    first, last = (stages[0], stages[-1]) if stages else ("read", "write")
    return Snapshot(bytes_read=totals[stats.counter_name(first, stats.INPUT_BYTES)],
                    docs_read=totals[stats.counter_name(first, stats.DOCS_OUT)],
                    docs_kept=totals[stats.counter_name(last, stats.DOCS_OUT)])


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def size(n: int) -> str:
    """Bytes in the largest unit that keeps a digit before the point (1000-based, like file managers)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def progress_line(snap: Snapshot, *, total_bytes: int, elapsed_s: float) -> str:
    """One line: bytes read of the total, documents read and kept, the rate, and the time left at that rate."""
    parts = []
    if total_bytes:
        share = min(1.0, snap.bytes_read / total_bytes)
        parts.append(f"{size(snap.bytes_read)} of {size(total_bytes)} ({100 * share:.0f}%)")
    rate = snap.docs_read / elapsed_s if elapsed_s > 0 else 0.0
    parts += [f"{snap.docs_read:,} docs read", f"{snap.docs_kept:,} kept", f"{rate:,.1f} docs/s"]
    if total_bytes and 0 < snap.bytes_read < total_bytes:
        parts.append(f"ETA {duration(elapsed_s * (total_bytes - snap.bytes_read) / snap.bytes_read)}")
    parts.append(f"elapsed {duration(elapsed_s)}")
    return " | ".join(parts)


def progress_bar(snap: Snapshot, *, total_bytes: int, elapsed_s: float) -> str:
    """The line behind a bar of the bytes read (no bar when the total is unknown)."""
    line = progress_line(snap, total_bytes=total_bytes, elapsed_s=elapsed_s)
    if not total_bytes:
        return line
    filled = int(BAR_WIDTH * min(1.0, snap.bytes_read / total_bytes))
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {line}"


class ProgressReporter:
    """Sums the workers' files while the run works; on a terminal redraws one bar, else logs every `every_s` s."""

    def __init__(self, folder: str, *, stages: Sequence[str], total_bytes: int, stream: IO[str] | None = None,
                 every_s: float = 10.0, poll_s: float = 1.0) -> None:
        self.folder, self.stages, self.total_bytes = folder, stages, total_bytes
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s, self.poll_s = every_s, poll_s
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="refinery-progress", daemon=True)

    def current(self) -> Snapshot:
        return snapshot(read_totals(self.folder), self.stages)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the thread; a terminal's bar is finished with its last state and a newline."""
        self._stop.set()
        self._thread.join()
        if self.tty:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def _loop(self) -> None:
        next_line = self.started + self.every_s
        while not self._stop.wait(self.poll_s if self.tty else max(0.05, next_line - time.monotonic())):
            if self.tty:
                self._draw()
            else:
                log.info("progress: %s", progress_line(self.current(), total_bytes=self.total_bytes,
                                                       elapsed_s=time.monotonic() - self.started))
                next_line += self.every_s

    def _draw(self) -> None:
        bar = progress_bar(self.current(), total_bytes=self.total_bytes, elapsed_s=time.monotonic() - self.started)
        self.stream.write(f"\r\x1b[K{bar}")
        self.stream.flush()


@contextlib.contextmanager
def live_progress(*, enabled: bool, stages: Sequence[str], total_bytes: int,
                  stream: IO[str] | None = None, every_s: float = 10.0) -> Iterator[ProgressReporter | None]:
    """While the block runs, workers started in it report to a fresh folder and a reporter shows their sums.

    `stages` may be filled in the block (a job knows its stages once its graph is built)."""
    if not enabled:
        yield None
        return
    folder, before = tempfile.mkdtemp(prefix="refinery-progress-"), os.environ.get(ENV)
    os.environ[ENV] = folder
    reporter = ProgressReporter(folder, stages=stages, total_bytes=total_bytes, stream=stream, every_s=every_s)
    reporter.start()
    try:
        yield reporter
    finally:
        reporter.stop()
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
        shutil.rmtree(folder, ignore_errors=True)
