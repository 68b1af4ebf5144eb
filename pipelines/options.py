"""Flags shared by every Refinery job, and the facts their defaults come from (cores, runner names).

Beam collects the flags of every direct PipelineOptions subclass into one parser, so a flag may be defined
only once: the common ones live here, each job adds only its own in its own subclass.
"""
from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from typing import Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from core.job_config import flag_keys
from core.runners import DIRECT_RUNNERS

# Beam's worker processes log their start-up and shutdown at INFO (~23 lines each); ours stay (refinery, root).
QUIET_WORKER_LOGS = {"sdk_harness_log_level_overrides": {"apache_beam": "WARNING", "__main__": "WARNING"}}
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
            "(local paths, gs://, s3://, hdfs://). Default: the job's built-in sample (tokenize: with --config, that "
            "config's sources).")
        parser.add_argument(
            "--output", default=None,
            help="Output prefix (a folder on any Beam filesystem). Shards go to <output>/documents/ (tokenize: "
            "<output>/train/ and valid/), the stats report to <output>/stats.json. A run writes into "
            "<output>/.incomplete-<run id>/ and replaces the previous shards only once it has succeeded; a failed "
            "run leaves them as they were. Default: ./output/<job>.")
        parser.add_argument(
            "--config", default=None,
            help="Recipe: a name under configs/<job>/ (e.g. werp: bluwerp, fineweb, dclm; tokenize: sample, default, "
            "mixture, demo) or a path to a YAML file. Any key of it can then be set with key=value words "
            "(see below); the recipe a run used is in its stats.json (config).")
        parser.add_argument(
            "--quiet", action="store_true", default=False,
            help="No live progress line while a local run works (the summary at the end is still printed).")


class ShardOptions(PipelineOptions):
    """Flags of the jobs that write document shards (werp, swallowcode, swallowmath); tokenize has neither."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument(
            "--rejected_output", default=None,
            help="Optional prefix for dropped records as Parquet, for audits: id, url, stage, reason, text and the "
            "failing statistic with its value and limit where the rule has one.")
        parser.add_argument(
            "--num_shards", type=int, default=None,
            help="Number of output shards; 0 lets the runner choose. Default: from the recipe; same as "
            "output.num_shards=...")


class RefineryDaskOptions(PipelineOptions):
    """The local cluster's size; Beam's DaskOptions has the rest (--dask_client_address, --dask_npartitions)."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument(
            "--dask_workers", type=int, default=None,
            help="DaskRunner without --dask_client_address: worker processes of the LocalCluster the job starts "
            "(one thread each) and closes when it ends. Default: every core this process may use.")


class LlmOptions(PipelineOptions):
    """Which model rewrites; the rest of the sampling and batching is in the recipe's generation section."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument("--model", default=None, help="Local model folder (transformers, vllm; nothing is "
                            "downloaded, the hub is switched off) or the served model name (openai). Required unless "
                            "the recipe sets generation.model_path; without it, on the built-in sample (no --input), "
                            "the LLM stages are off. Same as generation.model_path=...")
        parser.add_argument("--backend", choices=("transformers", "openai", "vllm"), default=None,
                            help="transformers: CPU/GPU in the worker; openai: any OpenAI-compatible endpoint "
                            "(vllm serve, SGLang) that many workers share; vllm: in the worker, on its GPUs "
                            "(pip install 'refinery[gpu]'). Default: the recipe's (transformers); same as "
                            "generation.backend=...")
        parser.add_argument("--base_url", default=None,
                            help="openai backend: e.g. http://localhost:8000/v1; same as generation.base_url=...")
        parser.add_argument("--batch_size", type=int, default=None,
                            help="Prompts per model call (recipe: 32); same as generation.batch_size=...")
        parser.add_argument("--max_tokens", type=int, default=None,
                            help="Output tokens per response (recipe: 8192, SwallowMath's); same as "
                            "generation.max_tokens=...")

    def keys(self) -> dict[str, dict[str, object]]:
        """The recipe keys these flags are shortcuts for (core.job_config.flag_keys)."""
        return flag_keys(("model", self.model, "generation.model_path"),
                         ("backend", self.backend, "generation.backend"),
                         ("base_url", self.base_url, "generation.base_url"),
                         ("batch_size", self.batch_size, "generation.batch_size"),
                         ("max_tokens", self.max_tokens, "generation.max_tokens"))


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


BEAM_FLAGS_DOC = "https://beam.apache.org/releases/pydoc/current/apache_beam.options.pipeline_options.html"
BEAM_HELP = "--help_beam"  # prints Beam's own flags; kept apart so --help shows what the job itself takes


def print_help(*, prog: str, description: str, option_classes: Sequence[type[PipelineOptions]]) -> None:
    """--help: the job's own flags with their explanations, then the runner choices and where Beam's flags are."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for cls in option_classes:
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="recipe keys to change, applied after --config and before the job's flags (each job "
                        "flag below that changes the recipe is a shortcut for one key): e.g. dedup.bucket_bits=16, "
                        "steps.gopher_quality.min_words=40 (a step by its name), output.codec=snappy. Values are "
                        "read as YAML (numbers, true/false, null, [lists]); a misspelt key is refused with the "
                        "nearest valid one.")
    parser.epilog = (
        "runner flags (Beam): --runner=DirectRunner (default; local and offline, one worker process per core: "
        "--direct_num_workers=N sets the count, 1 runs in this process) | FnApiRunner (Beam's local engine as is: "
        "one worker in this process, for tests and debugging) | DaskRunner (--dask_client_address=tcp://HOST:PORT "
        "runs on an existing Dask cluster; without it the job starts a local one of --dask_workers=N processes, "
        "default one per core) | DataflowRunner | FlinkRunner | SparkRunner | PortableRunner "
        f"--job_endpoint=HOST:PORT. See scripts/ for cluster launchers. Every Beam flag: `{prog} {BEAM_HELP}` "
        f"or {BEAM_FLAGS_DOC}"
    )
    parser.print_help(sys.stdout)


