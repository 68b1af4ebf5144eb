"""Flags shared by every Refinery job, and the runner choice that keeps local runs offline.

Beam collects the flags of every direct PipelineOptions subclass into one parser, so a flag may be defined
only once: the common ones live here, each job adds only its own in its own subclass.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

LOCAL_RUNNERS = {None, "DirectRunner", "direct", "FnApiRunner"}
DASK_RUNNERS = {"DaskRunner", "dask"}
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


def make_runner(options: PipelineOptions):
    """The runner to use: DirectRunner means Beam's batch engine (FnApiRunner) directly.

    Beam's DirectRunner first tries to download the Prism binary from GitHub; offline that fails or,
    where traffic is dropped, hangs. For a batch pipeline it then falls back to the FnApiRunner anyway,
    so we go there at once. Every other runner name is passed to Beam unchanged.
    """
    name = options.view_as(StandardOptions).runner
    if name in LOCAL_RUNNERS:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return FnApiRunner()
    if name in DASK_RUNNERS:  # Beam's DaskRunner, with what our pipelines need that it lacks (pipelines/dask_runner.py)
        from pipelines.dask_runner import RefineryDaskRunner

        return RefineryDaskRunner()
    return name


def print_help(*, prog: str, description: str, option_classes: Sequence[type[PipelineOptions]]) -> None:
    """--help: every job flag with its explanation, then where the runner flags are documented."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for cls in option_classes:
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    parser.epilog = (
        "runner flags (Beam): --runner=DirectRunner (default; runs locally, offline) | DataflowRunner | "
        "FlinkRunner | SparkRunner | PortableRunner --job_endpoint=HOST:PORT; local parallelism: "
        "--direct_num_workers=N --direct_running_mode=multi_processing. See scripts/ for cluster launchers "
        "and `python -m apache_beam.options.pipeline_options` docs for every Beam flag."
    )
    parser.print_help(sys.stdout)


def wants_help(argv: Sequence[str]) -> bool:
    return any(a in ("-h", "--help") for a in argv)
