"""pipelines.betr's steps: read the labelled texts (BETR's benchmark ranking or DCLM's sets), train fastText and
measure it; inputs are JSONL (.gz, .zst as is) or Parquet on any Beam filesystem, bad lines counted, never fatal."""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import os
import re
import tempfile
import time
from typing import Iterator, Sequence

import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from core.job_config import flag_keys
from pipelines.jobs import JobError, expand_inputs
from transforms.quality import betr
from transforms.quality.betr_config import BetrLabels, ClassifierTraining, DclmLabels

log = logging.getLogger("refinery")
# The flags and the section of the key each sets (a list flag's value is comma-separated).
LISTS = {"benchmarks": "betr.", "benchmark_fields": "betr.", "pool": "betr.", "positives": "dclm.",
         "negatives": "dclm."}
NUMBERS = {"examples_per_benchmark": ("betr.", int), "sample": ("betr.", int), "max_rank": ("betr.", int),
           "positive_fraction": ("betr.", float), "batch_size": ("betr.", int), "held_out": ("", float),
           "seed": ("", int),
           **{k: ("fasttext.", t) for k, t in (("epoch", int), ("lr", float), ("word_ngrams", int), ("dim", int),
                                              ("min_count", int), ("bucket", int), ("thread", int))}}


@dataclasses.dataclass(slots=True)
class SourceCounts:
    """What one input file held; bad lines are counted and skipped, never fatal."""

    records: int = 0
    texts: int = 0
    bad_json: int = 0  # not JSON, not UTF-8, or not an object
    missing_field: int = 0
    empty: int = 0


def match(flag: str, patterns: Sequence[str]) -> list[str]:
    """Files of globs or folders, each glob's sorted; each must match something, and every Parquet file must be
    whole."""
    patterns = [g.strip() for g in patterns if g.strip()]
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


def read_set(flag: str, patterns: Sequence[str], fields: list[str], *, limit: int | None = None, seed: int = 0,
             per_file: bool = False) -> tuple[list[str], dict]:
    """Texts of every file a flag names, sampled to `limit` overall or per file, and what each file held."""
    paths, counts = match(flag, patterns), {}

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


def label_betr(cfg: ClassifierTraining) -> tuple[list[str], np.ndarray, dict]:
    """Pool sample labelled by best benchmark rank: the top positive_fraction is positive."""
    b = cfg.betr
    bench, bench_counts = read_set("--benchmarks", b.benchmarks, list(b.benchmark_fields),
                                   limit=b.examples_per_benchmark, seed=cfg.seed, per_file=True)
    pool, pool_counts = read_set("--pool", b.pool, [cfg.text_field], limit=b.sample, seed=cfg.seed)
    started = time.monotonic()
    scores = betr.best_rank_scores(betr.embed(bench, batch_size=b.batch_size),
                                   betr.embed(pool, batch_size=b.batch_size), max_rank=b.max_rank)
    log.info("embedded and ranked %d examples x %d documents in %.1f s", len(bench), len(pool),
             time.monotonic() - started)
    labels = betr.label_top_fraction(scores, b.positive_fraction)
    return pool, labels, {"benchmarks": bench_counts, "pool": pool_counts, "benchmark_examples": len(bench),
                          "pool_sampled": len(pool), "positive_fraction": b.positive_fraction,
                          "embedder": betr.EMBEDDER, "max_rank": b.max_rank,
                          "worst_positive_rank": int(scores[labels].max()) if labels.any() else None}


def label_dclm(cfg: ClassifierTraining) -> tuple[list[str], np.ndarray, dict]:
    """The given positive and negative sets, read in full."""
    pos, pos_counts = read_set("--positives", cfg.dclm.positives, [cfg.text_field])
    neg, neg_counts = read_set("--negatives", cfg.dclm.negatives, [cfg.text_field])
    return pos + neg, np.arange(len(pos) + len(neg)) < len(pos), {"positives": pos_counts, "negatives": neg_counts}


