"""`--runner=DaskRunner`: Beam's DaskRunner with the translations our pipelines need that Beam 2.77's lacks.

Beam's DaskRunner (apache_beam/runners/dask) maps each transform onto a dask Bag, but it drops what a DoFn emits
in finish_bundle, mixes a multi-output ParDo's outputs into one bag, computes only the last transform (a second
sink never runs), reads a splittable DoFn's element whole, recomputes a side input's whole upstream inside every
task that reads it, sets a DoFn up for every partition, and has no metrics. Here a PCollection is a list of dask
tasks (one per partition, each a list of WindowedValues); chains of ParDos are fused into one task per partition
whose bundle runs through Beam's own DoFnRunners, set up once per worker, and returns its outputs by step and tag
(pipelines/dask_graph.py builds the tasks, pipelines/dask_tasks.py runs them); every PCollection nothing reads is
computed; and a job given no --dask_client_address starts a LocalCluster and always closes it.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os

import dask
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.dask.dask_runner import DaskOptions, DaskRunner
from apache_beam.runners.dask.overrides import dask_overrides
from apache_beam.runners.direct.direct_metrics import DirectMetrics
from apache_beam.runners.runner import PipelineResult, PipelineState

from pipelines.dask_graph import GraphBuilder
from pipelines.dask_tasks import _release
from pipelines.jobs import JobError
from pipelines.options import RefineryDaskOptions, usable_cores

log = logging.getLogger("refinery")
PARTITIONS_PER_THREAD = 2  # default partitions per worker thread, so that one slow partition idles no worker
# A splittable read (the WARC byte ranges) is dealt into more, smaller partitions: with 8 per thread each worker
# pulls the next as it finishes one (dask queues root tasks), and one costly range delays the end by ~1/8 of a
# worker's share (BENCHMARKS.md §16: 4 partitions of 4 ranges ran 41-44 s, 16 of 1 range 37 s).
SPLIT_PARTITIONS_PER_THREAD = 8


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


def cluster_threads(*, address: str | None, scheduler_file: str | None, timeout_s: float = 10.0) -> int | None:
    """Worker threads of the running cluster at `address` (or `scheduler_file`), to size the input's byte
    ranges; None when it has none yet or does not answer (the job's own connection then reports why)."""
    from distributed import Client

    try:
        with Client(address=address, scheduler_file=scheduler_file, timeout=timeout_s, set_as_default=False) as client:
            return sum(client.nthreads().values()) or None
    except (OSError, TimeoutError, ValueError) as exc:
        log.warning("DaskRunner: could not ask the scheduler how many workers it has (%s); byte ranges keep the "
                    "recipe's size", exc)
        return None


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
    log.info("Dask cluster %s: %d worker threads; dashboard (the job's console): %s", client.scheduler.address,
             sum(client.nthreads().values()), client.dashboard_link)
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
            partitions = bag_kwargs.get("npartitions") or PARTITIONS_PER_THREAD * threads
            builder = GraphBuilder(pipeline, npartitions=partitions,
                                   split_partitions=SPLIT_PARTITIONS_PER_THREAD * threads,
                                   partition_size=bag_kwargs.get("partition_size"))
            pipeline.visit(builder)
            futures = client.get(*builder.graph(), sync=False)
        except BaseException:
            _close(client, cluster)
            raise
        return RefineryDaskResult(client=client, cluster=cluster, futures=futures, job=builder.token)
