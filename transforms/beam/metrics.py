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
from bisect import bisect_right
from collections import Counter
from typing import Callable, Iterable, Iterator

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindows

from transforms import stats
from transforms.beam.progress_files import progress_file

STATS = "refinery_stats"  # the output tag of per-bundle count records; CollectStats finds them by this tag


class StageCounters:
    """Counts docs and chars in/out and drops by reason, into the bundle's tally and Beam counters alike.

    Worker time and the length/score histograms go to the tally only (no Beam metric per bin): a histogram is a
    list of bin counts per measured quantity, turned into `<stage>|hist|<what>|<bin>` names when taken."""

    def __init__(self, stage: str, *, tick: Callable[[], None] | None = None) -> None:
        self.stage = stage
        self.tick = tick  # called on each document counted in, when live progress files are written
        self._counters: dict[str, object] = {}
        self.tally: Counter[str] = Counter()  # since the last `take()`: what the bundle's STATS record carries
        self._hists: dict[str, tuple[tuple[float, ...], list[int]]] = {}
        self._ns = 0  # worker nanoseconds not yet taken
        self._t0 = 0
        self._names = {kind: stats.counter_name(stage, kind) for kind in (
            stats.DOCS_IN, stats.DOCS_OUT, stats.CHARS_IN, stats.CHARS_OUT, stats.TIME_US)}

    def _inc(self, name: str, value: int) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Metrics.counter(stats.NAMESPACE, name)
        counter.inc(value)
        self.tally[name] += value

    def _pending(self) -> Counter[str]:
        """Time and histogram bins counted since the last `take()`, as counter names."""
        pending: Counter[str] = Counter()
        if self._ns >= 1000:
            pending[self._names[stats.TIME_US]] = self._ns // 1000
        prefix = stats.counter_name(self.stage, stats.HIST)
        for what, (_, counts) in self._hists.items():
            for index, n in enumerate(counts):
                if n:
                    pending[f"{prefix}{stats.SEP}{what}{stats.SEP}{index}"] = n
        return pending

    def peek(self) -> Counter[str]:
        """Everything counted since the last `take()`, time and histogram bins included, left in place."""
        return self.tally + self._pending()

    def take(self) -> Counter[str]:
        """The tally so far, and a fresh one for what follows (sub-microsecond time is carried over). Time and
        histograms reach Beam metrics here, once per bundle, not once per document."""
        for name, value in self._pending().items():
            self._inc(name, value)
        tally, self.tally, self._ns = self.tally, Counter(), self._ns % 1000
        for _, counts in self._hists.values():
            counts[:] = [0] * len(counts)
        return tally

    def observe(self, what: str, value: float) -> None:
        """One value into the fixed-bin histogram `what` (bins: transforms.stats.edges_of)."""
        hist = self._hists.get(what)
        if hist is None:
            edges = stats.edges_of(what)
            hist = self._hists[what] = (edges, [0] * (len(edges) + 1))
        hist[1][bisect_right(hist[0], value)] += 1

    def start_clock(self) -> None:
        """Start timing this stage's own work; stop before yielding, or the stages fused after it are timed too."""
        self._t0 = time.perf_counter_ns()

    def stop_clock(self) -> None:
        """Add the time since `start_clock` (nothing when the clock is not running)."""
        if self._t0:
            self._ns += time.perf_counter_ns() - self._t0
            self._t0 = 0

    def add_time_ns(self, ns: int) -> None:
        """Worker time spent in this stage's own work, reported as `<stage>|time_us`."""
        self._ns += ns

    def count_in(self, chars: int | None = None, *, words: int | None = None) -> None:
        """One document in; its length (when given) also goes to the chars_in / words_in histograms."""
        self._inc(self._names[stats.DOCS_IN], 1)
        if chars is not None:
            if chars:
                self._inc(self._names[stats.CHARS_IN], chars)
            self.observe(stats.CHARS_IN, chars)
        if words is not None:
            self.observe(stats.WORDS_IN, words)
        if self.tick is not None:
            self.tick()

    def count_out(self, chars: int | None = None, *, words: int | None = None) -> None:
        """One document out; its length (when given) also goes to the chars_out / words_out histograms."""
        self._inc(self._names[stats.DOCS_OUT], 1)
        if chars is not None:
            if chars:
                self._inc(self._names[stats.CHARS_OUT], chars)
            self.observe(stats.CHARS_OUT, chars)
        if words is not None:
            self.observe(stats.WORDS_OUT, words)

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
        """Counters of one stage; with REFINERY_PROGRESS_DIR set, they also feed this instance's progress file."""
        if "_progress" not in self.__dict__:
            self._progress = progress_file(self)
        counters = StageCounters(stage, tick=None if self._progress is None else self._progress_tick)
        self.__dict__.setdefault("_stage_counters", []).append(counters)
        return counters

    def _progress_tick(self) -> None:
        """At most once a second: the running totals of every counter of this instance to its progress file."""
        if self._progress.due():
            pending: Counter[str] = Counter()
            for counters in self.__dict__.get("_stage_counters", ()):
                pending.update(counters.peek())
            self._progress.write(pending)

    def finish_bundle(self) -> Iterator:
        yield from self.emit_counts()

    def emit_counts(self) -> Iterator[TaggedOutput]:
        """The bundle's tally over all this DoFn's counters, as one windowed record (nothing if nothing counted)."""
        tally: Counter[str] = Counter()
        for counters in self.__dict__.get("_stage_counters", ()):
            tally.update(counters.take())
        if self.__dict__.get("_progress") is not None:
            self._progress.totals.update(tally)
            self._progress.write()
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
