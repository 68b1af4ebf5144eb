"""The Beam graph as dask tasks, for pipelines/dask_runner.py: ParDos fused into stages, shuffles, side inputs
computed once, splittable reads dealt out by size, and every output that nothing reads still computed."""
from __future__ import annotations

import dataclasses
import uuid
from collections import Counter

import dask
from apache_beam.internal import pickler
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.runners.common import DoFnSignature
from apache_beam.runners.dask.overrides import _Create, _Flatten, _GroupByKey, _GroupByKeyOnly, _Reshuffle
from apache_beam.transforms.core import CombinePerKey, Impulse, ParDo
from apache_beam.transforms.window import GlobalWindows
from dask.delayed import Delayed

from pipelines.dask_tasks import (
    _balance, _concat, _drain, _grouped, _item, _key, _postcombine, _precombine, _run_chain, _select, _split, _Step,
)


@dataclasses.dataclass(eq=False)
class _Stage:
    """ParDos fused into one task per partition, as a Beam runner fuses a stage: each element passes through every
    step in turn. Beam's DaskRunner makes each ParDo a task over its whole input: every step's output was held in
    memory, moved between workers at will, and each step cost a task per partition and output tag.

    Its tasks are made last (graph()): readers of an output refer to them by key before then, so a step visited
    after another transform has read one of the stage's outputs can still join it."""

    key: str  # the name of its tasks' keys, (key, partition)
    inputs: list  # the first step's partitions
    steps: list = dataclasses.field(default_factory=list)  # (label, spec, tag read from the step before, sides)
    sides: list = dataclasses.field(default_factory=list)  # side input tasks of every step, in step order

    def placeholders(self) -> list[Delayed]:
        """Its tasks by key only; graph() adds their definitions."""
        return [Delayed((self.key, i), {}) for i in range(len(self.inputs))]


@dataclasses.dataclass(frozen=True, eq=False)
class _StageOutput:
    stage: _Stage
    step: int
    tag: str | None


class _Consumers(PipelineVisitor):
    """How many steps read each PCollection, as a main or a side input: only a PCollection read once is fused."""

    def __init__(self) -> None:
        self.count: Counter = Counter()

    def visit_transform(self, node: AppliedPTransform) -> None:
        self.count.update(node.inputs)
        self.count.update(si.pvalue for si in node.side_inputs)


