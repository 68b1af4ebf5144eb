"""Blu-WERP: WARC/ARC crawl files -> extracted, language-filtered, quality-filtered, deduplicated Parquet shards.

python -m pipelines.werp --runner=DirectRunner            # the built-in sample -> ./output/werp/
python -m pipelines.werp --input='crawl/*.warc.gz' --output=gs://bucket/werp --runner=DataflowRunner ...
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from core.job_config import Loaded, flag_keys, load_job_config
from pipelines.jobs import JobError, expand_inputs, job_main, parse_args
from pipelines.options import RefineryOptions, ShardOptions, split_globs
from pipelines.run_info import run_record
from pipelines.runners import plan_byte_ranges
from pipelines.sample_warc import SAMPLE_PATH
from pipelines.staging import plan_outputs, run_staged
from transforms.beam.classify import Classify
from transforms.beam.dedup import Dedup
from transforms.beam.flow import Flow
from transforms.beam.metrics import Counted
from transforms.beam.read import ReadWarcPages
from transforms.beam.stages import REJECTED, QualityStepsFn
from transforms.beam.web import WebDocuments
from transforms.beam.write import ToRows, WriteDocuments, WriteRejected
from transforms.extract import EXTRACTORS
from transforms.io.parquet import document_from_row
from transforms.langid import ensure_available
from transforms.quality.classifier import ClassifierConfig, import_fasttext
from transforms.recipe import WebRecipe, recipe_from_mapping

DEFAULT_OUTPUT = "./output/werp"
DEFAULT_RECIPE = "bluwerp"
FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")  # FASTTEXT_FILEFORMAT_MAGIC_INT32, fastText's src/fasttext.cc
SPILL_DIR = "_spill"  # documents parked by the dedup and classifier stages, in the run's staging folder
ARTIFACTS = ("documents/part-*.parquet", "stats.json")  # what a run writes under --output (and replaces)
REJECTED_ARTIFACTS = ("part-*.parquet",)  # under --rejected_output


class WerpOptions(PipelineOptions):
    """Flags only the web pipeline has."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument("--extractor", choices=tuple(EXTRACTORS), default=None,
                            help="HTML-to-text extractor (Blu-WERP default: justext); same as extract.extractor=...")
        parser.add_argument("--max_record_bytes", type=int, default=None,
                            help="Skip WARC records larger than this many bytes (counted as warc.too_large); "
                            "same as read.max_record_bytes=... (default 10 MiB).")
        parser.add_argument("--classifier_model", default=None,
                            help="fastText quality model (local path or gs://, s3://); turns on the last stage, "
                            "Blu-WERP's BETR classifier. Train one with `python -m pipelines.betr`. Without a "
                            "classifier section in the recipe it keeps the top 10%% of tokens (BETR's default). "
                            "Same as classifier.model_path=...")
        parser.add_argument("--classifier_threshold", type=float, default=None,
                            help="Keep documents whose positive-label probability is at least this (DCLM style); "
                            "same as classifier.mode=threshold classifier.threshold=...")
        parser.add_argument("--classifier_top_fraction", type=float, default=None,
                            help="Keep the best-scored documents holding this fraction of all words (BETR: 0.1); "
                            "same as classifier.mode=top_fraction classifier.top_token_fraction=...")


OPTIONS = (RefineryOptions, ShardOptions, WerpOptions)  # the flags the job takes

def build(p: beam.Pipeline, *, recipe: WebRecipe, inputs: list[str], output: str, rejected_output: str | None
          ) -> list[str]:
    """The recipe as a Beam graph (read+extract fuse; only keys and ids cross the dedup shuffles) -> its stages."""
    flow = Flow(emit_rejected=rejected_output is not None)
    emit, spill, codec = flow.emit_rejected, f"{output.rstrip('/')}/{SPILL_DIR}", recipe.output.codec
    pages = flow.apply(p | "Globs" >> beam.Create(inputs), "ReadWarc", ReadWarcPages(
        max_record_bytes=recipe.read.max_record_bytes, split_bytes=recipe.read.split_bytes, emit_rejected=emit),
        "read")
    docs = flow.apply(pages, "WebDocuments", WebDocuments(recipe, emit_rejected=emit), "url", "extract", "langid",
                      *(s.spec.name for s in recipe.steps))
    rows = None
    if recipe.dedup.any:
        rows = flow.apply(docs, "Dedup", Dedup(recipe.dedup, spill_prefix=f"{spill}/dedup", emit_rejected=emit,
                                               stat_names=recipe.stat_names, codec=codec),
                          *recipe.dedup.stages, kept="rows")
    if rows is not None and (recipe.after_dedup or recipe.classifier is not None):
        docs, rows = rows | "BackToDocuments" >> beam.Map(document_from_row), None
    if recipe.after_dedup:
        docs = flow.apply(docs, "AfterDedup", Counted(QualityStepsFn(recipe.after_dedup, emit_rejected=emit),
                                                      tags=(REJECTED,)), *(s.spec.name for s in recipe.after_dedup))
    if recipe.classifier is not None:
        rows = flow.apply(docs, "Classify", Classify(recipe.classifier, stat_names=recipe.stat_names,
                                                     emit_rejected=emit, spill_prefix=f"{spill}/classifier",
                                                     codec=codec), "classifier", kept="rows")
    if rows is None:
        rows = docs | "ToRows" >> ToRows(recipe.stat_names)
    flow.apply(rows, "WriteDocuments", WriteDocuments(f"{output.rstrip('/')}/documents", stat_names=recipe.stat_names,
                                                      num_shards=recipe.output.num_shards, codec=codec,
                                                      row_group_bytes=recipe.output.row_group_bytes), "write")
    flow.write_rejected(WriteRejected(rejected_output, codec=codec))
    return flow.stages


