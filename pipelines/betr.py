"""Train the fastText quality classifier: BETR labels from benchmark similarity, or DCLM's positives and negatives.

python -m pipelines.betr --benchmarks=arc.jsonl,sciq.jsonl --benchmark_fields=question,answer \\
    --pool='output/werp/documents/*.parquet' --sample=100000 --output=models/betr.bin
python -m pipelines.betr --positives=hq.jsonl --negatives='cc/*.parquet' --output=models/dclm.bin

One process, not a Beam job: the embedder and fastText use the local cores. Inputs are JSONL (one object a line;
.gz and .zst are read as is) or Parquet, on any Beam filesystem; the model and <output>.report.json are local files.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines.jobs import JobError, expand_inputs, job_main
from pipelines.options import wants_help
from pipelines.staging import staged_files
from transforms.quality import betr

log = logging.getLogger("refinery")
CHANCE_MARGIN = 0.6  # on balanced classes 0.5 is a coin toss; below 0.6 the model has learned little
_DEFAULTS = betr.FastTextParams()
_SIMPLE_FASTTEXT = {"epoch": "Epochs", "lr": "Learning rate", "word_ngrams": "wordNgrams (2: unigrams and bigrams)",
                    "dim": "Vector size", "min_count": "minCount (rarer words are dropped)"}
FLAGS = {  # group -> flag -> add_argument keywords; every help says what the flag does and its default
    "BETR mode (Mizrahi et al. 2025)": {
        "--benchmarks": dict(help="Benchmark training examples: comma-separated JSONL files or globs. Each file is "
                             "one benchmark, each record one example, embedded on its own."),
        "--benchmark_fields": dict(default="text", help="Comma-separated fields joined by newlines into an example, "
                                   "e.g. question,answer; list values are joined by spaces. Default: text."),
        "--examples_per_benchmark": dict(type=int, help="Sample at most this many examples per file (seeded); BETR "
                                         "uses an equal count per benchmark. Default: all."),
        "--pool": dict(help="Documents to label: comma-separated globs of Parquet shards (werp output) or JSONL."),
        "--sample": dict(type=int, default=100_000, help="Pool documents sampled uniformly (seeded reservoir over the "
                         "sorted files); BETR sampled 10M. Default: 100000."),
        "--positive_fraction": dict(type=float, default=0.1, help="Share of sampled documents, best ranks first, "
                                    "labelled positive. Default: 0.1, BETR's."),
        "--max_rank": dict(type=int, help="Rank only each example's nearest N documents (faster on big samples; the "
                           "rest score N). Default: rank all."),
        "--batch_size": dict(type=int, default=64, help="Embedding batch size. Default: 64."),
    },
    "DCLM mode (Li et al. 2024)": {
        "--positives": dict(help="High-quality documents: comma-separated JSONL or Parquet globs."),
        "--negatives": dict(help="Low-quality documents (e.g. raw crawl): comma-separated JSONL or Parquet globs."),
    },
    "common": {
        "--output": dict(required=True, help="Local path of the fastText model (.bin); the report goes to "
                         "<output>.report.json."),
        "--text_field": dict(default="text", help="Text field of pool, positive and negative records. Default: text."),
        "--held_out": dict(type=float, default=0.1, help="Share of labelled documents held out (stratified, seeded) "
                           "to measure accuracy. Default: 0.1."),
        "--balance": dict(action=argparse.BooleanOptionalAction, default=True, help="Downsample the majority class "
                          "to the minority's size, as BETR does. Default: on."),
        "--seed": dict(type=int, default=0, help="Seed of sampling, balancing, the split and fastText. Default: 0."),
    },
    "fastText (defaults: DCLM's OH-2.5 + ELI5 classifier, mlfoundations/dclm baselines/README.md)": {
        "--bucket": dict(type=int, default=_DEFAULTS.bucket, help="Hash buckets for word n-grams; the .bin holds "
                         f"(words + bucket) x dim floats. Default: {_DEFAULTS.bucket}, fastText's (an ~800 MB model)."),
        "--thread": dict(type=int, default=os.cpu_count() or 1, help="Training threads; 1 makes the model "
                         "bit-reproducible. Default: all cores."),
    },
}


class _Parser(argparse.ArgumentParser):
    """Flag mistakes become JobError, so job_main prints them as one line and exits 2."""

    def error(self, message: str) -> None:
        raise JobError(f"{message}; see python -m pipelines.betr --help")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m pipelines.betr", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for title, flags in FLAGS.items():
        group = parser.add_argument_group(title)
        if title.startswith("fastText"):
            for name, what in _SIMPLE_FASTTEXT.items():
                default = getattr(_DEFAULTS, name)
                group.add_argument(f"--{name}", type=type(default), default=default,
                                   help=f"{what}. Default: {default}.")
        for flag, keywords in flags.items():
            group.add_argument(flag, **keywords)
    return parser


@dataclasses.dataclass(slots=True)
class SourceCounts:
    """What one input file held; bad lines are counted and skipped, never fatal."""

    records: int = 0
    texts: int = 0
    bad_json: int = 0  # not JSON, not UTF-8, or not an object
    missing_field: int = 0
    empty: int = 0


def match(flag: str, value: str | None) -> list[str]:
    """Files of comma-separated globs or folders, each glob's sorted; each must match something, and every
    Parquet file must be whole."""
    patterns = [g.strip() for g in (value or "").split(",") if g.strip()]
    if not patterns:
        raise JobError(f"{flag} is empty; pass one or more files, globs or folders")
    files = expand_inputs(patterns, flag=flag).files
    return files


def check_model_output(path: str) -> None:
    """--output is a file path whose folder we can write to: checked before hours of embedding, not after."""
    if os.path.isdir(path):
        raise JobError(f"--output {path} is a folder; pass the model's file path, e.g. {path.rstrip('/')}/betr.bin")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=os.path.dirname(os.path.abspath(path)), prefix=".refinery-probe-"):
            pass
    except OSError as exc:
        raise JobError(f"--output {path}: cannot write there ({exc.strerror or exc}: {exc.filename or path}); pass a "
                       "path you can write to") from None


def _records(path: str, fields: list[str], counts: SourceCounts) -> Iterator[dict]:
    """Records with the needed fields: Parquet reads only those columns, JSONL streams line by line."""
    with FileSystems.open(path) as fh:
        if path.endswith(".parquet"):
            shard = pq.ParquetFile(fh)
            names = shard.schema_arrow.names
            if not set(fields) & set(names):
                raise JobError(f"{path} has no column {', '.join(fields)}; its columns: {', '.join(names)}")
            for batch in shard.iter_batches(columns=[f for f in fields if f in names], batch_size=1024):
                yield from batch.to_pylist()
            return
        for line in iter(fh.readline, b""):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if isinstance(record, dict):
                yield record
            else:
                counts.bad_json += 1


def read_texts(path: str, fields: list[str], counts: SourceCounts) -> Iterator[str]:
    """Non-empty texts of one file (fields joined); a file where no record has any of the fields is a user error."""
    seen: set[str] = set()
    for record in _records(path, fields, counts):
        counts.records += 1
        values = [record.get(f) for f in fields]
        parts = [" ".join(map(str, v)) if isinstance(v, list) else str(v) for v in values if v is not None]
        if not parts:
            counts.missing_field += 1
            seen.update(list(record)[:50])
        elif not any(p.strip() for p in parts):
            counts.empty += 1
        else:
            counts.texts += 1
            yield "\n".join(parts)
    if counts.records and counts.missing_field == counts.records:
        raise JobError(f"{path}: no record has field(s) {', '.join(fields)}; fields seen: {', '.join(sorted(seen))}")


def read_set(flag: str, value: str | None, fields: list[str], *, limit: int | None = None, seed: int = 0,
             per_file: bool = False) -> tuple[list[str], dict]:
    """Texts of every file a flag names, sampled to `limit` overall or per file, and what each file held."""
    paths, counts = match(flag, value), {}

    def stream(path: str) -> Iterator[str]:
        counts[path] = SourceCounts()
        yield from read_texts(path, fields, counts[path])

    if per_file:
        texts = [t for p in paths for t in betr.reservoir_sample(stream(p), limit, seed=seed)]
    else:
        texts = betr.reservoir_sample((t for p in paths for t in stream(p)), limit, seed=seed)
    report = {p: dataclasses.asdict(c) for p, c in counts.items()}
    if not texts:
        raise JobError(f"{flag} holds no usable text: {json.dumps(report)}")
    bad = sum(c.bad_json for c in counts.values())
    log.info("%s: %d texts from %d files; %d lines were not JSON objects", flag, len(texts), len(paths), bad)
    return texts, report


def label_betr(args) -> tuple[list[str], np.ndarray, dict]:
    """Pool sample labelled by best benchmark rank: the top positive_fraction is positive."""
    bench, bench_counts = read_set("--benchmarks", args.benchmarks, args.benchmark_fields.split(","),
                                   limit=args.examples_per_benchmark, seed=args.seed, per_file=True)
    pool, pool_counts = read_set("--pool", args.pool, [args.text_field], limit=args.sample, seed=args.seed)
    started = time.monotonic()
    scores = betr.best_rank_scores(betr.embed(bench, batch_size=args.batch_size),
                                   betr.embed(pool, batch_size=args.batch_size), max_rank=args.max_rank)
    log.info("embedded and ranked %d examples x %d documents in %.1f s", len(bench), len(pool),
             time.monotonic() - started)
    labels = betr.label_top_fraction(scores, args.positive_fraction)
    return pool, labels, {"benchmarks": bench_counts, "pool": pool_counts, "benchmark_examples": len(bench),
                          "pool_sampled": len(pool), "positive_fraction": args.positive_fraction,
                          "embedder": betr.EMBEDDER, "max_rank": args.max_rank,
                          "worst_positive_rank": int(scores[labels].max()) if labels.any() else None}


def label_dclm(args) -> tuple[list[str], np.ndarray, dict]:
    """The given positive and negative sets, read in full."""
    pos, pos_counts = read_set("--positives", args.positives, [args.text_field])
    neg, neg_counts = read_set("--negatives", args.negatives, [args.text_field])
    return pos + neg, np.arange(len(pos) + len(neg)) < len(pos), {"positives": pos_counts, "negatives": neg_counts}


def check_flags(args, *, betr_mode: bool) -> None:
    """Range checks and every input glob, before anything is read or written; errors name the flag."""
    if not 0.0 <= args.held_out < 1.0:
        raise JobError(f"--held_out ({args.held_out}) must be in [0, 1)")
    if betr_mode:
        for flag in ("sample", "max_rank", "examples_per_benchmark", "batch_size"):
            if getattr(args, flag) is not None and getattr(args, flag) < 1:
                raise JobError(f"--{flag} ({getattr(args, flag)}) must be >= 1")
        if not 0.0 < args.positive_fraction < 1.0:
            raise JobError(f"--positive_fraction ({args.positive_fraction}) must be in (0, 1); BETR uses 0.1")
    for flag in ("--benchmarks", "--pool") if betr_mode else ("--positives", "--negatives"):
        match(flag, getattr(args, flag[2:]))
    check_model_output(args.output)


def train_and_report(texts: list[str], labels: np.ndarray, *, args, params: betr.FastTextParams,
                     model_path: str) -> dict:
    """Balance, split, train (the model goes to model_path), evaluate; the counts of every step go into the report."""
    counts = {"labelled": len(labels), "positive": int(labels.sum()), "negative": int((~labels).sum())}
    if not counts["positive"] or not counts["negative"]:
        raise JobError(f"need positive and negative documents to train, got {counts}; add documents or raise "
                       "--positive_fraction")
    chosen = betr.balance_classes(labels, seed=args.seed) if args.balance else np.arange(len(labels))
    texts, labels = [texts[i] for i in chosen], labels[chosen]
    train, held = betr.split_held_out(labels, fraction=args.held_out, seed=args.seed)
    model = betr.train_fasttext([texts[i] for i in train], labels[train], params=params, model_path=model_path)
    return {**counts, "balanced": args.balance, "trained_on": len(train), "held_out_fraction": args.held_out,
            "train_metrics": betr.evaluate(model, [texts[i] for i in train], labels[train]),
            "held_out_metrics": betr.evaluate(model, [texts[i] for i in held], labels[held])}


def run(argv: list[str] | None = None) -> dict:
    """Parse flags, label, train, write the model and its report; returns the report."""
    args = build_parser().parse_args(argv)
    betr_mode, dclm_mode = bool(args.benchmarks or args.pool), bool(args.positives or args.negatives)
    if betr_mode == dclm_mode:
        raise JobError("pass either --benchmarks and --pool (BETR) or --positives and --negatives (DCLM)")
    try:
        params = betr.FastTextParams(epoch=args.epoch, lr=args.lr, word_ngrams=args.word_ngrams, dim=args.dim,
                                     min_count=args.min_count, bucket=args.bucket, thread=args.thread, seed=args.seed)
    except ValueError as exc:
        raise JobError(f"fastText settings: {exc}") from None
    check_flags(args, betr_mode=betr_mode)
    started = time.monotonic()
    with staged_files(args.output, f"{args.output}.report.json") as (model_path, report_path):
        try:
            texts, labels, inputs = label_betr(args) if betr_mode else label_dclm(args)
            result = train_and_report(texts, labels, args=args, params=params, model_path=model_path)
        except (ImportError, betr.TrainingError) as exc:  # the quality extra is missing; fastText diverged
            raise JobError(str(exc)) from None
        report = {"mode": "betr" if betr_mode else "dclm", "model": args.output, **result, "inputs": inputs,
                  "fasttext": dataclasses.asdict(params), "wall_time_s": round(time.monotonic() - started, 2)}
        with open(report_path, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
    held = report["held_out_metrics"]
    accuracy = "n/a" if held["accuracy"] is None else f"{held['accuracy']:.3f}"
    print(f"{report['mode']}: {result['positive']} positive / {result['negative']} negative labelled, trained on "
          f"{result['trained_on']}, held-out accuracy {accuracy} on {held['n']}")
    print(f"model: {args.output}  report: {args.output}.report.json")
    if args.balance and held["accuracy"] is not None and held["accuracy"] < CHANCE_MARGIN:
        log.warning("held-out accuracy %.3f is no better than chance: the model has not learned the labels. With few "
                    "examples (%d here) fastText needs more passes: try --epoch=25 --lr=0.5, or a larger --sample.",
                    held["accuracy"], result["trained_on"])
    return report


def main(argv: list[str]) -> int:
    """job_main's logging and one-line errors; --help is this parser's, since job_main's lists Beam runner flags."""
    if wants_help(argv):
        build_parser().print_help(sys.stdout)
        return 0
    return job_main(argv, name="betr", doc=__doc__, option_classes=(), run=run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
