"""DoFns of pipelines.tokenize: tokenise texts in batches, sample copies by the mixture, pack and write token shards.

Documents travel as (source, key, token bytes): the ids with the end-of-document token appended, in the smallest
dtype that holds the vocabulary, so the shuffle carries 2 bytes a token (transforms.packing.token_dtype).
"""
from __future__ import annotations

import dataclasses
import json
import posixpath
from typing import Iterable, Iterator

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import TaggedOutput

from core.shards import ShardMeta, pack, rows_table, shard_name
from transforms import stats
from transforms.beam.buffered import BufferingFn
from transforms.beam.metrics import CountingFn
from transforms.packing import Mixture, copies, doc_key, placement, split_of, unigram_entropy
from transforms.tokenizer import tokenizer_from_json

NOT_UNICODE = "tokenize.not_unicode"  # a lone surrogate (e.g. JSON "\ud800"): not text the tokenizer can take
NO_TOKENS = "tokenize.no_tokens"
NOT_SAMPLED, NO_PLAN = "mix.not_sampled", "mix.no_plan"  # zero copies drawn; the mixture could not be planned
COUNTS = "counts"


class KeyFn(CountingFn):
    """Sample -> (source, key, text); text that is not valid Unicode (a lone surrogate, e.g. JSON "\\ud800") is
    counted and dropped here, since neither Beam's string coder nor the tokenizer can take it."""

    def __init__(self, source: str) -> None:
        self.source = source

    def setup(self) -> None:
        self.counters = self.stage_counters("tokenize")

    def process(self, sample) -> Iterator[tuple[str, int, str]]:
        self.counters.start_clock()
        try:
            key = doc_key(sample.text)
        except UnicodeEncodeError:
            self.counters.count_in(len(sample.text))
            self.counters.count_dropped(NOT_UNICODE)
            self.counters.stop_clock()
            return
        self.counters.stop_clock()
        yield self.source, key, sample.text


class TokenizeFn(BufferingFn):
    """(source, key, text) -> (source, key, token bytes): one encode_batch per `batch_chars` of text."""

    def __init__(self, *, tokenizer_json: str, eos_id: int, dtype: str, batch_chars: int = 1 << 20) -> None:
        super().__init__(limit=batch_chars)
        self.tokenizer_json, self.eos_id, self.dtype = tokenizer_json, eos_id, dtype

    def setup(self) -> None:
        self.tok = tokenizer_from_json(self.tokenizer_json)
        self.tok.encode_special_tokens = True  # a literal "<|endoftext|>" in a document is text, not a boundary
        self.counters = self.stage_counters("tokenize")

    def process(self, item: tuple[str, int, str]) -> Iterator:
        yield from self.buffer(item, len(item[2]))

    def flush(self, items: list[tuple[str, int, str]]) -> Iterator[tuple[str, int, bytes]]:
        self.counters.start_clock()
        encodings = self.tok.encode_batch_fast([text for _, _, text in items], add_special_tokens=False)
        for (source, key, text), enc in zip(items, encodings):
            words = stats.word_count(text)
            self.counters.count_in(len(text), words=words)
            if not enc.ids:
                self.counters.count_dropped(NO_TOKENS)
                continue
            tokens = np.array([*enc.ids, self.eos_id], dtype=self.dtype)
            self.counters.count_out(len(text), words=words)
            self.counters.count(f"tokens.{source}", len(tokens))
            self.counters.stop_clock()
            yield source, key, tokens.tobytes()
            self.counters.start_clock()
        self.counters.stop_clock()


class CopyFn(CountingFn):
    """(source, key, tokens) -> ((split, shard), (order, source, tokens)), once per copy the mixture draws."""

    def __init__(self, *, seed: int, valid_fraction: float) -> None:
        self.seed, self.valid_fraction = seed, valid_fraction

    def setup(self) -> None:
        self.counters = self.stage_counters("mix")

    def process(self, doc: tuple[str, int, bytes], mixture: Mixture) -> Iterator:
        source, key, tokens = doc
        self.counters.start_clock()
        self.counters.count_in()
        n = 0 if mixture.error else copies(key, mixture.rates[source], seed=self.seed)
        if n == 0:
            self.counters.count_dropped(NO_PLAN if mixture.error else NOT_SAMPLED)
            self.counters.stop_clock()
            return
        split = split_of(key, valid_fraction=self.valid_fraction, seed=self.seed)
        self.counters.count_out()
        self.counters.count(f"copies.{split}", n)
        placed = [placement(key, c, shards=mixture.shards[split], seed=self.seed) for c in range(n)]
        self.counters.stop_clock()
        for shard, order in placed:
            yield (split, shard), (order, source, tokens)


def shard_keys(mixture: Mixture) -> Iterator[tuple[tuple[str, int], None]]:
    """One marker per planned shard, so every file of `part-i-of-N` is written, empty ones included."""
    for split, n in mixture.shards.items():
        for i in range(n):
            yield (split, i), None


