"""The worker side of live progress: a counting DoFn's running totals as one small JSON file, rewritten in place.

When REFINERY_PROGRESS_DIR is set (pipelines/progress.py sets it for a local run, so every worker process
inherits it), each CountingFn instance keeps the totals of all its counters since setup and writes them to
`<dir>/<hostname>-<pid>-<id>.json` at most once per `every_s` and once more when a bundle finishes. A write is a
temp file in the same folder, then os.replace, so the reader never sees half a file.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
from collections import Counter
from typing import Mapping

ENV = "REFINERY_PROGRESS_DIR"  # the same name pipelines/progress.py sets


class ProgressFile:
    """Cumulative counts of one DoFn instance, written atomically to its own file in the progress folder."""

    def __init__(self, folder: str, *, owner: object, every_s: float = 1.0) -> None:
        self.path = os.path.join(folder, f"{socket.gethostname()}-{os.getpid()}-{id(owner)}.json")
        self.every_s = every_s
        self.totals: Counter[str] = Counter()  # counts already taken from the tallies (never reset)
        self.next_at = 0.0

    def due(self) -> bool:
        """Whether a second has passed since the last write (cheap: one clock read)."""
        return time.monotonic() >= self.next_at

    def write(self, pending: Mapping[str, int] | None = None) -> None:
        """The totals plus counts not yet taken, as {counter name: int}, replacing the previous file."""
        totals = self.totals + Counter(pending) if pending else self.totals
        try:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), prefix=".part-", suffix=".tmp")
        except OSError:  # no folder (any more): nothing to report to
            return
        self.next_at = time.monotonic() + self.every_s
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({k: int(v) for k, v in totals.items()}, fh)
            os.replace(tmp, self.path)
        except OSError as err:  # the folder went away (the run is over): progress is best effort, the job goes on
            logging.getLogger(__name__).debug("progress file %s not written: %s", self.path, err)
            if os.path.exists(tmp):
                os.unlink(tmp)


def progress_file(owner: object) -> ProgressFile | None:
    """A ProgressFile when REFINERY_PROGRESS_DIR names a folder, else None (nothing is written)."""
    folder = os.environ.get(ENV)
    return ProgressFile(folder, owner=owner) if folder else None