def beam_option_classes(flags: Sequence[str] = ()) -> list[type[PipelineOptions]]:
    """Beam's own option classes (runner, workers, cloud settings); Dask's are added when a flag names Dask."""
    if any(f.startswith("--dask") or "Dask" in f for f in flags):
        try:  # dask is an extra; without it Beam's Dask flags are reported as unknown, which they then are
            import apache_beam.runners.dask.dask_runner  # noqa: F401  pylint: disable=import-outside-toplevel
        except ImportError:
            pass
    return [cls for cls in PipelineOptions.__subclasses__()
            if cls.__module__.startswith("apache_beam.") or cls is RefineryDaskOptions]


def _parser(option_classes: Sequence[type[PipelineOptions]]) -> argparse.ArgumentParser:
    from apache_beam.options.pipeline_options import _BeamArgumentParser  # Beam's, for its value-provider flags

    parser = _BeamArgumentParser(add_help=False, allow_abbrev=False)
    for cls in dict.fromkeys(option_classes):
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    return parser


def unknown_flags(flags: Sequence[str], option_classes: Sequence[type[PipelineOptions]]) -> list[tuple[str, str | None]]:
    """(word, nearest known flag or None) for every word neither the job's flags nor Beam's can parse.

    Beam only warns about such words and runs with the defaults, so `--extracter=trafilatura` would silently run
    jusText; a job refuses them instead."""
    parser = _parser([*beam_option_classes(flags), *option_classes])
    _, unknown = parser.parse_known_args(list(flags))
    known = sorted({o for action in parser._actions for o in action.option_strings})  # pylint: disable=protected-access
    found, after_bare_flag = [], False
    for word in unknown:
        if after_bare_flag and not word.startswith("-"):
            after_bare_flag = False
            continue  # the value of an unknown flag given as `--flag value`
        after_bare_flag = word.startswith("-") and "=" not in word
        name = word.split("=", 1)[0]
        found.append((word, next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.75)), None)))
    return found


def print_beam_help(prog: str) -> None:
    """Beam's own flags, grouped as Beam defines them."""
    parser = argparse.ArgumentParser(prog=prog, description="Beam's pipeline flags, accepted by every Refinery job "
                                     f"(documented at {BEAM_FLAGS_DOC}).", add_help=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage=argparse.SUPPRESS)
    for cls in beam_option_classes(["--dask"]):
        cls._add_argparse_args(parser.add_argument_group(cls.__name__))  # pylint: disable=protected-access
    parser.print_help(sys.stdout)


def wants_help(argv: Sequence[str]) -> bool:
    return any(a in ("-h", "--help") for a in argv)
