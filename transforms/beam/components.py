"""Connected components of the candidate graph in Beam: unrolled Large-/Small-Star rounds, then a residual check.

A Beam graph is static, so `rounds` round pairs are unrolled; each step is one GroupByKey over the edge list,
and its per-key work is proportional to the node's degree (no DoFn holds state across keys). After the last
round every node checks that it is a star centre or a leaf of one (transforms.dedup.components.star_parent);
the few that are not ship their edges to one key, where union-find finishes them. A normal run ships nothing,
and the answer stays exact when the rounds were too few.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator

import apache_beam as beam
from apache_beam.pvalue import AsDict, TaggedOutput

from transforms import stats
from transforms.beam.metrics import Counted, CountingFn
from transforms.dedup.components import Edge, Node, components_reference, large_star, small_star, star_parent

STAGE = "dedup_minhash"
# Round pairs unrolled. Measured with components_by_stars: LSH-like cluster graphs converge in 1-2, sparse
# random graphs (10k nodes) in 4-7, a chain of k page versions with rising dates in about log2(k) + 1 (100 -> 7,
# 256 -> 8, 1000 -> 10). 8 covers a chain through every Common Crawl snapshot; longer ones go to the residual.
DEFAULT_ROUNDS = 8
RESIDUAL = "residual"
RESIDUAL_EDGES = "cc_residual_edges"


def _both_ways(edge: Edge) -> Iterator[Edge]:
    u, v = edge
    yield u, v
    yield v, u


def _under_larger(edge: Edge) -> Edge:
    u, v = edge
    return (u, v) if u > v else (v, u)


class StarFn(CountingFn):
    """One Large- or Small-Star reducer; counts the edges it rewired, so a user can watch the rounds converge."""

    def __init__(self, *, star: Callable[[Node, Iterable[Node]], Iterable[Edge]], stage: str, counter: str) -> None:
        self.star, self.stage, self.counter = star, stage, counter

    def setup(self) -> None:
        self.counters = self.stage_counters(self.stage)

    def process(self, keyed) -> Iterator[Edge]:
        node, neighbours = keyed
        changed = 0
        for edge in self.star(node, neighbours):
            changed += node not in edge  # an edge that kept its key node is one the step did not move
            yield edge
        self.counters.count(self.counter, changed)  # zeros too: a round that reports 0 is a round after convergence


class StarStep(beam.PTransform):
    """Edges -> edges: key by node (both ways for Large-Star, under the larger end for Small-Star), group, reduce."""

    def __init__(self, *, large: bool, stage: str, counter: str) -> None:
        super().__init__()
        self.large, self.stage, self.counter = large, stage, counter

    def expand(self, edges):
        keyed = (edges | "BothWays" >> beam.FlatMap(_both_ways) if self.large
                 else edges | "UnderLarger" >> beam.Map(_under_larger))
        star = large_star if self.large else small_star
        return (keyed
                | "Group" >> beam.GroupByKey()
                | "Reduce" >> Counted(StarFn(star=star, stage=self.stage, counter=self.counter)))


class CheckStarFn(CountingFn):
    """(node, parent) for star centres and leaves; a node that is neither keeps itself and ships its edges."""

    def __init__(self, *, stage: str) -> None:
        self.stage = stage

    def setup(self) -> None:
        self.counters = self.stage_counters(self.stage)

    def process(self, keyed) -> Iterator:
        node, neighbours = keyed
        parent = star_parent(node, neighbours)
        if parent is None:
            shipped = 0
            for v in neighbours:  # a second pass: Beam's grouped values can be iterated again
                shipped += 1
                yield TaggedOutput(RESIDUAL, (node, v))
            self.counters.count(RESIDUAL_EDGES, shipped)
        yield (node, node if parent is None else parent)


class FinishResidualFn(beam.DoFn):
    """Union-find over every edge that did not converge, on one key: exact, and normally never called."""

    def __init__(self, *, stage: str, rounds: int) -> None:
        self.stage, self.rounds = stage, rounds

    def process(self, keyed) -> Iterator[tuple[Node, Node]]:
        _, edges = keyed
        roots = components_reference(edges)
        logging.getLogger("refinery").warning(
            "%s: %d nodes of the candidate graph were not stars after %d Large-/Small-Star rounds; finished them "
            "on one worker. Raise dedup.minhash_rounds in the recipe.", self.stage, len(roots),
            self.rounds)
        yield from roots.items()


def _relabel(pair: tuple[Node, Node], roots: dict[Node, Node]) -> tuple[Node, Node]:
    node, parent = pair
    return node, roots.get(parent, parent)


class ConnectedComponents(beam.PTransform):
    """Edges (u, v), u != v -> (node, root) for every node, root = the minimum node of its component."""

    def __init__(self, *, rounds: int = DEFAULT_ROUNDS, stage: str = STAGE) -> None:
        super().__init__()
        if rounds < 0:
            raise ValueError(f"rounds ({rounds}) must be >= 0; the default is {DEFAULT_ROUNDS}")
        self.rounds, self.stage = rounds, stage

    def expand(self, edges):
        for r in range(1, self.rounds + 1):
            counter = f"cc_round_{r}{stats.SEP}changed"  # <stage>|cc_round_<r>|changed
            edges = (edges
                     | f"LargeStar{r}" >> StarStep(large=True, stage=self.stage, counter=counter)
                     | f"SmallStar{r}" >> StarStep(large=False, stage=self.stage, counter=counter))
        checked = (edges
                   | "CheckBothWays" >> beam.FlatMap(_both_ways)
                   | "CheckGroup" >> beam.GroupByKey()
                   | "Check" >> Counted(CheckStarFn(stage=self.stage), tags=(RESIDUAL,)))
        parents, residual = checked
        residual_roots = (residual
                          | "OneKey" >> beam.WithKeys(0)
                          | "GatherResidual" >> beam.GroupByKey()
                          | "FinishResidual" >> beam.ParDo(FinishResidualFn(stage=self.stage, rounds=self.rounds)))
        return parents | "Relabel" >> beam.Map(_relabel, roots=AsDict(residual_roots))
