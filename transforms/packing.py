"""Token mixtures for pipelines.tokenize: the recipe, each source's sampling rate, and the seeded draws.

A mixture is set by tokens, not documents: with weights web 0.7 / code 0.2 / math 0.1 and a total of T tokens,
the code source contributes 0.2 T tokens, which is `rate` = 0.2 T / (its available tokens) copies of each of its
documents on average: floor(rate) copies always, one more when a seeded draw falls below frac(rate). Every draw
(copies, split, shard, order) is a hash of the document's text, the seed and a purpose, so the output does not
depend on file order, runner or parallelism, and the same text always lands in the same split.
"""
from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from core.config import from_mapping
from core.job_config import Loaded, load_job_config

MiB = 2**20
_HALF = 2**63


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceConfig:
    """One text source of the mixture: shards of one pipeline's output."""

    name: str  # a short label (web, code, math): counters, manifest.json and errors use it
    paths: tuple[str, ...]  # Parquet or JSONL globs, any Beam filesystem (e.g. output/werp/documents/*.parquet)
    weight: float = 1.0  # share of the output's tokens; weights are normalised to sum to 1
    text_column: str = "text"  # werp, swallowcode and swallowmath all write `text`

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "|/ "):
            raise ValueError(f"source name {self.name!r} must be non-empty, without '|', '/' or spaces")
        if not self.paths:
            raise ValueError(f"source {self.name!r}: paths is empty; give at least one Parquet or JSONL glob")
        if not self.weight > 0:
            raise ValueError(f"source {self.name!r}: weight ({self.weight}) must be > 0; drop the source instead")


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenizeConfig:
    """Text shards -> packed token shards (configs/tokenize/*.yaml)."""

    name: str = "custom"
    tokenizer: str | None = None  # tokenizer.json from python -m transforms.tokenizer train; --tokenizer overrides
    seq_len: int = 2048  # tokens per training sequence; rows hold seq_len + 1 (core.shards)
    sources: tuple[SourceConfig, ...] = ()
    total_tokens: int | None = None  # tokens to write over both splits; None = the most the sources allow
    max_repeats: float = 1.0  # epochs a source may be repeated to reach its weight (Muennighoff et al. 2023: <= 4)
    valid_fraction: float = 0.005  # share of documents held out, drawn per document text
    # Expected tokens per output file (documents are hash-assigned, so a file may run a few percent over); the
    # shard count follows from the total. A writer holds one shard: about 8 bytes per token (64 Mi: ~512 MiB).
    tokens_per_shard: int = 64 * MiB
    row_group_rows: int = 1024  # rows per Parquet row group: the reader's unit of random access
    max_document_bytes: int = 64 * MiB  # larger records are skipped and counted (input.too_large)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("sources is empty; list at least one {name, paths, weight} source")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names {names} repeat; give each source its own name")
        checks = [(self.seq_len >= 1, f"seq_len ({self.seq_len}) must be >= 1"),
                  (self.total_tokens is None or self.total_tokens > 0,
                   f"total_tokens ({self.total_tokens}) must be > 0, or null for as many as the sources allow"),
                  (self.max_repeats > 0, f"max_repeats ({self.max_repeats}) must be > 0"),
                  (0 <= self.valid_fraction < 1, f"valid_fraction ({self.valid_fraction}) must be in [0, 1)"),
                  (self.tokens_per_shard > self.seq_len,
                   f"tokens_per_shard ({self.tokens_per_shard}) must be > seq_len ({self.seq_len})"),
                  (self.row_group_rows >= 1, f"row_group_rows ({self.row_group_rows}) must be >= 1"),
                  (self.max_document_bytes >= 1, f"max_document_bytes ({self.max_document_bytes}) must be >= 1"),
                  (self.seed >= 0, f"seed ({self.seed}) must be >= 0")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def weights(self) -> dict[str, float]:
        """Normalised target weights by source name."""
        total = sum(s.weight for s in self.sources)
        return {s.name: s.weight / total for s in self.sources}


def load_tokenize_config(name_or_path: str, overrides: Sequence[str] = (),
                         flags: Mapping[str, Mapping[str, Any]] | None = None
                         ) -> Loaded[TokenizeConfig]:
    """A shipped config by name (configs/tokenize/<name>.yaml) or any YAML path, then key=value overrides, then the
    flags' keys, validated."""
    return load_job_config(name_or_path, folder="tokenize", what="tokenize config", overrides=overrides, flags=flags,
                           build=lambda data, where: from_mapping(TokenizeConfig, data, where=where))


@dataclass(frozen=True, slots=True)
class Mixture:
    """The plan made from the available tokens: copies per document of each source, and shards per split."""

    rates: dict[str, float] = field(default_factory=dict)  # expected copies of each document, by source
    targets: dict[str, float] = field(default_factory=dict)  # planned tokens by source
    shards: dict[str, int] = field(default_factory=dict)  # output files by split
    error: str = ""  # why no plan fits; nothing is written and the job fails with this message


def _snap(rate: float) -> float:
    """Floating-point noise off whole rates, so `total: null` with max_repeats 1 keeps every document exactly once."""
    nearest = round(rate)
    return float(nearest) if abs(rate - nearest) < 1e-9 else rate


def plan_mixture(available: Mapping[str, int], cfg: TokenizeConfig) -> Mixture:
    """Rates that give each source its weight of the total tokens, within max_repeats epochs."""
    weights = cfg.weights
    empty = [n for n in weights if available.get(n, 0) <= 0]
    if empty:
        return Mixture(error=f"source(s) {', '.join(map(repr, empty))} produced no tokens; check their paths and "
                             "text_column (the read and tokenize stages of stats.json count what was skipped)")
    total = cfg.total_tokens
    if total is None:  # the largest total that keeps every source within max_repeats
        total = min(cfg.max_repeats * available[n] / w for n, w in weights.items())
    targets = {n: total * w for n, w in weights.items()}
    rates = {n: _snap(targets[n] / available[n]) for n in weights}
    over = [n for n in weights if rates[n] > cfg.max_repeats * (1 + 1e-9)]
    if over:
        detail = "; ".join(f"source {n!r} needs {rates[n]:.2f} epochs ({targets[n]:,.0f} tokens = weight "
                           f"{weights[n]:.3f} x total_tokens {total:,}, {available[n]:,} available)" for n in over)
        return Mixture(rates=rates, targets=targets, error=f"{detail}, but max_repeats is {cfg.max_repeats}; raise "
                       "max_repeats, lower total_tokens or that source's weight, or add data to it")
    split_tokens = {"train": total * (1 - cfg.valid_fraction), "valid": total * cfg.valid_fraction}
    shards = {s: max(1, math.ceil(t / cfg.tokens_per_shard)) if t > 0 else 0 for s, t in split_tokens.items()}
    return Mixture(rates=rates, targets=targets, shards=shards)


def doc_key(text: str) -> int:
    """A 63-bit key of the text: copies of one text share their split, whichever file or source they come from.
    Raises UnicodeEncodeError for text that is not valid Unicode (a lone surrogate)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def draw(key: int, *, seed: int, purpose: bytes, index: int = 0) -> int:
    """A 63-bit seeded hash of (document, purpose, copy index); independent across purposes."""
    digest = hashlib.blake2b(struct.pack("<qqq", key, seed, index), digest_size=8, person=purpose).digest()
    return int.from_bytes(digest, "big") >> 1


def copies(key: int, rate: float, *, seed: int) -> int:
    """floor(rate) copies, plus one when the document's draw falls below frac(rate): rate copies on average."""
    whole = math.floor(rate)
    return whole + (draw(key, seed=seed, purpose=b"copy", index=whole) / _HALF < rate - whole)


def split_of(key: int, *, valid_fraction: float, seed: int) -> str:
    """The split of a document (every copy of it): a seeded draw, so no text is in both."""
    return "valid" if draw(key, seed=seed, purpose=b"split") / _HALF < valid_fraction else "train"


def placement(key: int, copy: int, *, shards: int, seed: int) -> tuple[int, int]:
    """(shard index, order key) of one copy: its file, and its place in that file's shuffled order."""
    return draw(key, seed=seed, purpose=b"shard", index=copy) % shards, draw(key, seed=seed, purpose=b"order",
                                                                               index=copy)


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest dtype that holds every id: documents travel through the shuffle as these bytes."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.int32)


def unigram_entropy(counts: np.ndarray) -> tuple[float, float]:
    """(nats, bits) per token of the count distribution: the loss of the best context-free model."""
    total = counts.sum()
    if total == 0:
        return 0.0, 0.0
    p = counts[counts > 0] / total
    nats = float(-(p * np.log(p)).sum())
    return nats, nats / math.log(2)
