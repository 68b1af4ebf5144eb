"""Counts for one stage, named as transforms.stats expects: as data (exact on every runner) and as Beam metrics.

stats.json is built from counts that travel through the pipeline as records: each counting DoFn adds to a
local tally and, when its bundle finishes, emits the bundle's tally on the `STATS` output; the job sums them
(`CollectStats`). A runner discards the outputs of a bundle it retries, so a retried bundle is counted once,
and no runner has to implement metrics (Beam's DaskRunner does not; portable Flink and Spark return them in
part). The same increments also go to Beam metrics, which runner UIs show while the job runs.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from typing import Iterable, Iterator

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindows

from transforms import stats

STATS = "refinery_stats"  # the output tag of per-bundle count records; CollectStats finds them by this tag


class StageCounters:
    """Counts docs and chars in/out and drops by reason, into the bundle's tally and Beam counters alike."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._counters: dict[str, object] = {}
        self.tally: Counter[str] = Counter()  # since the last `take()`: what the bundle's STATS record carries

    def _inc(self, name: str, value: int) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Metrics.counter(stats.NAMESPACE, name)
        counter.inc(value)
        self.tally[name] += value

    def take(self) -> Counter[str]:
        """The tally so far, and a fresh one for what follows."""
        tally, self.tally = self.tally, Counter()
        return tally

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


class CountingFn(beam.DoFn):
    """A DoFn whose counts leave each bundle as one record on the `STATS` output.

    Get counters with `stage_counters(stage)`; apply the DoFn with `Counted` (or `.with_outputs(STATS, ...)`).
    A subclass that overrides finish_bundle must end it with `yield from self.emit_counts()`.
    """

    def stage_counters(self, stage: str) -> StageCounters:
        counters = StageCounters(stage)
        self.__dict__.setdefault("_stage_counters", []).append(counters)
        return counters

    def finish_bundle(self) -> Iterator:
        yield from self.emit_counts()

    def emit_counts(self) -> Iterator[TaggedOutput]:
        """The bundle's tally over all this DoFn's counters, as one windowed record (nothing if nothing counted)."""
        tally: Counter[str] = Counter()
        for counters in self.__dict__.get("_stage_counters", ()):
            tally.update(counters.take())
        if tally:
            yield TaggedOutput(STATS, GlobalWindows.windowed_value(dict(tally)))


class Counted(beam.PTransform):
    """`ParDo(fn)` with the STATS output declared: the main output, or (main, *tagged) when `tags` are given.

    The STATS output is left in the graph for `CollectStats` to find, so call sites see only what they had.
    """

    def __init__(self, fn: CountingFn, *args, tags: tuple[str, ...] = (), **kwargs) -> None:
        super().__init__()
        self.fn, self.args, self.kwargs, self.tags = fn, args, kwargs, tuple(tags)

    def expand(self, pcoll):
        out = pcoll | beam.ParDo(self.fn, *self.args, **self.kwargs).with_outputs(STATS, *self.tags, main="main")
        return (out.main, *(out[tag] for tag in self.tags)) if self.tags else out.main


def collect_stats(pipeline: beam.Pipeline, path: str) -> None:
    """After the graph is built: every STATS output -> one dict of totals, written as JSON to `path` by the job."""
    tallies = stats_outputs(pipeline)
    merged = (tuple(tallies) | "FlattenStats" >> beam.Flatten() if tallies
              else pipeline | "NoStats" >> beam.Create([]))
    _ = (merged
         | "SumStats" >> beam.CombineGlobally(SumCounts())
         | "WriteStats" >> beam.Map(write_counts, path))


def stats_outputs(pipeline: beam.Pipeline) -> list:
    """The STATS PCollections of every counting ParDo applied so far."""
    found = []

    class _Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node) -> None:
            found.extend(pc for tag, pc in node.outputs.items() if tag == STATS)

    pipeline.visit(_Visitor())
    return found


def write_counts(totals: dict[str, int], path: str) -> str:
    """The totals as JSON at `path` (any Beam filesystem); read back by `read_counts`."""
    with FileSystems.create(path) as fh:
        fh.write(json.dumps(totals, sort_keys=True).encode("utf-8"))
    return path


def read_counts(path: str) -> dict[str, int]:
    with FileSystems.open(path) as fh:
        return {str(k): int(v) for k, v in json.loads(fh.read().decode("utf-8")).items()}


class SumCounts(beam.CombineFn):
    """Per-bundle tallies -> one dict of totals."""

    def create_accumulator(self) -> Counter[str]:
        return Counter()

    def add_input(self, acc: Counter[str], tally: dict[str, int]) -> Counter[str]:
        acc.update(tally)
        return acc

    def merge_accumulators(self, accs: Iterable[Counter[str]]) -> Counter[str]:
        total: Counter[str] = Counter()
        for acc in accs:
            total.update(acc)
        return total

    def extract_output(self, acc: Counter[str]) -> dict[str, int]:
        return dict(sorted(acc.items()))
