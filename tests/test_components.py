"""Connected components: the star steps by hand, the in-memory plan against union-find, and the Beam transform."""
from __future__ import annotations

import random

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from pipelines.jobs import collect_counters
from transforms.beam.components import DEFAULT_ROUNDS, ConnectedComponents
from transforms.dedup.components import (
    components_by_stars, components_reference, large_star, small_star, star_parent,
)

RESIDUAL = "dedup_minhash|cc_residual_edges"


def random_graph(seed: int, *, nodes: int = 300, edges: int = 220) -> list[tuple]:
    """A sparse graph of (date_seconds, digest63) nodes: many small trees and a few larger components."""
    rng = random.Random(seed)
    ids = [(rng.randrange(1_600_000_000, 1_700_000_000), rng.getrandbits(63)) for _ in range(nodes)]
    return [tuple(rng.sample(ids, 2)) for _ in range(edges)]


def ascending_path(n: int) -> list[tuple]:
    """Versions of one page, each a near-duplicate of the next, dated in order: the slowest shape measured."""
    return [((i, 7), (i + 1, 7)) for i in range(n - 1)]


def run(edges: list[tuple], *, rounds: int = DEFAULT_ROUNDS, extra_args: tuple = ()) -> dict[str, int]:
    """Run ConnectedComponents, assert it equals union-find (each node once), return the refinery counters."""
    expected = sorted(components_reference(edges).items())
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner", *extra_args])) as p:
        roots = p | beam.Create(edges) | ConnectedComponents(rounds=rounds)
        assert_that(roots, equal_to(expected))
    return collect_counters(p.result)  # summed over steps: a round's two steps share one counter


def test_large_star_hangs_larger_neighbours_on_the_least_node():
    assert sorted(large_star(5, [7, 3, 9, 3, 4, 7])) == [(7, 3), (9, 3)]
    assert sorted(large_star(2, [4, 6])) == [(4, 2), (6, 2)]
    assert list(large_star(9, [1, 2])) == []


def test_small_star_hangs_smaller_neighbours_and_the_node_on_the_least():
    assert sorted(small_star(5, [3, 1, 3, 4])) == [(3, 1), (4, 1), (5, 1)]
    assert sorted(small_star(5, [2])) == [(5, 2)]
    assert list(small_star(1, [5, 6])) == []


def test_star_parent_accepts_only_centres_and_their_leaves():
    assert star_parent(1, [4, 2, 4]) == 1
    assert star_parent(4, [1, 1]) == 1
    assert star_parent(4, [1, 2]) is None
    assert star_parent(4, [1, 9]) is None


def test_reference_roots_every_component_at_its_minimum():
    edges = [(5, 3), (3, 8), (9, 10), (2, 7), (7, 5)]
    assert components_reference(edges) == {2: 2, 3: 2, 5: 2, 7: 2, 8: 2, 9: 9, 10: 9}


@pytest.mark.parametrize("seed", range(5))
def test_star_rounds_equal_union_find(seed):
    edges = random_graph(seed, nodes=2000, edges=1500)
    roots, rounds = components_by_stars(edges)
    assert roots == components_reference(edges) and 1 <= rounds <= DEFAULT_ROUNDS


def test_star_rounds_on_a_path_grow_like_log2():
    assert [components_by_stars(ascending_path(n))[1] for n in (2, 10, 100, 200, 1000)] == [0, 4, 7, 8, 10]
    with pytest.raises(ValueError, match="raise max_rounds"):
        components_by_stars(ascending_path(1000), max_rounds=9)


def test_rounds_must_not_be_negative():
    with pytest.raises(ValueError, match=r"rounds \(-1\)"):
        ConnectedComponents(rounds=-1)


@pytest.mark.slow
def test_random_graphs_match_union_find_without_a_residual():
    edges = [e for seed in range(3) for e in random_graph(seed)]
    counts = run(edges)
    assert counts.get(RESIDUAL, 0) == 0
    assert counts["dedup_minhash|cc_round_1|changed"] > 0


@pytest.mark.slow
def test_shuffled_duplicated_and_reversed_edges_give_the_same_roots():
    edges = random_graph(7) + ascending_path(40)
    messy = edges + [(v, u) for u, v in edges] + edges[::3]
    random.Random(1).shuffle(messy)
    run(messy)


@pytest.mark.slow
@pytest.mark.parametrize("rounds", [0, 3])
def test_a_long_chain_is_finished_exactly_by_the_residual(rounds, caplog):
    counts = run(ascending_path(200), rounds=rounds)
    assert counts[RESIDUAL] > 0
    assert "Raise dedup.minhash_rounds in the recipe" in caplog.text


@pytest.mark.slow
def test_a_long_chain_converges_within_the_default_rounds():
    assert run(ascending_path(200)).get(RESIDUAL, 0) == 0
    counts = run(ascending_path(200), rounds=DEFAULT_ROUNDS + 1)
    assert counts[f"dedup_minhash|cc_round_{DEFAULT_ROUNDS}|changed"] > 0
    assert counts[f"dedup_minhash|cc_round_{DEFAULT_ROUNDS + 1}|changed"] == 0


@pytest.mark.slow
def test_two_worker_processes_give_the_same_roots():
    edges = random_graph(11) + ascending_path(300)
    counts = run(edges, rounds=4, extra_args=("--direct_num_workers=2", "--direct_running_mode=multi_processing"))
    assert counts[RESIDUAL] > 0
