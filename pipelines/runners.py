"""Which runner a job gets and how many workers: local runs go straight to Beam's FnApiRunner on every core (no
Prism download), a small input stays in process, byte ranges are sized for the workers, Dask gets our runner."""
from __future__ import annotations

import logging
import sys
from typing import Sequence

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from core.runners import DASK_RUNNERS, DIRECT_RUNNERS, LOCAL_RUNNERS
from pipelines.options import QUIET_WORKER_LOGS, given_flags, local_parallelism, usable_cores
from transforms.io.range_sizing import byte_ranges, split_bytes_for, useful_workers

log = logging.getLogger(__name__)


def _local_flags(options: PipelineOptions) -> tuple[int, str]:
    given = given_flags(options, ("direct_num_workers", int), ("direct_running_mode", str))
    return local_parallelism(runner=options.view_as(StandardOptions).runner, workers=given["direct_num_workers"],
                             mode=given["direct_running_mode"], cores=usable_cores())


def planned_workers(options: PipelineOptions) -> int | None:
    """How many workers the run will have, where this process can know: local runs, Dask when it starts its own
    cluster (--dask_workers, default one per core) or as the given cluster's scheduler reports its worker threads
    now; None for a service (Dataflow, Flink, Spark) or a Dask scheduler that does not answer."""
    runner = options.view_as(StandardOptions).runner
    if runner in LOCAL_RUNNERS:
        return _local_flags(options)[0]
    if runner in DASK_RUNNERS:
        given = given_flags(options, ("dask_workers", int), ("dask_client_address", str), ("dask_scheduler_file", str))
        if given["dask_workers"]:
            return given["dask_workers"]
        if given["dask_client_address"] or given["dask_scheduler_file"]:
            from pipelines.dask_runner import cluster_threads  # dask is an extra: imported for Dask runs only

            return cluster_threads(address=given["dask_client_address"], scheduler_file=given["dask_scheduler_file"])
        return usable_cores()
    return None


def at_most_local_workers(options: PipelineOptions, workers: int) -> PipelineOptions:
    """`options` with at most `workers` local workers when the flags did not choose: an input with fewer byte
    ranges than cores leaves the rest idle, and each worker costs seconds to start (one stays in process)."""
    runner = options.view_as(StandardOptions).runner
    given = given_flags(options, ("direct_num_workers", int), ("direct_running_mode", str))
    chosen = any(v is not None for v in given.values())
    if runner not in DIRECT_RUNNERS or chosen or workers >= _local_flags(options)[0]:
        return options
    flags = options._flags if options._flags is not None else sys.argv[1:]  # pylint: disable=protected-access
    return PipelineOptions([*flags, f"--direct_num_workers={max(1, workers)}"])


def plan_local_run(options: PipelineOptions) -> int:
    """Write a local run's worker count and mode into `options` (what FnApiRunner reads); return the count."""
    workers, mode = _local_flags(options)
    direct = options.view_as(DirectOptions)
    direct.direct_num_workers, direct.direct_running_mode = workers, mode
    return workers


def input_sizes(patterns: Sequence[str]) -> list[int]:
    """Byte size of every file the patterns match (each file once)."""
    sizes: dict[str, int] = {}
    try:
        for result in FileSystems.match(list(patterns)):
            sizes.update((m.path, m.size_in_bytes) for m in result.metadata_list)
    except BeamIOError as exc:  # checked by expand_inputs already; a file gone since is the reader's to report
        log.warning("sizing the inputs: %s", exc)
    return list(sizes.values())


def fit_local_workers(options: PipelineOptions, *, patterns: Sequence[str]) -> PipelineOptions:
    """`options` with no more local workers than the input keeps busy (at least 8 MiB each): a worker process
    costs ~2 s to start, so a small input, such as the built-in sample or a test's, runs in this process."""
    if options.view_as(StandardOptions).runner not in DIRECT_RUNNERS:
        return options
    workers = planned_workers(options)
    if workers is None or workers == 1:
        return options
    return at_most_local_workers(options, useful_workers(total_bytes=sum(input_sizes(patterns)), workers=workers))


def plan_byte_ranges(options: PipelineOptions, *, patterns: Sequence[str],
                     max_split_bytes: int) -> tuple[PipelineOptions, int]:
    """(options, range size) for a reader of byte ranges: several ranges per worker where the worker count is
    known here, no more local workers than the input keeps busy (an input under 8 MiB, such as the built-in
    sample, stays in this process; transforms/io/range_sizing.py), and `max_split_bytes` (the recipe's) where
    the count is not known."""
    options = fit_local_workers(options, patterns=patterns)
    workers = planned_workers(options)
    if workers is None or workers == 1:
        return options, max_split_bytes
    sizes = input_sizes(patterns)
    split = split_bytes_for(total_bytes=sum(sizes), workers=workers, max_split_bytes=max_split_bytes)
    log.info("%d input bytes in %d byte ranges of up to %d bytes for %d workers", sum(sizes),
             sum(len(byte_ranges(size, split)) for size in sizes), split, workers)
    return options, split


def make_runner(options: PipelineOptions):
    """The runner to use: DirectRunner means Beam's batch engine (FnApiRunner) directly, on every core.

    Beam's DirectRunner first tries to download the Prism binary from GitHub; offline that fails or,
    where traffic is dropped, hangs. For a batch pipeline it then falls back to the FnApiRunner anyway,
    so we go there at once (plan_local_run sets its workers). Every other runner name is passed to Beam unchanged.
    """
    name = options.view_as(StandardOptions).runner
    if name in LOCAL_RUNNERS:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        workers = plan_local_run(options)
        log.info("local run: %s", f"{workers} worker processes (--direct_num_workers=N to change)" if workers > 1
                 else "one worker, in this process")
        return FnApiRunner(provision_info=_worker_provision_info())
    if name in DASK_RUNNERS:  # Beam's DaskRunner, with what our pipelines need that it lacks (pipelines/dask_runner.py)
        from pipelines.dask_runner import RefineryDaskRunner

        return RefineryDaskRunner()
    return name


def _worker_provision_info():
    """What FnApiRunner hands its worker processes: Beam's default plus QUIET_WORKER_LOGS as pipeline options."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner.fn_runner import ExtendedProvisionInfo
    from google.protobuf import struct_pb2

    worker_options = struct_pb2.Struct()
    worker_options.update(QUIET_WORKER_LOGS)
    return ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(
        retrieval_token="unused-retrieval-token", pipeline_options=worker_options))
