"""`--runner=DaskRunner`: Beam's DaskRunner with the translations our pipelines need that Beam 2.77's lacks.

Beam's DaskRunner (apache_beam/runners/dask) maps each transform onto a dask Bag, but it drops what a DoFn emits
in finish_bundle, mixes a multi-output ParDo's outputs into one bag, computes only the last transform (a second
sink never runs), reads a splittable DoFn's element whole, recomputes a side input's whole upstream inside every
task that reads it, sets a DoFn up for every partition, and has no metrics. Here a PCollection is a list of dask
tasks (one per partition, each a list of WindowedValues); a bundle runs through Beam's own DoFnRunner on a DoFn
set up once per worker and returns its outputs by tag; every PCollection nothing reads is computed; and a job
given no --dask_client_address starts a LocalCluster and always closes it.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import uuid

import dask
from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.runners.common import DoFnSignature
from apache_beam.runners.dask.dask_runner import DaskOptions, DaskRunner
from apache_beam.runners.dask.overrides import _Create, _Flatten, _GroupByKey, _GroupByKeyOnly, _Reshuffle, dask_overrides
from apache_beam.runners.direct.direct_metrics import DirectMetrics
from apache_beam.runners.runner import PipelineResult, PipelineState
from apache_beam.transforms.core import CombinePerKey, Impulse, ParDo
from apache_beam.transforms.window import GlobalWindows
from dask.delayed import Delayed

from pipelines.dask_tasks import (
    _balance, _concat, _drain, _grouped, _item, _key, _postcombine, _precombine, _release, _run_bundle, _select,
    _split, _Step,
)
from pipelines.jobs import JobError
from pipelines.options import usable_cores

log = logging.getLogger("refinery")
PARTITIONS_PER_THREAD = 2  # default partitions per worker thread, so that one slow partition idles no worker


class RefineryDaskOptions(PipelineOptions):
    """The local cluster's size; Beam's DaskOptions has the rest (--dask_client_address, --dask_npartitions)."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument(
            "--dask_workers", type=int, default=None,
            help="DaskRunner without --dask_client_address: worker processes of the LocalCluster the job starts "
            "(one thread each) and closes when it ends. Default: every core this process may use.")


class _GraphBuilder(PipelineVisitor):
    """Translates the (overridden) Beam graph into dask tasks: a list of partition tasks per PCollection."""

    def __init__(self, *, npartitions: int, partition_size: int | None) -> None:
        self.npartitions, self.partition_size = npartitions, partition_size
        self.token = uuid.uuid4().hex[:8]
        self.parts: dict = {}  # PCollection -> its partitions' tasks
        self.consumed: set = set()
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
        from dask.highlevelgraph import HighLevelGraph

        leaves = [self.task(_drain, p, label=f"drain/{pc.producer.full_label}", index=i)
                  for pc, parts in self.parts.items() if pc not in self.consumed for i, p in enumerate(parts)]
        keys = [leaf.key for leaf in leaves]
        return optimize(dict(HighLevelGraph.merge(*(leaf.dask for leaf in leaves))), keys), keys

    def enter_composite_transform(self, node: AppliedPTransform) -> None:
        windowing = getattr(node.inputs[0], "windowing", None) if node.inputs else None
        if self._inside is not None or windowing is None or not windowing.is_default():
            return
        transform, label = node.transform, node.full_label
        if isinstance(transform, _GroupByKey):  # the global window: group at once, no reify and unreify steps
            self._set(node, self._shuffle(self._read(node.inputs[0]), _grouped, label=label))
        elif isinstance(transform, CombinePerKey) and not transform.args and not transform.kwargs:
            spec = pickler.dumps(transform.fn)
            pre = [self.task(_precombine, spec, p, label=label, index=i) for i, p in enumerate(self._read(node.inputs[0]))]
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
        inputs = self._read(node.inputs[0])
        if DoFnSignature(transform.fn).is_splittable_dofn() and inputs:
            plan = self.task(_balance, self.npartitions, *(self.task(_split, spec, p, label=label, index=i)
                                                           for i, p in enumerate(inputs)), label=label)
            inputs = [self.task(_item, plan, i, label=label, index=i) for i in range(self.npartitions)]
        ref = (self.token, label, spec)
        bundles = [self.task(_run_bundle, ref, i, p, *sides, label=label, index=i) for i, p in enumerate(inputs)]
        for tag, pcoll in node.outputs.items():  # Beam's DaskRunner gives every output all of them, mixed
            parts = [self.task(_select, b, tag, label=f"{label}[{tag}]", index=i) for i, b in enumerate(bundles)]
            # Fewer partitions than workers (a Create of a few globs and what matching them fans out to): the main
            # output is spread over all partitions, or one worker would run the whole job.
            few = tag is None and 0 < len(parts) < self.npartitions
            self.parts[pcoll] = self._from_bag(self._bag(parts), f"{label}[spread]") if few else parts

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


