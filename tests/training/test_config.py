"""Run configs, overrides, the LR schedule and the tokens-per-step arithmetic."""
from __future__ import annotations

import math

import pytest

from training.config import OptimSection, load_config
from training.optim import lr_at, param_groups
from training.model import Llama, ModelConfig
from training.trainers.baseline import accumulation_steps
from transforms.config import ConfigError


def test_shipped_configs_load_and_overrides_apply():
    cfg = load_config("tiny", ["train.steps=7", "optim.lr=0.01", "model.n_kv_heads=null", "output=/tmp/x"])
    assert (cfg.train.steps, cfg.optim.lr, cfg.model.n_kv_heads, cfg.output) == (7, 0.01, None, "/tmp/x")
    for name in ("150m", "400m", "1b"):
        assert load_config(name).train.tokens_per_step == 2**20


def test_typos_fail_with_the_valid_keys():
    with pytest.raises(ConfigError, match="valid keys"):
        load_config("tiny", ["train.stepz=3"])
    with pytest.raises(ConfigError, match="expected int"):
        load_config("tiny", ["train.steps=many"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config("tiny", ["train.steps"])
    with pytest.raises(ConfigError, match="unknown training config"):
        load_config("no-such-config")


def test_lr_warmup_then_cosine_to_the_floor():
    cfg = OptimSection(lr=1.0, min_lr_ratio=0.1, warmup_steps=10)
    lrs = [lr_at(s, cfg, total_steps=110) for s in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(10_000, cfg, total_steps=110) == pytest.approx(0.1)


def test_accumulation_keeps_tokens_per_step_fixed():
    assert accumulation_steps(tokens_per_step=None, micro_batch_size=4, seq_len=128, world=2) == 1
    assert accumulation_steps(tokens_per_step=4096, micro_batch_size=4, seq_len=128, world=2) == 4
    with pytest.raises(ValueError, match="multiple"):
        accumulation_steps(tokens_per_step=5000, micro_batch_size=4, seq_len=128, world=2)


def test_weight_decay_only_on_matrices():
    model = Llama(ModelConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, ffn_dim=32, max_seq_len=8,
                              tie_embeddings=True))
    decay, no_decay = param_groups(model, 0.1)
    assert all(p.ndim == 2 for p in decay["params"]) and decay["weight_decay"] == 0.1
    assert model.embed.weight in no_decay["params"]  # tied: counted once, not decayed
    n = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert n == sum(p.numel() for p in model.parameters())


def test_help_explains_every_config_key():
    from training.config import describe_keys

    lines = [ln.strip() for ln in describe_keys().splitlines()]
    undocumented = [ln for ln in lines if len(ln.split("  ", 1)) < 2]  # "key=default  explanation"
    assert len(lines) > 40 and not undocumented, undocumented
    assert "train.tokens_per_step=None  Global tokens per optimizer step" in "\n".join(lines)
