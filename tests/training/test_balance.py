"""training/parallel/balance.py against hand counts: per-rank parameters, forward FLOPs per token and the
activation estimate (Korthikanti et al.'s 34·d + 5·a·T bytes per token and layer at 16-bit), and the --dry-run
table of a pipeline run."""
from __future__ import annotations

import pytest

from tests.training.test_trainer import shards  # noqa: F401 - the shards fixture
from training.model import ModelConfig
from training.parallel.balance import rank_loads, spread
from training.parallel.partition import explicit_layout
from training.pretrain import main

CFG = ModelConfig(vocab_size=1000, dim=8, n_layers=2, n_heads=2, ffn_dim=16, max_seq_len=4)
# one block: q, k, v, o (4 x 8 x 8) + gate, up, down (3 x 8 x 16) + two norms (2 x 8) = 656 parameters
# its forward FLOPs per token: 2 x 640 matmul parameters + 4 x T x d = 1280 + 128 = 1408 (T = 4)
# head: 2 x d x V + 5 x V = 21000; embedding: d = 8; norm: 4 x d = 32


def test_vocabulary_parallel_ranks_by_hand():
    layout = explicit_layout(CFG, [["layers.0"], ["layers.1", "norm"]], seq_len=4, vocab_parallel=True)
    loads = rank_loads(CFG, layout, [[0], [1]], seq_len=4, rows=1, in_flight={0: 2, 1: 1}, vocab_parallel=True,
                       held_logits=1)
    # each rank: 500 rows of the embedding and of the head, 2 x 500 x 8 = 8000 parameters
    assert [x.params for x in loads] == [656 + 8000, 656 + 8 + 8000]
    # each rank: half of (21000 + 8) = 10504 on top of its blocks
    assert [x.flops_per_token for x in loads] == [1408 + 10504, 1408 + 32 + 10504]
    # a block's activations per token: (34 x 8 + 5 x 2 x 4) x 4 / 2 = 624 bytes; 4 tokens per microbatch;
    # one held logits shard: 4 tokens x 500 rows x 4 bytes = 8000
    assert [x.activation_bytes for x in loads] == [2 * 4 * 624 + 8000, 1 * 4 * 624 + 8000]


def test_end_stages_carry_the_vocabulary_without_it():
    layout = explicit_layout(CFG, [["embed", "layers.0"], ["layers.1", "norm", "head"]], seq_len=4)
    loads = rank_loads(CFG, layout, [[0], [1]], seq_len=4, rows=1, in_flight={0: 2, 1: 1}, vocab_parallel=False)
    assert [x.params for x in loads] == [8000 + 656, 656 + 8 + 8000]
    assert [x.flops_per_token for x in loads] == [8 + 1408, 1408 + 32 + 21000]
    # the last stage also holds its microbatch's fp32 logits and their gradient: 4 x 1000 x 4 x 2 = 32000
    assert [x.activation_bytes for x in loads] == [2 * 4 * 624, 4 * 624 + 32000]
    assert spread([x.flops_per_token for x in loads]) == pytest.approx(22440 / 1416)


def test_dry_run_prints_each_ranks_share(shards, capsys):  # noqa: F811
    status = main(["--config", "tiny-pipeline", f"data.path={shards}", "pipeline.vocab_parallel=true",
                   "model.vocab_size=4000", "--dry-run", "--ranks", "2"])
    out = capsys.readouterr().out
    assert status == 0
    assert "pipeline balance (1f1b, 2 ranks" in out and "Vocab-1" in out
    table = out[out.index("pipeline balance"):].splitlines()
    assert [line.split()[0] for line in table[2:4]] == ["0", "1"]
    assert "max/min: params 1.00, FLOPs 1.00" in table[4]
