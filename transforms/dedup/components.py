"""Connected components of the LSH candidate graph by alternating Large-Star / Small-Star (issue #3 item 2).

Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014), section 3: each step looks at one
node and its neighbours only, so a distributed runner does it as one shuffle keyed by node, and the graph ends
as one star per component, centred on its minimum node. The root of a component is its minimum: the same
survivor whatever the runner, the worker count or the input order. Pure functions; the Beam shell is
transforms/beam/components.py.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable, Iterator

Node = Any  # hashable and totally ordered; in dedup a (date_seconds, id_digest63) tuple
Edge = tuple[Node, Node]


def large_star(node: Node, neighbours: Iterable[Node]) -> Iterator[Edge]:
    """Hang every larger neighbour on the smallest node seen here (the paper's Large-Star reducer)."""
    larger, least = set(), node
    for v in neighbours:
        if v > node:
            larger.add(v)
        elif v < least:
            least = v
    return ((v, least) for v in larger)


def small_star(node: Node, neighbours: Iterable[Node]) -> Iterator[Edge]:
    """Hang the node and its smaller neighbours on the smallest of them (the paper's Small-Star reducer)."""
    smaller = {v for v in neighbours if v < node}
    if not smaller:
        return iter(())
    least = min(smaller)
    return ((v, least) for v in (*smaller, node) if v != least)


def star_parent(node: Node, neighbours: Iterable[Node]) -> Node | None:
    """The node itself if all neighbours are larger, its one smaller neighbour, else None (not yet a star)."""
    first, least, several = None, None, False
    for v in neighbours:
        if first is None:
            first = least = v
        else:
            several = several or v != first
            least = min(least, v)
    if least is None or least > node:
        return node
    return None if several else least


def adjacency(edges: Iterable[Edge], *, both_ways: bool) -> dict[Node, list[Node]]:
    """Neighbours per node, as the shuffle groups them: both ways, or only under the larger end."""
    groups: dict[Node, list[Node]] = defaultdict(list)
    for u, v in edges:
        hi, lo = (u, v) if u > v else (v, u)
        groups[hi].append(lo)
        if both_ways:
            groups[lo].append(hi)
    return groups


def star_step(edges: Iterable[Edge], star: Callable[[Node, Iterable[Node]], Iterable[Edge]], *,
              both_ways: bool) -> set[Edge]:
    """One Large-Star (both_ways) or Small-Star step over a whole edge list, deduplicated like a reducer's set."""
    groups = adjacency(edges, both_ways=both_ways)
    return {edge for node, neighbours in groups.items() for edge in star(node, neighbours)}


def star_parents(edges: Iterable[Edge]) -> dict[Node, Node | None]:
    """star_parent of every node: the convergence check the Beam transform runs after its last round."""
    return {node: star_parent(node, nbrs) for node, nbrs in adjacency(edges, both_ways=True).items()}


def components_by_stars(edges: Iterable[Edge], *, max_rounds: int = 64) -> tuple[dict[Node, Node], int]:
    """(node -> root, round pairs needed): the Beam plan run in memory, to test it and to size its rounds."""
    current = set(edges)
    for done in range(max_rounds + 1):
        parents = star_parents(current)
        if all(p is not None for p in parents.values()):
            return parents, done
        current = star_step(star_step(current, large_star, both_ways=True), small_star, both_ways=False)
    raise ValueError(f"not converged after max_rounds ({max_rounds}) round pairs; raise max_rounds")


def components_reference(edges: Iterable[Edge]) -> dict[Node, Node]:
    """Union-find with the minimum as root: the test oracle, and how the Beam transform finishes a residual."""
    parent: dict[Node, Node] = {}

    def find(x: Node) -> Node:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for u, v in edges:
        parent.setdefault(u, u)
        parent.setdefault(v, v)
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)
    return {node: find(node) for node in parent}