def check_inputs(cfg: ClassifierTraining, output: str) -> None:
    """Every input glob and the model's folder, before anything is read or written; errors name the flag."""
    if cfg.mode == "betr":
        match("--benchmarks", cfg.betr.benchmarks)
        match("--pool", cfg.betr.pool)
    else:
        match("--positives", cfg.dclm.positives)
        match("--negatives", cfg.dclm.negatives)
    check_model_output(output)


def train_and_report(texts: list[str], labels: np.ndarray, *, cfg: ClassifierTraining, model_path: str) -> dict:
    """Balance, split, train (the model goes to model_path), evaluate; the counts of every step go into the report."""
    counts = {"labelled": len(labels), "positive": int(labels.sum()), "negative": int((~labels).sum())}
    if not counts["positive"] or not counts["negative"]:
        raise JobError(f"need positive and negative documents to train, got {counts}; add documents or raise "
                       "--positive_fraction")
    chosen = betr.balance_classes(labels, seed=cfg.seed) if cfg.balance else np.arange(len(labels))
    texts, labels = [texts[i] for i in chosen], labels[chosen]
    train, held = betr.split_held_out(labels, fraction=cfg.held_out, seed=cfg.seed)
    model = betr.train_fasttext([texts[i] for i in train], labels[train], params=cfg.fasttext, model_path=model_path)
    return {**counts, "balanced": cfg.balance, "trained_on": len(train), "held_out_fraction": cfg.held_out,
            "train_metrics": betr.evaluate(model, [texts[i] for i in train], labels[train]),
            "held_out_metrics": betr.evaluate(model, [texts[i] for i in held], labels[held])}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line through job_main, exit 2
        raise JobError(f"{message}; see python -m pipelines.betr --help")


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """pipelines.betr's flags: each a shortcut for one key of configs/betr/*.yaml (transforms/quality/betr_config.py
    says what each key does; its note is repeated here)."""
    notes = {**field_notes(ClassifierTraining), **field_notes(BetrLabels), **field_notes(DclmLabels),
             **field_notes(betr.FastTextParams)}
    parser = _Parser(prog="python -m pipelines.betr", description=description,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="Local path of the fastText model (.bin).")
    parser.add_argument("--config", default="default", help="configs/betr/<name>.yaml or a YAML path.")
    for name, section in LISTS.items():
        parser.add_argument(f"--{name}", help=f"{notes.get(name, '')}. Comma-separated; same as {section}{name}=[...].")
    for name, (section, kind) in NUMBERS.items():
        parser.add_argument(f"--{name}", type=kind, help=f"{notes.get(name, '')}. Same as {section}{name}=...")
    parser.add_argument("--text_field", help=f"{notes['text_field']}. Same as text_field=...")
    parser.add_argument("--balance", action=argparse.BooleanOptionalAction, default=None,
                        help=f"{notes['balance']}. Same as balance=...")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="any other key, e.g. fasttext.dim=50")
    return parser


def recipe_flags(args: argparse.Namespace) -> dict:
    """The keys the given flags set (core.job_config.flag_keys): lists split on commas, --seed for fastText too."""
    shortcuts = {**{n: (s, list) for n, s in LISTS.items()}, **NUMBERS, "text_field": ("", str), "balance": ("", bool)}
    flags = {f: {k: v.split(",") if shortcuts[k.split(".")[-1]][1] is list else v for k, v in keys.items()}
             for f, keys in flag_keys(*((n, getattr(args, n), f"{s}{n}") for n, (s, _) in shortcuts.items())).items()}
    if args.seed is not None:
        flags[f"--seed={args.seed}"]["fasttext.seed"] = args.seed  # one seed for the sampling and fastText
    return flags


def field_notes(cls: type) -> dict[str, str]:
    """The trailing comment of each field of a config class (`name: type = default  # note`), for --help."""
    lines = inspect.getsource(cls).splitlines()
    return {m.group(1): m.group(2).strip() for line in lines if (m := re.match(r"\s+(\w+):[^#]*#\s*(.*)$", line))}