def recipe_flags(shards: ShardOptions, own: "WerpOptions") -> dict[str, dict[str, object]]:
    """The recipe keys werp's flags are shortcuts for."""
    if own.classifier_threshold is not None and own.classifier_top_fraction is not None:
        raise JobError("give --classifier_threshold or --classifier_top_fraction, not both")
    return flag_keys(
        ("extractor", own.extractor, "extract.extractor"), ("max_record_bytes", own.max_record_bytes,
                                                            "read.max_record_bytes"),
        ("num_shards", shards.num_shards, "output.num_shards"), ("classifier_model", own.classifier_model,
                                                                 "classifier.model_path"),
        ("classifier_threshold", own.classifier_threshold,
         {"classifier.mode": "threshold", "classifier.threshold": own.classifier_threshold}),
        ("classifier_top_fraction", own.classifier_top_fraction,
         {"classifier.mode": "top_fraction", "classifier.top_token_fraction": own.classifier_top_fraction}))


def resolve(options: PipelineOptions, overrides: Sequence[str] = ()) -> tuple[Loaded[WebRecipe], list[str], str]:
    """The recipe (file, then key=value overrides, then flags), input globs and output prefix."""
    common, own = options.view_as(RefineryOptions), options.view_as(WerpOptions)
    loaded = load_job_config(common.config or DEFAULT_RECIPE, folder="werp", what="recipe",
                             build=recipe_from_mapping, overrides=overrides, flags=recipe_flags(options.view_as(ShardOptions), own))
    recipe = loaded.config
    if recipe.langid is not None:
        try:
            ensure_available(recipe.langid)  # a missing optional package fails now, not on a worker
        except ImportError as exc:
            raise JobError(str(exc)) from None
    if recipe.classifier is not None:
        check_model(recipe.classifier)
    return loaded, split_globs(common.input) or [str(SAMPLE_PATH)], common.output or DEFAULT_OUTPUT


def check_model(cfg: ClassifierConfig) -> None:
    """fastText and the model file must be there before any worker starts."""
    try:
        import_fasttext()
    except ImportError as exc:
        raise JobError(str(exc)) from None
    if not FileSystems.exists(cfg.model_path):
        raise JobError(f"--classifier_model {cfg.model_path}: no such file; train one with `python -m pipelines.betr`")
    with FileSystems.open(cfg.model_path) as fh:
        head = fh.read(4)
    if head != FASTTEXT_MAGIC:  # else every worker would fail on its first document
        raise JobError(f"--classifier_model {cfg.model_path}: not a fastText model (a .bin/.ftz starts with "
                       f"{FASTTEXT_MAGIC.hex()}, this file with {head.hex() or 'nothing'}); train one with "
                       "`python -m pipelines.betr`")


def run(argv: list[str] | None = None) -> dict:
    """Parse flags, validate everything, run into a staging folder, swap it in, and return the stats report."""
    overrides, options = parse_args(argv, OPTIONS, prog="python -m pipelines.werp")
    loaded, globs, output = resolve(options, overrides)
    recipe = loaded.config
    inputs = expand_inputs(globs)
    options, split_bytes = plan_byte_ranges(options, patterns=inputs.patterns, max_split_bytes=recipe.read.split_bytes)
    recipe = dataclasses.replace(recipe, read=dataclasses.replace(recipe.read, split_bytes=split_bytes))
    out, rej = plan_outputs(output, options.view_as(ShardOptions).rejected_output, artifacts=ARTIFACTS,
                            rejected_artifacts=REJECTED_ARTIFACTS)
    return run_staged(out=out, rejected=rej, options=options,
                      build=lambda p, output, rejected: build(p, recipe=recipe, inputs=inputs.patterns, output=output,
                                                              rejected_output=rejected),
                      extra={**run_record(job="werp", loaded=loaded, inputs=globs, files=inputs.files, config=recipe),
                             "extractor": recipe.extract.extractor})

if __name__ == "__main__":
    sys.exit(job_main(sys.argv[1:], name="werp", doc=__doc__, option_classes=OPTIONS, run=run))