class RefineryDaskResult(PipelineResult):
    """The running job: waits for every leaf, then collects metrics and closes what it opened, even on failure."""

    def __init__(self, *, client, cluster, futures: list, job: str) -> None:
        super().__init__(PipelineState.RUNNING)
        self._client, self._cluster, self._futures, self._job = client, cluster, futures, job
        self._metrics = DirectMetrics()

    def wait_until_finish(self, duration: int | None = None) -> str:
        from distributed import as_completed

        if PipelineState.is_terminal(self._state):
            return self._state
        try:
            with self._client.as_current():  # the job's client is not the process default (set_as_default=False)
                erred = next((f for f in as_completed(self._futures, timeout=duration and duration / 1000)
                              if f.status == "error"), None)
        except TimeoutError:
            return self._state
        try:
            if erred is not None:
                erred.result()  # raises the task's exception; DoFnRunner names the Beam step in it
            self._state = PipelineState.DONE
        except BaseException:
            self._state = PipelineState.FAILED
            raise
        finally:
            self._close()
        return self._state

    def cancel(self) -> str:
        self._client.cancel(self._futures)
        self._close()
        self._state = PipelineState.CANCELLED
        return self._state

    @property
    def cluster(self):
        """The LocalCluster this job started (closed once the job has finished), or None on a given cluster."""
        return self._cluster

    def metrics(self) -> DirectMetrics:
        """Beam metrics summed over the bundles that succeeded (Beam's DaskRunner raises NotImplementedError)."""
        return self._metrics

    def _close(self) -> None:
        bundles: dict = {}
        try:
            for per_worker in self._client.run(_release, self._job).values():
                bundles.update(per_worker)  # keyed by (step, partition): a bundle run twice counts once
        except Exception as exc:  # pylint: disable=broad-except  # a teardown's error must not hide the job's
            log.warning("DaskRunner: releasing the job's DoFns on the workers failed: %s", exc)
        finally:
            _close(self._client, self._cluster)
        for updates in bundles.values():
            self._metrics.commit_logical(None, updates)
            self._metrics.commit_physical(None, updates)


def _close(client, cluster) -> None:
    """The client always; the cluster only if this job started it."""
    if client is not None:
        with contextlib.suppress(Exception):  # already closed, or the scheduler is gone: nothing left to close
            client.close()
    if cluster is not None:
        cluster.close()


def _is_daemon() -> bool:
    return multiprocessing.current_process().daemon


def _connect(options: PipelineOptions):
    """A client of the cluster at --dask_client_address, else of a LocalCluster started here (and the cluster)."""
    from distributed import Client, LocalCluster

    kwargs = options.view_as(DaskOptions).get_all_options(drop_default=True, current_only=True)
    DaskOptions._extract_bag_kwargs(kwargs)  # pylint: disable=protected-access
    cluster = None
    if not kwargs.get("address") and not kwargs.get("scheduler_file"):
        workers = options.view_as(RefineryDaskOptions).dask_workers or usable_cores()
        # Our DoFns start child processes (the extractor sandbox, pylint pools); daemonic workers may not. The
        # Nanny reads this whenever it (re)starts a worker, so it is set for the process, not for a block.
        dask.config.set({"distributed.worker.daemon": False})
        # A cluster started for one job is plumbing: its start and stop are ~60 INFO lines; warnings still show.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # the worker processes read it at start
        logging.getLogger("distributed").setLevel(logging.WARNING)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        kwargs["address"] = cluster
    client = None
    try:
        client = Client(**kwargs, set_as_default=False)
        if cluster is None and any(client.run(_is_daemon).values()):
            raise JobError(f"the Dask workers at {client.scheduler.address} are daemonic processes, which may not "
                           "start the child processes our DoFns use; restart them with DASK_DISTRIBUTED__WORKER__DAEMON"
                           "=False in their environment (or distributed.worker.daemon: false in their Dask config)")
    except BaseException:
        _close(client, cluster)
        raise
    return client, cluster


class RefineryDaskRunner(DaskRunner):
    """Runs a Refinery pipeline on a Dask cluster; the module docstring says what differs from Beam's."""

    def run_pipeline(self, pipeline, options) -> RefineryDaskResult:
        client, cluster = _connect(options)
        try:
            bag_kwargs = DaskOptions._extract_bag_kwargs(dict(options.view_as(DaskOptions).get_all_options()))
            threads = sum(client.nthreads().values()) or 1
            # Beam's Read override makes Read a no-op here; unreplaced, it is Impulse + a splittable DoFn.
            pipeline.replace_all([o for o in dask_overrides() if type(o).__name__ != "ReadOverride"])
            builder = _GraphBuilder(npartitions=bag_kwargs.get("npartitions") or PARTITIONS_PER_THREAD * threads,
                                    partition_size=bag_kwargs.get("partition_size"))
            pipeline.visit(builder)
            futures = client.get(*builder.graph(), sync=False)
        except BaseException:
            _close(client, cluster)
            raise
        return RefineryDaskResult(client=client, cluster=cluster, futures=futures, job=builder.token)
