"""Which dedup stages run and how "earlier" is decided; one section of the web recipe."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from transforms.dedup.minhash import MinHashConfig
from transforms.dedup.order import OrderBy
from transforms.dedup.paragraph import ParagraphDedupConfig


@dataclass(frozen=True, kw_only=True, slots=True)
class DedupConfig:
    """Stages run in this order: exact, MinHash, paragraph; each keeps the earliest copy by `order_by`."""

    order_by: OrderBy = "warc_date"  # earlier = older WARC-Date, ties by record id; "id" ignores dates
    exact: bool = True  # drop documents whose normalised text an earlier document has
    minhash: MinHashConfig | None = None  # near-duplicate documents (FineWeb); null switches it off
    # Large-Star/Small-Star round pairs before the (normally empty) residual is finished on one worker: 8 cover
    # chains of ~256 page versions and every random graph measured (transforms/beam/components.py).
    minhash_rounds: int = 8
    # Link a candidate pair only if their signatures agree on at least this fraction of slots (an unbiased
    # Jaccard estimate). 14 x 8 bands alone make a pair at Jaccard 0.5 a candidate 5% of the time, at 0.6 21%;
    # 0.7 removes those while pairs at >= 0.85 still pass (>99.9%). 0 links every candidate, as FineWeb did.
    minhash_verify: float = 0.7
    paragraph: ParagraphDedupConfig | None = None  # BFF old-both paragraph n-gram dedup (Blu-WERP, DCLM)
    # How paragraph dedup's n-gram occurrences (32 bytes each, ~ one per token) reach their bucket: "shuffle"
    # (the runner's; cluster runners keep it on disk), "files" (written under the output's _spill/, only paths
    # shuffled: flat memory on the local runner, which holds shuffles in memory) or "auto" (files on the local
    # runner, shuffle elsewhere).
    ngram_exchange: Literal["auto", "shuffle", "files"] = "auto"
    # Buckets of that exchange, 2^bits; one bucket meets on one worker: 12 bits keep a bucket under ~500 MiB up to
    # ~1e8 documents, use 16 for ~1e9. With files there is one file per batch and bucket, so keep it small there.
    bucket_bits: int = 12
    # Documents wait in Parquet files split into this many partitions while decisions are computed; one worker
    # joins one partition, holding its decisions (~50 bytes per affected document) in memory.
    join_partitions: int = 64

    def __post_init__(self) -> None:
        if self.order_by not in ("warc_date", "id"):
            raise ValueError(f"order_by {self.order_by!r}: choose 'warc_date' (then id) or 'id'")
        if self.minhash_rounds < 1:
            raise ValueError(f"minhash_rounds ({self.minhash_rounds}) must be >= 1")
        if not 0.0 <= self.minhash_verify <= 1.0:
            raise ValueError(f"minhash_verify ({self.minhash_verify}) must be within [0, 1]; 0 turns it off")
        if self.join_partitions < 1:
            raise ValueError(f"join_partitions ({self.join_partitions}) must be >= 1")
        if not 1 <= self.bucket_bits <= 24:
            raise ValueError(f"bucket_bits ({self.bucket_bits}) must be within [1, 24]")

    @property
    def any(self) -> bool:
        """Whether a dedup stage runs at all (and documents need spilling)."""
        return self.exact or self.minhash is not None or self.paragraph is not None

    @property
    def stages(self) -> list[str]:
        """Stage names in the stats report, in the order they are applied."""
        return [name for name, on in (("dedup_exact", self.exact), ("dedup_minhash", self.minhash is not None),
                                      ("dedup_paragraph", self.paragraph is not None)) if on]
