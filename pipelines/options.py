"""Flags shared by every Refinery job, and the runner choice that keeps local runs offline.

Beam collects the flags of every direct PipelineOptions subclass into one parser, so a flag may be defined
only once: the common ones live here, each job adds only its own in its own subclass.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from transforms.io.range_sizing import byte_ranges, split_bytes_for, useful_workers

LOCAL_RUNNERS = {None, "DirectRunner", "direct", "FnApiRunner"}
# Beam's worker processes log their start-up and shutdown at INFO (~23 lines each); ours stay (refinery, root).
QUIET_WORKER_LOGS = {"sdk_harness_log_level_overrides": {"apache_beam": "WARNING", "__main__": "WARNING"}}
DIRECT_RUNNERS = {None, "DirectRunner", "direct"}  # the default: every core; FnApiRunner is Beam's engine as is
DASK_RUNNERS = {"DaskRunner", "dask"}
MULTI_PROCESSING, IN_MEMORY = "multi_processing", "in_memory"
log = logging.getLogger(__name__)


class RefineryOptions(PipelineOptions):
    """Input, output and recipe flags for every job."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument(
            "--input", action="append", default=None,
            help="Input file glob or folder; repeat the flag or separate them with commas. A folder means every "
            "file under it, subfolders included (names starting with . or _ are skipped). Any Beam filesystem works "
            "(local paths, gs://, s3://, hdfs://). Default: the job's built-in sample.")
        parser.add_argument(
            "--output", default=None,
            help="Output prefix (a folder on any Beam filesystem). Shards go to <output>/documents/ (tokenize: "
            "<output>/train/ and valid/), the stats report to <output>/stats.json. A run writes into "
            "<output>/.incomplete-<run id>/ and replaces the previous shards only once it has succeeded; a failed "
            "run leaves them as they were. Default: ./output/<job>.")
        parser.add_argument(
            "--config", default=None,
            help="Recipe: a name under configs/<job>/ (e.g. werp: bluwerp, fineweb, dclm; tokenize: default, "
            "mixture, demo) or a path to a YAML file.")
        parser.add_argument(
            "--rejected_output", default=None,
            help="Optional prefix for dropped records (id, url, stage, reason, text) as Parquet, for audits.")
        parser.add_argument(
            "--num_shards", type=int, default=None,
            help="Number of output shards; 0 lets the runner choose. Default: from the recipe (output.num_shards).")


class LlmOptions(PipelineOptions):
    """Which model rewrites; the rest of the sampling and batching is in the recipe's generation section."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument("--model", default=None, help="Local model folder (transformers, vllm; nothing is "
                            "downloaded, the hub is switched off) or the served model name (openai). Required unless "
                            "the recipe sets generation.model_path.")
        parser.add_argument("--backend", choices=("transformers", "openai", "vllm"), default=None,
                            help="transformers: CPU/GPU in the worker; openai: any OpenAI-compatible endpoint "
                            "(vllm serve, SGLang) that many workers share; vllm: in the worker, on its GPUs "
                            "(pip install 'refinery[gpu]'). Default: the recipe's (transformers).")
        parser.add_argument("--base_url", default=None, help="openai backend: e.g. http://localhost:8000/v1.")
        parser.add_argument("--batch_size", type=int, default=None, help="Prompts per model call (recipe: 32).")
        parser.add_argument("--max_tokens", type=int, default=None,
                            help="Output tokens per response (recipe: 8192, SwallowMath's).")

    def overrides(self) -> dict:
        """The generation settings these flags set (None = keep the recipe's), by GenerationConfig key."""
        return {"model_path": self.model, "backend": self.backend, "base_url": self.base_url,
                "batch_size": self.batch_size, "max_tokens": self.max_tokens}


def split_globs(values: Sequence[str] | None) -> list[str]:
    """Flatten repeated and comma-separated --input values."""
    return [g.strip() for v in (values or []) for g in v.split(",") if g.strip()]


def usable_cores() -> int:
    """Cores this process may run on (taskset, cpusets, Slurm's allocation), not the machine's count."""
    return len(os.sched_getaffinity(0))


def local_parallelism(*, runner: str | None, workers: int | None, mode: str | None, cores: int) -> tuple[int, str]:
    """(worker processes, Beam running mode) of a local run from the flags given (None: not given).

    DirectRunner (the default): one worker process per core in Beam's multi_processing mode, a single worker in
    this process; --direct_num_workers=N (0: every core) sets the count, --direct_running_mode the mode.
    FnApiRunner: Beam's engine as is, one in-process worker unless the flags say otherwise, so tests and
    debuggers keep a fast single-process run. The count is 1 whenever the mode is in_memory.
    """
    count = cores if workers == 0 else workers
    if runner in DIRECT_RUNNERS:
        count = cores if count is None else count
        mode = mode or (MULTI_PROCESSING if count > 1 else IN_MEMORY)
    else:
        count, mode = count or 1, mode or IN_MEMORY
    return (1 if mode == IN_MEMORY else count), mode


def given_flags(options: PipelineOptions, *flags: tuple[str, type]) -> dict[str, object]:
    """Flags as given on the command line (absent: None): Beam's parsed values cannot tell an explicit
    --direct_num_workers=1 from its default, and a runner's own flags are known only once it is imported."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag, kind in flags:
        parser.add_argument(f"--{flag}", type=kind, default=None)
    known, _ = parser.parse_known_args(options._flags)  # pylint: disable=protected-access
    return vars(known)


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
    if runner not in DIRECT_RUNNERS or any(v is not None for v in given.values()) or workers >= _local_flags(options)[0]:
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


def print_help(*, prog: str, description: str, option_classes: Sequence[type[PipelineOptions]]) -> None:
    """--help: every job flag with its explanation, then where the runner flags are documented."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for cls in option_classes:
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    parser.epilog = (
        "runner flags (Beam): --runner=DirectRunner (default; local and offline, one worker process per core: "
        "--direct_num_workers=N sets the count, 1 runs in this process) | FnApiRunner (Beam's local engine as is: "
        "one worker in this process, for tests and debugging) | DaskRunner (--dask_client_address=tcp://HOST:PORT "
        "runs on an existing Dask cluster; without it the job starts a local one of --dask_workers=N processes, "
        "default one per core) | DataflowRunner | FlinkRunner | SparkRunner | PortableRunner "
        "--job_endpoint=HOST:PORT. See scripts/ for cluster launchers and `python -m "
        "apache_beam.options.pipeline_options` docs for every Beam flag."
    )
    parser.print_help(sys.stdout)


def wants_help(argv: Sequence[str]) -> bool:
    return any(a in ("-h", "--help") for a in argv)
