"""components_by_stars at the max_rounds boundary, on graphs small enough to run by hand (issue 16 survivors)."""
from __future__ import annotations

import pytest

from transforms.dedup.components import components_by_stars


def test_one_edge_is_already_a_star_and_needs_zero_round_pairs() -> None:
    # node 1: its only neighbour 2 is larger -> a centre; node 2: one smaller neighbour 1 -> its leaf
    assert components_by_stars([(1, 2)], max_rounds=0) == ({1: 1, 2: 1}, 0)


def test_a_three_node_path_needs_exactly_one_round_pair() -> None:
    # 1-2-3: node 2 has two different neighbours (1 and 3), so it is not a star yet. Large-Star gives
    # {(2, 1), (3, 1)}, Small-Star keeps them, and then 1 is the centre of 2 and 3.
    assert components_by_stars([(1, 2), (2, 3)], max_rounds=1) == ({1: 1, 2: 1, 3: 1}, 1)
    with pytest.raises(ValueError, match=r"max_rounds \(0\)"):
        components_by_stars([(1, 2), (2, 3)], max_rounds=0)
