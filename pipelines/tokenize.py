"""Tokenize: text shards of any pipeline (werp, swallowcode, swallowmath) -> a token mixture packed for training.

python -m pipelines.tokenize          # the built-in sample (configs/tokenize/sample.yaml) -> ./output/tokens/
python -m transforms.tokenizer train --input 'output/werp/documents/*.parquet' --output output/tokenizer.json
python -m pipelines.tokenize --config default --output output/tokens
python -m pipelines.tokenize --config mixture --output output/tokens --tokenizer t.json --seq_len 4096

Writes <output>/train/ and <output>/valid/ token shards (core/shards.py), <output>/manifest.json
(sequence length, tokenizer and its sha256, the target and realised mixture, the unigram entropy of train: the
loss a model must beat) and <output>/stats.json. Pass 1 counts each source's tokens; the plan turns the weights
into copies per document (seeded draws); each shard holds its copies in a seeded order, each followed by
<|endoftext|>, cut into rows of seq_len + 1 tokens. The tail that fills no row is dropped and counted.
Output is identical across reruns and runner parallelism. Without --input and --config the job reads its built-in
sample; with --config alone, the config's sources; --input replaces the sources (config: default unless given).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import glob
import os
import sys
import time
from typing import Sequence

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pvalue import AsDict, AsSingleton

from core.job_config import Loaded, flag_keys
from core.resources import resolve_resource
from core.shards import ShardMeta
from pipelines.jobs import JobError, expand_inputs, job_main, parse_args, run_counted
from pipelines.options import RefineryOptions, split_globs
from pipelines.report_data import REPORT_NAME
from pipelines.run_info import input_files, run_record
from pipelines.runners import fit_local_workers, make_runner
from pipelines.staging import plan_output, staged, write_run_report
from transforms import stats
from transforms.beam.metrics import Counted
from transforms.beam.packing import (
    COUNTS, CopyFn, KeyFn, SumCountsFn, TokenizeFn, WriteShardFn, shard_keys, write_manifest,
)
from transforms.beam.read_samples import ReadSamples
from transforms.io.samples import SampleFields
from transforms.packing import SourceConfig, TokenizeConfig, load_tokenize_config, plan_mixture, token_dtype
from transforms.tokenizer import TokenizerError, eos_id, load_tokenizer, tokenizer_sha256

DEFAULT_OUTPUT = "./output/tokens"
DEFAULT_CONFIG, SAMPLE_CONFIG = "default", "sample"  # with --input / without --input (the built-in sample)
STAGES = ["read", "tokenize", "mix", "pack"]
ARTIFACTS = ("train/part-*.parquet", "valid/part-*.parquet", "manifest.json", "stats.json", "report.html")  # replaced by a run
log = logging.getLogger("refinery")
TRAIN_HINT = "train one with python -m transforms.tokenizer train --input 'output/werp/documents/*.parquet'"


class TokenizeOptions(PipelineOptions):
    """Overrides of the config's tokenizer and sequence length."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument("--tokenizer", default=None, help="tokenizer.json (python -m transforms.tokenizer train); "
                            "a local file: the driver reads it and ships it to the workers. Default: the config's; "
                            "same as tokenizer=...")
        parser.add_argument("--seq_len", type=int, default=None,
                            help="Tokens per training sequence (rows hold seq_len + 1). Default: the config's (default: "
                            "2048, the built-in sample: 128); same as seq_len=...")


OPTIONS = (RefineryOptions, TokenizeOptions)  # the flags the job takes

class TokenizeSources(beam.PTransform):
    """Every source's text shards -> (source, key, token bytes), skips counted under read and tokenize."""

    def __init__(self, cfg: TokenizeConfig, *, tokenize: TokenizeFn) -> None:
        super().__init__()
        self.cfg, self.tokenize = cfg, tokenize

    def expand(self, pbegin):
        texts = []
        for s in self.cfg.sources:
            fields = SampleFields(text=s.text_column, id="", language="")
            samples, _ = (pbegin | f"Globs {s.name}" >> beam.Create(list(s.paths))
                          | f"Read {s.name}" >> ReadSamples(fields=fields, max_bytes=self.cfg.max_document_bytes))
            texts.append(samples | f"Key {s.name}" >> Counted(KeyFn(s.name)))
        return texts | "Sources" >> beam.Flatten() | "Tokenize" >> Counted(self.tokenize)


