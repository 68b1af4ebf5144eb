"""training/parallel/partition.py's Layout is a value (issue 16, full mutation run by helper E): a layout made
once is shared by every rank's stage builder and compared across runs, so it must not change after it is made."""
from __future__ import annotations

import dataclasses

import pytest

from training.model import ModelConfig
from training.parallel.partition import balanced_layout

SMALL = dict(vocab_size=64, dim=16, n_heads=2, n_kv_heads=1, ffn_dim=32, max_seq_len=16)


def test_a_layout_is_frozen_and_hashable():
    layout = balanced_layout(ModelConfig(n_layers=2, **SMALL), 2, seq_len=16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        layout.stages = ((),)
    twin = dataclasses.replace(layout)
    assert twin == layout and len({layout, twin}) == 1