def write_rows(path: str, rows: np.ndarray, meta: ShardMeta, *, row_group_rows: int) -> None:
    """Like core.shards.write_shard (temporary name, then rename), on any Beam filesystem."""
    tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.tmp")
    with FileSystems.create(tmp) as fh:
        pq.write_table(rows_table(rows, meta), fh, row_group_size=row_group_rows, compression="zstd")
    FileSystems.rename([tmp], [path])


class WriteShardFn(CountingFn):
    """((split, shard), copies) -> a shard file in shuffled order; yields its summary and (train) its token counts."""

    def __init__(self, *, output: str, meta: ShardMeta, row_group_rows: int, dtype: str) -> None:
        self.output, self.meta, self.row_group_rows, self.dtype = output.rstrip("/"), meta, row_group_rows, dtype

    def setup(self) -> None:
        self.counters = self.stage_counters("pack")

    def process(self, element, mixture: Mixture) -> Iterator:
        (split, index), values = element
        self.counters.start_clock()
        docs = sorted(v for v in values if v is not None)  # by order key: a deterministic shuffle
        parts = [np.frombuffer(tokens, dtype=self.dtype) for _, _, tokens in docs]
        stream = np.concatenate(parts) if parts else np.empty(0, self.dtype)  # pack() widens the rows to int32
        rows, tail = pack(stream, self.meta.seq_len)
        meta = dataclasses.replace(self.meta, split=split)
        write_rows(f"{self.output}/{split}/{shard_name(index, mixture.shards[split])}", rows, meta,
                   row_group_rows=self.row_group_rows)
        by_source: dict[str, int] = {}
        for (_, source, _), part in zip(docs, parts):
            by_source[source] = by_source.get(source, 0) + len(part)
            self.counters.count_in()
            self.counters.count_out()
        self.counters.count(f"rows.{split}", len(rows))
        self.counters.count(f"tail_tokens_dropped.{split}", tail)
        counts = np.bincount(rows[:, 1:].ravel(), minlength=self.meta.vocab_size) if split == "train" else None
        self.counters.stop_clock()
        yield {"split": split, "index": index, "documents": len(docs), "rows": len(rows), "stream_tokens": len(stream),
               "tail_tokens": tail, "source_tokens": by_source}
        if counts is not None:  # train only, targets only (row[1:]): the tokens a model is scored on
            yield TaggedOutput(COUNTS, counts)


class SumCountsFn(beam.CombineFn):
    """Element-wise sum of token-count vectors."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def create_accumulator(self) -> np.ndarray:
        return np.zeros(self.vocab_size, dtype=np.int64)

    def add_input(self, acc: np.ndarray, counts: np.ndarray) -> np.ndarray:
        acc += counts[: self.vocab_size]
        return acc

    def merge_accumulators(self, accs: Iterable[np.ndarray]) -> np.ndarray:
        return np.sum(list(accs), axis=0)

    def extract_output(self, acc: np.ndarray) -> np.ndarray:
        return acc


def manifest(summaries: list[dict], *, mixture: Mixture, weights: dict[str, float], available: dict,
             counts: np.ndarray, header: dict) -> dict:
    """manifest.json: what training needs to know, and how the realised mixture compares with the target."""
    summaries = sorted(summaries, key=lambda s: (s["split"], s["index"]))
    seq_len = header["seq_len"]
    splits = {}
    for split, n in mixture.shards.items():
        mine = [s for s in summaries if s["split"] == split]
        rows = sum(s["rows"] for s in mine)
        splits[split] = {"shards": n, "documents": sum(s["documents"] for s in mine), "rows": rows,
                         "tokens": rows * seq_len, "tail_tokens_dropped": sum(s["tail_tokens"] for s in mine)}
    taken = {name: {split: sum(s["source_tokens"].get(name, 0) for s in summaries if s["split"] == split)
                    for split in mixture.shards} for name in available}
    all_taken = sum(sum(t.values()) for t in taken.values()) or 1
    sources = {name: {"documents": docs, "tokens_available": tokens, "tokens_taken": sum(taken[name].values()),
                      "tokens_taken_by_split": taken[name], "repeats": mixture.rates.get(name),
                      "realised_repeats": sum(taken[name].values()) / tokens,
                      "target_weight": weights.get(name), "realised_weight": sum(taken[name].values()) / all_taken}
               for name, (docs, tokens) in sorted(available.items())}
    nats, bits = unigram_entropy(counts)
    return {**header, "sources": sources, "splits": splits,
            "tail_tokens_dropped": sum(s["tail_tokens_dropped"] for s in splits.values()),
            "unigram_entropy": {"split": "train", "nats_per_token": nats, "bits_per_token": bits,
                                "tokens_counted": int(counts.sum())},
            "shards": [{k: s[k] for k in ("split", "index", "documents", "rows", "tail_tokens")} for s in summaries],
            **({"error": mixture.error} if mixture.error else {})}


def write_manifest(summaries: list[dict], *, path: str, **kwargs) -> None:
    """The manifest as JSON next to the shards, written once every shard is."""
    with FileSystems.create(path) as fh:
        fh.write((json.dumps(manifest(summaries, **kwargs), indent=2) + "\n").encode("utf-8"))
