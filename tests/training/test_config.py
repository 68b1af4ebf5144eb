"""Run configs, overrides, the LR schedule and the tokens-per-step arithmetic."""
from __future__ import annotations

import math

import pytest

from core.config import ConfigError
from training.config import OptimSection, load_config
from training.model import Llama, ModelConfig
from training.optim import lr_at, param_groups
from training.trainers.baseline import accumulation_steps


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
    from training.config import RunConfig
    from training.config_cli import describe_keys

    lines = [ln.strip() for ln in describe_keys(RunConfig).splitlines()]
    undocumented = [ln for ln in lines if len(ln.split("  ", 1)) < 2]  # "key=default  explanation"
    assert len(lines) > 40 and not undocumented, undocumented
    assert "train.tokens_per_step=None  Global tokens per optimizer step" in "\n".join(lines)


# Each range check at its boundary: (key, the last value allowed, the first value refused), lower and upper bounds.
BOUNDS = [
    ("model.dim", 2, 0), ("model.n_layers", 1, 0), ("model.n_heads", 1, 0), ("model.n_kv_heads", 1, 0),
    ("model.ffn_dim", 1, 0), ("model.multiple_of", 1, 0), ("model.vocab_size", 2, 1), ("model.max_seq_len", 1, 0),
    ("model.norm_eps", 1e-300, 0.0), ("model.rope_theta", 1e-300, 0.0), ("model.init_std", 1e-300, 0.0),
    ("model.dropout", 0.0, -1e-9), ("model.dropout", 0.999, 1.0),
    ("data.num_workers", 0, -1), ("data.seed", 0, -1), ("data.holdout_shards", 1, 0),
    ("optim.lr", 1e-300, 0.0), ("optim.eps", 1e-300, 0.0), ("optim.min_lr_ratio", 0.0, -1e-9),
    ("optim.min_lr_ratio", 1.0, 1.000001), ("optim.warmup_steps", 0, -10), ("optim.decay_steps", 1, 0),
    ("optim.beta1", 0.0, -1e-9), ("optim.beta1", 0.999999, 1.0), ("optim.beta2", 0.0, -1e-9),
    ("optim.beta2", 0.999999, 1.0), ("optim.weight_decay", 0.0, -1e-9), ("optim.grad_clip", 0.0, -1e-9),
    ("train.steps", 1, 0), ("train.micro_batch_size", 1, 0), ("train.tokens_per_step", 1, 0),
    ("train.stop_after", 1, 0), ("train.threads", 1, 0), ("train.max_skipped", 0, -1),
    ("train.peak_tflops", 1e-300, 0.0), ("train.seed", 0, -1), ("train.seed", 2**32 - 1, 2**32),
    ("streambp.chunk", 1, 0), ("streambp.logits_chunk", 1, 0),
    ("pipeline.microbatches", 1, 0), ("pipeline.stages_per_rank", 1, 0), ("pipeline.dp", 1, 0),
    ("pipeline.skip_stages", 1, 0), ("pipeline.skip", 0.0, -1e-9), ("pipeline.skip", 0.999, 1.0),
    ("pipeline.trace_steps", [1], [0]),
    ("local.blocks", 1, 0), ("local.aux_depth", 1, 0),
    ("eval.every", 0, -5), ("eval.batches", 0, -1),
    ("checkpoint.every", 0, -1), ("checkpoint.keep", 0, -1),
    ("log.every", 1, 0),
]


@pytest.mark.parametrize("key,good,bad", BOUNDS, ids=[f"{k}={b}" for k, _, b in BOUNDS])
def test_every_setting_is_range_checked_at_its_boundary(key, good, bad):
    section, name = key.split(".")
    shape = ["model.dim=2", "model.n_heads=1"] if section == "model" else []  # a shape the boundary values fit
    cfg = load_config(None, [*shape, f"{key}={good}"])
    assert getattr(getattr(cfg, section), name) == (tuple(good) if isinstance(good, list) else good)
    with pytest.raises(ConfigError) as err:
        load_config(None, [*shape, f"{key}={bad}"])
    message = str(err.value)
    shown = repr(bad[0] if isinstance(bad, list) else bad)
    assert "\n" not in message and f": {section}: " in message and f" = {shown} is out of range" in message
    assert name in message and "allowed: " in message


def float_fields() -> list[tuple[type, str]]:
    import dataclasses
    import typing

    from training import config

    sections = [h for h in typing.get_type_hints(config.RunConfig).values() if dataclasses.is_dataclass(h)]
    return [(cls, name) for cls in sections for name, hint in typing.get_type_hints(cls).items()
            if hint is float or float in typing.get_args(hint)]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_no_float_setting_accepts_nan_or_inf_even_when_built_in_code(value):
    """The YAML loader refuses .nan/.inf; the sections refuse them too, for configs built in Python."""
    fields = float_fields()
    assert len(fields) == 13, fields  # model 4, optim 7, train.peak_tflops, pipeline.skip
    for cls, name in fields:
        shape = {"dim": 2, "n_heads": 1} if name in ("norm_eps", "rope_theta", "init_std", "dropout") else {}
        with pytest.raises(ValueError, match=rf"{name} = -?(nan|inf) is out of range"):
            cls(**shape, **{name: value})
