"""What a DaskRunner task runs on a worker: a ParDo bundle through Beam's DoFnRunner on a DoFn set up once per
worker, splits of a splittable DoFn, and the small list helpers the graph is built from (pipelines/dask_runner.py)."""
from __future__ import annotations

import dataclasses
import heapq
from typing import Any, Sequence

from apache_beam.internal import pickler
from apache_beam.metrics.execution import MetricsContainer
from apache_beam.runners.common import DoFnRunner, DoFnSignature, Receiver
from apache_beam.runners.worker import statesampler
from apache_beam.transforms.sideinputs import SideInputMap
from apache_beam.transforms.window import GlobalWindows
from apache_beam.utils.counters import CounterFactory

# Per worker process, by job token. Set-up DoFns waiting for their next bundle (Beam's DaskRunner deserializes
# and sets up a DoFn for every partition: a model load or an extractor process each time), and the metric
# updates of finished bundles by (step, partition), collected when the job ends rather than by a task per
# bundle. A worker lost mid-job takes its share of the metrics along; stats.json does not use them.
_IDLE: dict[tuple[str, str], list] = {}
_METRICS: dict[str, dict] = {}


@dataclasses.dataclass(frozen=True, slots=True)
class _Step:
    """What a ParDo's bundles need; pickled with Beam's pickler, so each worker unpickles its own DoFn."""

    fn: Any
    args: Sequence
    kwargs: dict
    windowing: Any
    tags: tuple
    views: tuple  # (view class, view options) per side input, in the DoFn's argument order


class _Receivers(dict):
    """Tag -> receiver into the current bundle's output lists; an undeclared tag is dropped, as on DirectRunner."""

    def __init__(self, tags: tuple) -> None:
        super().__init__({tag: _ListReceiver(self, tag) for tag in tags})
        self.outputs: dict = {}

    def __missing__(self, tag: str) -> Receiver:
        return _ListReceiver(None, tag)


class _ListReceiver(Receiver):
    def __init__(self, owner: _Receivers | None, tag: str | None) -> None:
        self.owner, self.tag = owner, tag

    def receive(self, windowed_value) -> None:
        if self.owner is not None:
            self.owner.outputs.setdefault(self.tag, []).append(windowed_value)


def _run_bundle(ref: tuple[str, str, bytes], index: int, elements: list, *side_values: list) -> dict:
    """One ParDo bundle -> its outputs by tag, finish_bundle's included (Beam 2.77's apply_dofn_to_bundle builds
    its results before it calls finish_bundle, so those are lost)."""
    job, label, spec = ref
    if not elements:
        return {}
    idle = _IDLE.setdefault((job, label), [])
    try:
        runner, receivers = idle.pop()  # pop, not test-then-pop: a worker may run several threads
    except IndexError:
        runner, receivers = _set_up(label, spec, side_values)
    receivers.outputs = {}
    container, sampler = MetricsContainer(label), statesampler.StateSampler(label, CounterFactory())
    statesampler.set_current_tracker(sampler)  # Beam metrics find their container through the thread's sampler
    try:
        with sampler.scoped_state(label, "process", metrics_container=container):
            runner.start()
            for element in elements:
                _process(runner, element)
            runner.finish()
    except BaseException:
        runner.teardown()  # a failed bundle's DoFn is not reused, as in Beam's SDK harness
        raise
    finally:
        statesampler.set_current_tracker(None)
    idle.append((runner, receivers))
    _METRICS.setdefault(job, {})[(label, index)] = container.get_cumulative()  # a rerun replaces, not adds
    return receivers.outputs


def _set_up(label: str, spec: bytes, side_values: Sequence[list]) -> tuple[DoFnRunner, _Receivers]:
    step: _Step = pickler.loads(spec)
    receivers = _Receivers(step.tags)
    sides = [SideInputMap(view, options, values) for (view, options), values in zip(step.views, side_values)]
    runner = DoFnRunner(step.fn, step.args, step.kwargs, sides, step.windowing, receivers, step_name=label)
    runner.setup()
    return runner, receivers


def _process(runner: DoFnRunner, element) -> None:
    """An element, or for a splittable DoFn an (element, restriction, estimator state, size) from `_split`."""
    if isinstance(element, tuple):
        wv, restriction, state, size = element
        residuals = runner.process_with_sized_restriction(wv.with_value(((wv.value, (restriction, state)), size)))
    else:
        residuals = runner.process(element)
    if residuals:  # dask cannot resume work later (no checkpoints); Beam's DaskRunner cannot either
        raise NotImplementedError(f"{runner.step_name}: a splittable DoFn deferred work; DaskRunner cannot resume it")


def _release(job: str) -> dict:
    """At the job's end, on each worker: tear its DoFns down and hand over its metric updates."""
    for key in [k for k in _IDLE if k[0] == job]:
        for runner, _ in _IDLE.pop(key):
            runner.teardown()
    return _METRICS.pop(job, {})


def _split(spec: bytes, elements: list) -> list[tuple]:
    """A splittable DoFn's elements as the DoFn splits them, with sizes for `_balance` (Beam's DaskRunner reads
    each element whole, so one big file is read by one worker)."""
    signature = DoFnSignature(pickler.loads(spec).fn)
    provider, estimator = signature.get_restriction_provider(), signature.get_watermark_estimator_provider()
    return [(wv, r, estimator.initial_estimator_state(wv.value, r), provider.restriction_size(wv.value, r))
            for wv in elements for r in provider.split(wv.value, provider.initial_restriction(wv.value))]


def _balance(count: int, *splits: list) -> list[list]:
    """Restrictions into `count` partitions of about equal size: largest first, onto the least loaded."""
    bins: list[list] = [[] for _ in range(count)]
    loads = [(0.0, i) for i in range(count)]
    for item in sorted((x for s in splits for x in s), key=lambda x: -x[3]):
        load, i = heapq.heappop(loads)
        bins[i].append(item)
        heapq.heappush(loads, (load + item[3], i))
    return bins


def _select(outputs: dict, tag: str | None) -> list:
    return outputs.get(tag, [])


def _item(values: list, index: int):
    return values[index]


def _concat(*parts: list) -> list:
    return [x for p in parts for x in p]


def _drain(part: list) -> int:
    return len(part)


def _key(wv) -> Any:
    return wv.value[0]


def _grouped(groups: list) -> list:
    """bag.groupby's (key, [WindowedValue((key, value))]) -> GroupByKey's (key, [value]) in the global window."""
    return [GlobalWindows.windowed_value((k, [wv.value[1] for wv in items])) for k, items in groups]


def _precombine(spec: bytes, elements: list) -> list:
    """Combiner lifting: each partition's values per key folded before the shuffle (Beam's DaskRunner has none,
    so every value crosses it)."""
    fn, accumulators = pickler.loads(spec), {}
    fn.setup()
    for wv in elements:
        k, v = wv.value
        accumulators[k] = fn.add_input(accumulators[k] if k in accumulators else fn.create_accumulator(), v)
    fn.teardown()
    return [GlobalWindows.windowed_value((k, fn.compact(a))) for k, a in accumulators.items()]


def _postcombine(spec: bytes, groups: list) -> list:
    fn = pickler.loads(spec)
    fn.setup()
    out = [GlobalWindows.windowed_value((k, fn.extract_output(fn.merge_accumulators(wv.value[1] for wv in items))))
           for k, items in groups]
    fn.teardown()
    return out