class GraphBuilder(PipelineVisitor):
    """Translates the (overridden) Beam graph into dask tasks: a list of partition tasks per PCollection, or for a
    ParDo's output, its place in a fused stage until something reads it."""

    def __init__(self, pipeline, *, npartitions: int, split_partitions: int, partition_size: int | None) -> None:
        self.npartitions, self.split_partitions, self.partition_size = npartitions, split_partitions, partition_size
        self.token = uuid.uuid4().hex[:8]
        self.parts: dict = {}  # PCollection -> its partitions' tasks, or a _StageOutput
        self.consumed: set = set()
        consumers = _Consumers()
        pipeline.visit(consumers)
        self.readers = consumers.count
        self.stages: list[_Stage] = []
        self.read_from: dict[str, _Stage] = {}  # the key name of a task that reads a stage's output -> the stage
        self._inside: AppliedPTransform | None = None  # a composite translated whole: its parts are skipped

    def task(self, fn, *args, label: str, index: int = 0) -> Delayed:
        key = (f"{label}-{fn.__name__.strip('_')}-{self.token}", index)
        return dask.delayed(fn, pure=False, traverse=False)(*args, dask_key_name=key)

    def graph(self) -> tuple[dict, list]:
        """Every PCollection nothing reads, a task per partition (Beam's DaskRunner computes only the last
        transform's bag: branches off its path, such as the rejected writer or the stats, never ran), as one
        graph with each chain of single-input steps fused into one task. A task that two branches share (a
        ParDo with two outputs) must stay one task, so the graph is fused whole; dask.bag's optimizer does that
        for graphs that mix bag layers (the shuffles) and Delayed tasks, which dask.optimize cannot."""
        from dask.bag.core import optimize

        bundles = {id(stage): self._bundles(stage) for stage in self.stages}
        leaves, drained = [], set()
        for pc, parts in list(self.parts.items()):
            if pc in self.consumed:
                continue
            if isinstance(parts, _StageOutput):  # the stage's tasks, once, whichever of its outputs nobody reads
                if id(parts.stage) in drained:
                    continue
                drained.add(id(parts.stage))
                parts = bundles[id(parts.stage)]
            label = f"drain/{pc.producer.full_label}"
            leaves += [self.task(_drain, p, label=label, index=i) for i, p in enumerate(parts)]
        graphs = [leaf.dask for leaf in leaves] + [b.dask for tasks in bundles.values() for b in tasks]
        keys = [leaf.key for leaf in leaves]
        tasks: dict = {}
        for graph in graphs:  # each flattened on its own: a stage's placeholder layer is empty and named as its
            tasks.update(graph)  # tasks' layer, which HighLevelGraph.merge may keep over them
        return optimize(tasks, keys), keys

    def enter_composite_transform(self, node: AppliedPTransform) -> None:
        windowing = getattr(node.inputs[0], "windowing", None) if node.inputs else None
        if self._inside is not None or windowing is None or not windowing.is_default():
            return
        transform, label = node.transform, node.full_label
        if isinstance(transform, _GroupByKey):  # the global window: group at once, no reify and unreify steps
            self._set(node, self._shuffle(self._read(node.inputs[0]), _grouped, label=label))
        elif isinstance(transform, CombinePerKey) and not transform.args and not transform.kwargs:
            spec = pickler.dumps(transform.fn)
            pre = [self.task(_precombine, spec, p, label=label, index=i)
                   for i, p in enumerate(self._read(node.inputs[0]))]
            self._set(node, [self.task(_postcombine, spec, p, label=label, index=i)
                             for i, p in enumerate(self._shuffle(pre, None, label=label))])
        else:
            return
        self._inside = node

    def leave_composite_transform(self, node: AppliedPTransform) -> None:
        if node is self._inside:
            self._inside = None

    def visit_transform(self, node: AppliedPTransform) -> None:
        if self._inside is not None:
            return
        transform, label = node.transform, node.full_label
        if isinstance(transform, (_Create, Impulse)):  # Impulse starts beam.io.Read, read by its splittable DoFn
            self._set(node, self._create(list(transform.values) if isinstance(transform, _Create) else [b""], label))
        elif isinstance(transform, ParDo):  # subclasses too: WindowInto, GroupByWindow were no-ops in Beam's
            self._pardo(node)
        elif isinstance(transform, _GroupByKeyOnly):  # other windows: ReifyWindows and GroupByWindow run as ParDos
            self._set(node, self._shuffle(self._read(node.inputs[0]), _grouped, label=label))
        elif isinstance(transform, _Flatten):
            self._set(node, [p for pc in node.inputs for p in self._read(pc)])
        elif isinstance(transform, _Reshuffle):  # Beam's DaskRunner passes it through; here it rebalances
            self._set(node, self._from_bag(self._bag(self._read(node.inputs[0])), label))
        else:  # Beam's DaskRunner looks up the exact class and makes any other step a silent no-op
            raise NotImplementedError(f"DaskRunner: no translation for {type(transform).__name__} ({label})")

    def _read(self, pcoll) -> list:
        self.consumed.add(pcoll)
        if isinstance(self.parts[pcoll], _StageOutput):
            self.parts[pcoll] = self._stage_output(self.parts[pcoll])
        return self.parts[pcoll]

    def _set(self, node: AppliedPTransform, parts: list) -> None:
        (pcoll,) = node.outputs.values()
        self.parts[pcoll] = parts

    def _create(self, values: list, label: str) -> list:
        """Spread over the partitions (Beam's DaskRunner packs 128 elements into one: a few globs, one worker)."""
        size = self.partition_size or max(1, -(-len(values) // self.npartitions))
        return [dask.delayed([GlobalWindows.windowed_value(v) for v in values[i:i + size]], traverse=False,
                             name=(f"{label}-{self.token}", i // size)) for i in range(0, len(values), size)]

    def _pardo(self, node: AppliedPTransform) -> None:
        transform, label = node.transform, node.full_label
        spec = pickler.dumps(_Step(fn=transform.fn, args=transform.args, kwargs=transform.kwargs,
                                   windowing=node.inputs[0].windowing, tags=tuple(node.outputs),
                                   views=tuple((type(si), si._view_options()) for si in node.side_inputs)))
        # A side input is computed once, as a task the bundles depend on (Beam's DaskRunner lists the side
        # input's bag inside each task that reads it, recomputing its whole upstream there).
        sides = [self.task(_concat, *self._read(si.pvalue), label=f"side/{label}", index=n)
                 for n, si in enumerate(node.side_inputs)]
        pcoll, splittable = node.inputs[0], DoFnSignature(transform.fn).is_splittable_dofn()
        source = self.parts[pcoll]
        if not splittable and self._fusible(pcoll, source) and not self._depends(sides, source.stage):
            self.consumed.add(pcoll)
            stage, tag = source.stage, source.tag
        else:
            inputs, tag = self._read(pcoll), None
            if splittable and inputs:
                plan = self.task(_balance, self.split_partitions, *(self.task(_split, spec, p, label=label, index=i)
                                                                    for i, p in enumerate(inputs)), label=label)
                inputs = [self.task(_item, plan, i, label=label, index=i) for i in range(self.split_partitions)]
            stage = _Stage(key=f"{label}-run_chain-{self.token}", inputs=inputs)
            self.stages.append(stage)
        stage.steps.append((label, spec, tag, len(sides)))
        stage.sides.extend(sides)
        for out_tag, out in node.outputs.items():  # Beam's DaskRunner gives every output all of them, mixed
            self.parts[out] = _StageOutput(stage, len(stage.steps) - 1, out_tag)

    def _fusible(self, pcoll, source) -> bool:
        """Read by this step only, from the last step of a stage. A stage with fewer partitions than workers (a
        Create of a few globs) is not extended: its main output is spread over the workers first."""
        return (isinstance(source, _StageOutput) and self.readers[pcoll] == 1
                and source.step == len(source.stage.steps) - 1 and len(source.stage.inputs) >= self.npartitions)

    def _depends(self, tasks: list[Delayed], stage: _Stage) -> bool:
        """Whether `tasks` read an output of `stage`, directly or upstream: a step with such a side input cannot
        join the stage. A stage's tasks are not made yet, so the walk goes on through the inputs and side inputs
        of each stage it meets."""
        todo, seen = list(tasks), set()
        while todo:
            for key in todo.pop().dask:
                upstream = self.read_from.get(key[0] if isinstance(key, tuple) else key)
                if upstream is stage:
                    return True
                if upstream is not None and id(upstream) not in seen:
                    seen.add(id(upstream))
                    todo += upstream.inputs + upstream.sides
        return False

    def _bundles(self, stage: _Stage) -> list:
        label = stage.steps[0][0]  # the tasks' keys are the stage's: task() names them (label-run_chain-token, i)
        ref = (self.token, label, tuple(stage.steps))
        return [self.task(_run_chain, ref, i, p, *stage.sides, label=label, index=i)
                for i, p in enumerate(stage.inputs)]

    def _stage_output(self, out: _StageOutput) -> list:
        label = out.stage.steps[out.step][0]
        parts = [self.task(_select, b, (out.step, out.tag), label=f"{label}[{out.tag}]", index=i)
                 for i, b in enumerate(out.stage.placeholders())]
        self.read_from.update((p.key[0], out.stage) for p in parts)
        # Fewer partitions than workers (a Create of a few globs and what matching them fans out to): the main
        # output is spread over all partitions, or one worker would run the whole job.
        few = out.tag is None and 0 < len(parts) < self.npartitions
        return self._from_bag(self._bag(parts), f"{label}[spread]") if few else parts

    def _bag(self, parts: list):
        import dask.bag as db

        return db.from_delayed(parts).repartition(npartitions=self.npartitions)

    def _from_bag(self, bag, label: str) -> list:
        return [self.task(_concat, p, label=label, index=i) for i, p in enumerate(bag.to_delayed(optimize_graph=False))]

    def _shuffle(self, parts: list, after, *, label: str) -> list:
        """Group by key across workers with dask's task shuffle. It places a key by tokenize(key), an md5 of its
        value, not by hash(), so placement agrees across worker processes whatever their PYTHONHASHSEED."""
        if not parts:
            return []
        grouped = self._bag(parts).groupby(_key, shuffle="tasks")
        return self._from_bag(grouped.map_partitions(after) if after else grouped, label)
