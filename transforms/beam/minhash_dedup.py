"""MinHash LSH dedup as a Beam computation: band keys -> candidate edges -> connected components -> losers.

Each document sends one small record per band (band key, order key); documents that share a band key are
candidates, linked by a star from the earliest member of the bucket (a star keeps the bucket connected with
n - 1 edges instead of n^2/2). Clusters are the connected components of those edges, computed with
Large-Star/Small-Star rounds in the shuffle; every member but the earliest (the component's root) is dropped.
"""
from __future__ import annotations

from typing import Iterator

import apache_beam as beam

from transforms.beam.components import ConnectedComponents
from transforms.dedup.minhash import MinHashConfig, MinHasher
from transforms.dedup.order import OrderBy, OrderKey, order_key
from transforms.document import Document

STAGE = "dedup_minhash"


class EmitBands(beam.DoFn):
    """Document -> (band key, order key) for each of its LSH bands."""

    def __init__(self, cfg: MinHashConfig, *, order_by: OrderBy) -> None:
        self.cfg, self.order_by = cfg, order_by

    def setup(self) -> None:
        self.hasher = MinHasher(self.cfg)

    def process(self, doc: Document) -> Iterator[tuple[bytes, OrderKey]]:
        key = order_key(doc.id, doc.warc_date, self.order_by)
        for band in self.hasher.band_keys(self.hasher.signature(doc.text)):
            yield band, key


def star_edges(kv: tuple[bytes, list[OrderKey]]) -> Iterator[tuple[OrderKey, OrderKey]]:
    """A bucket's members linked to its earliest one; two passes over the (re-iterable) group, no copy."""
    _, members = kv
    root = min(members)
    for member in members:
        if member != root:
            yield root, member


class MinHashLosers(beam.PTransform):
    """Documents -> (order key, kept order key) for every document with an earlier near-duplicate."""

    def __init__(self, cfg: MinHashConfig, *, order_by: OrderBy, rounds: int) -> None:
        super().__init__()
        self.cfg, self.order_by, self.rounds = cfg, order_by, rounds

    def expand(self, docs):
        return (docs
                | "Bands" >> beam.ParDo(EmitBands(self.cfg, order_by=self.order_by))
                | "GroupByBand" >> beam.GroupByKey()
                | "StarEdges" >> beam.FlatMap(star_edges)
                | "Components" >> ConnectedComponents(rounds=self.rounds, stage=STAGE)
                | "NotRoots" >> beam.Filter(lambda node_root: node_root[0] != node_root[1]))
