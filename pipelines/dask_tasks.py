"""What a DaskRunner task runs on a worker: a bundle through a chain of fused ParDos (Beam's DoFnRunners, set up
once per worker), splits of a splittable DoFn, and the small list helpers the graph is built from
(pipelines/dask_graph.py)."""
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
from apache_beam.utils.windowed_value import WindowedValue
from dask.sizeof import sizeof

# Per worker process, by job token. Set-up DoFns waiting for their next bundle (Beam's DaskRunner deserializes
# and sets up a DoFn for every partition: a model load or an extractor process each time), and the metric
# updates of finished bundles by (step, partition), collected when the job ends rather than by a task per
# bundle. A worker lost mid-job takes its share of the metrics along; stats.json does not use them.
_IDLE: dict[tuple[str, str], list] = {}
_METRICS: dict[str, dict] = {}


@sizeof.register(WindowedValue)
def _sizeof_windowed(wv: WindowedValue) -> int:
    """What a WindowedValue holds. Dask sizes unknown objects with sys.getsizeof: 80 bytes for the wrapper of a
    100 KB page (and for a slots dataclass), so the scheduler took moving a bundle's pages to another worker for
    free and ran a small step there (a stats or rejected-output select) after seconds of transfer."""
    value = wv.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return 64 + sum(sizeof(getattr(value, f.name)) for f in dataclasses.fields(value))
    return 64 + sizeof(value)


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
    """Tag -> receiver of one step: into the bundle's output lists, or for the tag the next fused step reads, into
    that step's DoFnRunner. An undeclared tag is dropped, as on the DirectRunner."""

    def __init__(self, step: int, tags: tuple, forward: str | None | bool) -> None:
        super().__init__({tag: _ListReceiver(self, (step, tag)) for tag in tags if tag != forward})
        self.outputs: dict = {}
        self.step, self.forward = step, forward

    def __missing__(self, tag: str) -> Receiver:
        return _ListReceiver(None, (self.step, tag))


class _ListReceiver(Receiver):
    def __init__(self, owner: _Receivers | None, key: tuple) -> None:
        self.owner, self.key = owner, key

    def receive(self, windowed_value) -> None:
        if self.owner is not None:
            self.owner.outputs.setdefault(self.key, []).append(windowed_value)


class _Forward(Receiver):
    """Into the next fused step, under its state so that Beam metrics reach that step's container."""

    def __init__(self) -> None:
        self.runner: DoFnRunner | None = None
        self.state = None

    def receive(self, windowed_value) -> None:
        with self.state:
            self.runner.process(windowed_value)


@dataclasses.dataclass
class _Chain:
    """One worker's set-up DoFns of a fused chain, and the receivers that join them."""

    runners: list
    receivers: list
    forwards: list  # forwards[k]: step k's receiver into step k + 1 (None for the last step)


def _run_chain(ref: tuple[str, str, tuple], index: int, elements: list, *side_values: list) -> dict:
    """One bundle through a chain of fused ParDos -> the outputs that leave the chain, by (step, tag).

    Each element goes through every step before the next one starts, as in a Beam runner's fused stage, so no
    step's whole output is held or moved between tasks. finish_bundle's outputs are kept (Beam 2.77's
    apply_dofn_to_bundle builds its results before it calls finish_bundle, so those are lost)."""
    job, name, steps = ref
    if not elements:
        return {}
    idle = _IDLE.setdefault((job, name), [])
    try:
        chain = idle.pop()  # pop, not test-then-pop: a worker may run several threads
    except IndexError:
        chain = _set_up(steps, side_values)
    outputs: dict = {}
    for receivers in chain.receivers:
        receivers.outputs = outputs
    labels = [label for label, _, _, _ in steps]
    containers = [MetricsContainer(label) for label in labels]
    sampler = statesampler.StateSampler(name, CounterFactory())
    states = [sampler.scoped_state(label, "process", metrics_container=c) for label, c in zip(labels, containers)]
    for k, forward in enumerate(chain.forwards):
        if forward is not None:
            forward.state = states[k + 1]
    statesampler.set_current_tracker(sampler)  # Beam metrics find their container through the thread's sampler
    try:
        for runner, state in zip(chain.runners, states):
            with state:
                runner.start()
        with states[0]:
            for element in elements:
                _process(chain.runners[0], element)
        for runner, state in zip(chain.runners, states):  # in order: a step's finish_bundle feeds the next one
            with state:
                runner.finish()
    except BaseException:
        for runner in chain.runners:
            runner.teardown()  # a failed bundle's DoFns are not reused, as in Beam's SDK harness
        raise
    finally:
        statesampler.set_current_tracker(None)
    idle.append(chain)
    for label, container in zip(labels, containers):
        _METRICS.setdefault(job, {})[(label, index)] = container.get_cumulative()  # a rerun replaces, not adds
    return outputs


def _set_up(steps: tuple, side_values: Sequence[list]) -> _Chain:
    """DoFnRunners for the chain's steps, last first, so that each step can forward into the next."""
    runners: list = [None] * len(steps)
    receivers: list = [None] * len(steps)
    forwards: list = [None] * len(steps)
    offsets = [0]
    for _, _, _, n_sides in steps:
        offsets.append(offsets[-1] + n_sides)
    for k in reversed(range(len(steps))):
        label, spec, _, _ = steps[k]
        step: _Step = pickler.loads(spec)
        forward_tag = steps[k + 1][2] if k + 1 < len(steps) else False  # the tag the next step reads
        receivers[k] = _Receivers(k, step.tags, forward_tag)
        if k + 1 < len(steps):
            forwards[k] = _Forward()
            forwards[k].runner = runners[k + 1]
            dict.__setitem__(receivers[k], forward_tag, forwards[k])
        values = side_values[offsets[k]:offsets[k + 1]]
        sides = [SideInputMap(view, options, v) for (view, options), v in zip(step.views, values)]
        runners[k] = DoFnRunner(step.fn, step.args, step.kwargs, sides, step.windowing, receivers[k], step_name=label)
        runners[k].setup()
    return _Chain(runners=runners, receivers=receivers, forwards=forwards)


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
        for chain in _IDLE.pop(key):
            for runner in chain.runners:
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


def _select(outputs: dict, key: tuple) -> list:
    return outputs.get(key, [])


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
