"""Beam counters for one stage, named as transforms.stats expects."""
from __future__ import annotations

import logging
import time

from apache_beam.metrics import Metrics

from transforms import stats


class StageCounters:
    """Counts docs and chars in/out and drops by reason; counters are created on first use."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._counters: dict[str, object] = {}

    def _inc(self, name: str, value: int) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Metrics.counter(stats.NAMESPACE, name)
        counter.inc(value)

    def count_in(self, chars: int = 0) -> None:
        self._inc(stats.counter_name(self.stage, stats.DOCS_IN), 1)
        if chars:
            self._inc(stats.counter_name(self.stage, stats.CHARS_IN), chars)

    def count_out(self, chars: int = 0) -> None:
        self._inc(stats.counter_name(self.stage, stats.DOCS_OUT), 1)
        if chars:
            self._inc(stats.counter_name(self.stage, stats.CHARS_OUT), chars)

    def count_dropped(self, reason: str, n: int = 1) -> None:
        self._inc(stats.counter_name(self.stage, stats.DROPPED, reason), n)

    def count_edit(self, what: str, n: int = 1) -> None:
        """Parts cut from a record that stays (paragraphs removed by dedup), so the report shows the edit."""
        self._inc(stats.counter_name(self.stage, stats.EDITED, what), n)

    def count(self, what: str, n: int = 1) -> None:
        """A stage-specific tally (cache hits, snippets still failing a check): in the report under `other`."""
        self._inc(stats.counter_name(self.stage, what), n)

    def count_error(self, reason: str, n: int = 1) -> None:
        """Damage that is not one record (a corrupt gzip member, a bad header): counted, then skipped."""
        self._inc(stats.counter_name(self.stage, stats.ERRORS, reason), n)


class Progress:
    """A log line per worker every `every_s` seconds, so a long run shows it is moving and how fast."""

    def __init__(self, stage: str, *, every_s: float = 30.0) -> None:
        self.stage, self.every_s = stage, every_s
        self.count, self.started = 0, time.monotonic()
        self.next_at = self.started + every_s

    def tick(self) -> None:
        self.count += 1
        now = time.monotonic()
        if now >= self.next_at:
            rate = self.count / (now - self.started)
            logging.getLogger("refinery").info("%s: %d documents on this worker (%.1f/s)", self.stage, self.count, rate)
            self.next_at = now + self.every_s