class PlanMixture(beam.PTransform):
    """docs -> ((source, (documents, tokens)) totals, the Mixture as a one-element PCollection)."""

    def __init__(self, cfg: TokenizeConfig, *, itemsize: int) -> None:
        super().__init__()
        self.cfg, self.itemsize = cfg, itemsize

    def expand(self, docs):
        available = (docs | "Sizes" >> beam.Map(lambda d, width: (d[0], (1, len(d[2]) // width)), width=self.itemsize)
                     | "SumSizes" >> beam.CombinePerKey(beam.combiners.TupleCombineFn(sum, sum)))
        mixture = (available | "Tokens" >> beam.Map(lambda kv: (kv[0], kv[1][1]))
                   | "Available" >> beam.combiners.ToDict() | "Plan" >> beam.Map(plan_mixture, cfg=self.cfg))
        return available, mixture


class MixAndPack(beam.PTransform):
    """docs -> token shards under <output>/<split>/ and <output>/manifest.json."""

    def __init__(self, cfg: TokenizeConfig, *, available, mixture, write: WriteShardFn, header: dict) -> None:
        super().__init__()
        self.cfg, self.available, self.mixture, self.write, self.header = cfg, available, mixture, write, header

    def expand(self, docs):
        plan = AsSingleton(self.mixture)
        copies = docs | "Copies" >> Counted(CopyFn(seed=self.cfg.seed, valid_fraction=self.cfg.valid_fraction), plan)
        markers = self.mixture | "ShardKeys" >> beam.FlatMap(shard_keys)
        written = ((copies, markers) | "AllShards" >> beam.Flatten() | "GroupShards" >> beam.GroupByKey()
                   | "WriteShards" >> Counted(self.write, plan, tags=(COUNTS,)))
        summaries, token_counts = written
        counts = token_counts | "SumCounts" >> beam.CombineGlobally(SumCountsFn(self.header["vocab_size"]))
        return (summaries | "Summaries" >> beam.combiners.ToList()
                | "Manifest" >> beam.Map(write_manifest, path=f"{self.write.output}/manifest.json", mixture=plan,
                                         weights=self.cfg.weights, available=AsDict(self.available),
                                         counts=AsSingleton(counts), header=self.header))


def build(p: beam.Pipeline, cfg: TokenizeConfig, *, tokenizer_json: str, meta: ShardMeta, output: str,
          header: dict) -> None:
    dtype = token_dtype(meta.vocab_size)
    docs = p | "TokenizeSources" >> TokenizeSources(cfg, tokenize=TokenizeFn(
        tokenizer_json=tokenizer_json, eos_id=meta.eos_id, dtype=dtype.str))
    available, mixture = docs | "PlanMixture" >> PlanMixture(cfg, itemsize=dtype.itemsize)
    write = WriteShardFn(output=output, meta=meta, row_group_rows=cfg.row_group_rows, dtype=dtype.str)
    docs | "MixAndPack" >> MixAndPack(cfg, available=available, mixture=mixture, write=write, header=header)


def resolve(options: PipelineOptions, overrides: Sequence[str] = ()
            ) -> tuple[Loaded[TokenizeConfig], str, list[str]]:
    """The config (file, key=value overrides, flags; --input replaces the sources), the output prefix and the input
    files; with neither --input nor --config, the built-in sample."""
    common, own = options.view_as(RefineryOptions), options.view_as(TokenizeOptions)
    inputs = split_globs(common.input)
    loaded = load_tokenize_config(common.config or (DEFAULT_CONFIG if inputs else SAMPLE_CONFIG), overrides,
                                  flag_keys(("tokenizer", own.tokenizer, "tokenizer"), ("seq_len", own.seq_len, "seq_len")))
    cfg = loaded.config
    if not inputs and not common.config:
        log.info("no --input or --config: the built-in sample (configs/tokenize/sample.yaml); pass --input=GLOB or "
                 "--config=NAME for your own text")
    if inputs:  # one source of its own, with the first source's text column
        cfg = dataclasses.replace(cfg, sources=(SourceConfig(name="input", paths=tuple(inputs),
                                                             text_column=cfg.sources[0].text_column),))
    if not cfg.tokenizer:
        raise JobError(f"no tokenizer; pass --tokenizer=tokenizer.json or set tokenizer in the config, or {TRAIN_HINT}")
    checked = [check_source(dataclasses.replace(s, paths=tuple(map(located, s.paths)))) for s in cfg.sources]
    cfg = dataclasses.replace(cfg, tokenizer=located(cfg.tokenizer), sources=tuple(s for s, _ in checked))
    return (dataclasses.replace(loaded, config=cfg), (common.output or DEFAULT_OUTPUT).rstrip("/"),
            [f for _, files in checked for f in files])


def located(path: str) -> str:
    """A relative path or glob that names nothing from the working directory, found in the shipped configs package
    if it is there (core.resources.resolve_resource, as recipes name shipped lists): a shipped config such as
    sample.yaml then runs from any folder. Anything else stays as written, so errors name what the user gave."""
    if "://" in path or os.path.isabs(path) or glob.glob(path, recursive=True):
        return path
    shipped = os.path.normpath(resolve_resource(path))
    return shipped if glob.glob(shipped, recursive=True) else path


def check_source(source: SourceConfig) -> tuple[SourceConfig, list[str]]:
    """Every glob matches (a folder: every file under it), every Parquet footer is whole, and the first Parquet
    file has the text column (a typo fails now, not as skips); returns the source with its folders expanded, and
    its files."""
    flag = f"source {source.name!r}:"
    inputs = expand_inputs(source.paths, flag=flag,
                           fix="fix its paths (or --input), or run the pipeline that writes them first")
    first = inputs.files[0]
    if first.endswith(".parquet"):
        with FileSystems.open(first) as fh:
            names = pq.ParquetFile(fh).schema_arrow.names
        if source.text_column not in names:
            raise JobError(f"source {source.name!r}: {first} has no column {source.text_column!r}; its columns: "
                           f"{', '.join(names)} (set text_column)")
    return dataclasses.replace(source, paths=tuple(inputs.patterns)), inputs.files


def finish(counts: dict[str, int], *, loaded: Loaded[TokenizeConfig], output: str, started: float,
           files: Sequence[str] = ()) -> dict:
    """stats.json with the realised mixture and the run's inputs, versions and config in force; a plan that could
    not be met fails (so nothing is published)."""
    cfg = loaded.config
    with FileSystems.open(f"{output}/manifest.json") as fh:
        manifest = json.loads(fh.read())
    mixture = {n: {k: s[k] for k in ("target_weight", "realised_weight", "tokens_available", "tokens_taken")}
               for n, s in manifest["sources"].items()}
    report = stats.build_report(counts, stage_order=STAGES,
                                wall_time_s=time.monotonic() - started,
                                extra={**run_record(job="tokenize", loaded=loaded, files=files,
                                                    inputs=[p for source in cfg.sources for p in source.paths],
                                                    config=cfg),
                                       "tokenizer": cfg.tokenizer, "seq_len": cfg.seq_len,
                                       "mixture": mixture, "splits": manifest["splits"],
                                       "tail_tokens_dropped": manifest["tail_tokens_dropped"],
                                       "unigram_entropy": manifest["unigram_entropy"]})
    with FileSystems.create(f"{output}/stats.json") as fh:
        fh.write(stats.dump_report(report).encode("utf-8"))
    print(stats.format_summary(report))
    if "error" in manifest:
        raise JobError(manifest["error"])
    for name, m in mixture.items():
        print(f"  {name:<16} target {m['target_weight']:.3f}  realised {m['realised_weight']:.3f}  "
              f"tokens {m['tokens_taken']:,} of {m['tokens_available']:,}")
    for split, s in manifest["splits"].items():
        if s["shards"] and not s["rows"]:
            log.warning("the %s split has no rows: too few documents for one sequence of %d tokens", split, cfg.seq_len)
        print(f"  {split:<6} {s['rows']:,} rows x {cfg.seq_len} = {s['tokens']:,} tokens in {s['shards']} shard(s), "
              f"tail dropped {s['tail_tokens_dropped']:,}")
    print(f"unigram entropy (train): {manifest['unigram_entropy']['nats_per_token']:.4f} nats/token")
    return report


def run(argv: list[str] | None = None) -> dict:
    """Parse flags, load and check the tokenizer, run, and return the stats report."""
    overrides, options = parse_args(argv, OPTIONS, prog="python -m pipelines.tokenize")
    loaded, output, files = resolve(options, overrides)
    cfg = loaded.config
    options = fit_local_workers(options, patterns=[p for source in cfg.sources for p in source.paths])
    try:
        tok = load_tokenizer(cfg.tokenizer)
        meta = ShardMeta(seq_len=cfg.seq_len, vocab_size=tok.get_vocab_size(), eos_id=eos_id(tok),
                         tokenizer_sha256=tokenizer_sha256(cfg.tokenizer))
    except TokenizerError as exc:
        raise JobError(str(exc)) from None
    header = {**{k: v for k, v in dataclasses.asdict(meta).items() if k != "split"},
              "tokenizer": os.path.abspath(cfg.tokenizer), "seed": cfg.seed, "config": cfg.name,
              "total_tokens_target": cfg.total_tokens, "max_repeats": cfg.max_repeats,
              "valid_fraction": cfg.valid_fraction}
    out = plan_output(output, flag="--output", artifacts=ARTIFACTS)
    started = time.monotonic()
    with staged(out):
        counts, _ = run_counted(
            lambda p: build(p, cfg, tokenizer_json=tok.to_str(), meta=meta, output=out.staging, header=header),
            runner=make_runner(options), options=options, output=out.staging, stages=STAGES,
            total_bytes=sum(f["bytes"] or 0 for f in input_files(files)))
        report = finish(counts, loaded=loaded, output=out.staging, started=started, files=files)
    write_run_report(out.final, None)
    print(f"shards: {out.final}/train/ {out.final}/valid/  manifest: {out.final}/manifest.json  "
          f"stats: {out.final}/stats.json  report: {out.final}/{REPORT_NAME}")
    return report


if __name__ == "__main__":
    sys.exit(job_main(sys.argv[1:], name="tokenize", doc=__doc__, option_classes=OPTIONS,
                      run=run))
