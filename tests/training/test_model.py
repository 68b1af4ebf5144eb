"""The decoder: shapes, causality, grouped-query attention, sizes of the shipped configs, the cut-friendly layout."""
from __future__ import annotations

import copy

import pytest
import torch

from core.config import ConfigError
from training.config import load_config
from training.model import Llama, ModelConfig, flops_per_token, next_token_loss, param_count
from training.pretrain import build_model_config


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=97, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48, max_seq_len=64)
    return ModelConfig(**{**base, **kw})


def test_logits_shape_and_finite_loss():
    torch.manual_seed(0)
    model = Llama(tiny())
    x = torch.randint(0, 97, (3, 17))
    logits = model(x)
    assert logits.shape == (3, 17, 97)
    loss = next_token_loss(logits, x)
    assert torch.isfinite(loss)
    # a random-init model predicts close to uniform: loss near ln(V)
    assert abs(loss.item() - torch.log(torch.tensor(97.0)).item()) < 0.5


def test_causal_future_tokens_do_not_change_past_logits():
    torch.manual_seed(1)
    model = Llama(tiny())
    x = torch.randint(0, 97, (2, 20))
    y = x.clone()
    y[:, 12:] = torch.randint(0, 97, (2, 8))
    a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_grouped_query_attention_equals_mha_with_repeated_kv_heads():
    torch.manual_seed(2)
    gqa = Llama(tiny(n_kv_heads=2))
    mha = Llama(tiny(n_kv_heads=None))
    state = gqa.state_dict()
    hd = gqa.cfg.head_dim
    for name, value in list(state.items()):
        if name.endswith(("k_proj.weight", "v_proj.weight")):  # (Hkv*hd, dim) -> (H*hd, dim), each head twice
            heads = value.view(2, hd, -1)
            state[name] = heads.repeat_interleave(2, dim=0).reshape(4 * hd, -1)
    mha.load_state_dict(state)
    x = torch.randint(0, 97, (2, 15))
    torch.testing.assert_close(gqa(x), mha(x))


def test_tied_embeddings_share_one_tensor_and_count_once():
    model = Llama(tiny(tie_embeddings=True))
    assert model.head.weight is model.embed.weight
    assert sum(p.numel() for p in model.parameters()) == param_count(model.cfg)


def test_parts_can_be_cut_like_pipeline_stages():
    """embed -> blocks -> norm/head; a stage that drops parts passes hidden states through."""
    torch.manual_seed(3)
    model = Llama(tiny(n_layers=4))
    x = torch.randint(0, 97, (2, 9))
    first, last = copy.deepcopy(model), copy.deepcopy(model)
    del first.layers["2"], first.layers["3"]
    first.norm, first.head = None, None
    del last.layers["0"], last.layers["1"]
    last.embed = None
    torch.testing.assert_close(last(first(x)), model(x))
    assert list(last.layers) == ["2", "3"]  # names survive the cut, so checkpoints line up


def test_sequence_longer_than_rope_table_is_refused():
    model = Llama(tiny(max_seq_len=8))
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("name,nominal", [("150m", 150e6), ("400m", 400e6), ("1b", 1e9)])
def test_shipped_sizes_match_their_names(name, nominal):
    cfg = load_config(name)
    model_cfg = build_model_config(cfg, vocab_size=32768, seq_len=2048)
    with torch.device("meta"):
        model = Llama(model_cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n == param_count(model_cfg)
    assert 0.85 * nominal <= n <= 1.1 * nominal, n
    assert flops_per_token(model_cfg, 2048) > 6 * (n - 32768 * model_cfg.dim)


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="must divide dim"):
        ModelConfig(vocab_size=10, dim=30, n_heads=4)
    cfg = load_config("tiny", ["model.vocab_size=100"])
    with pytest.raises(ConfigError, match="smaller than the tokenizer"):
        build_model_config(cfg, vocab_size=2048, seq_len=128)
    cfg = load_config("tiny", ["model.max_seq_len=64"])
    with pytest.raises(ConfigError, match="max_seq_len"):
        build_model_config(cfg, vocab_size=100, seq_len=128)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("prefix", [1, 16, 40])
def test_prefix_attention_equals_the_masked_kernel_with_its_gradients(dtype, prefix):
    """The CPU split (prefix unmasked + diagonal causal, merged by log-sum-exp) is the bottom-right causal mask."""
    import torch.nn.functional as F
    from torch.nn.attention.bias import causal_lower_right

    from training.model.attention import prefix_causal_attention, split_kernel_available

    g = torch.Generator().manual_seed(prefix)
    q, k, v = (torch.randn(2, 4, n, 8, dtype=dtype, generator=g).requires_grad_(True) for n in (16, 16 + prefix,
                                                                                                16 + prefix))
    grad = torch.randn(2, 4, 16, 8, dtype=dtype, generator=g)
    assert split_kernel_available(q)
    out = prefix_causal_attention(q, k, v)
    got = torch.autograd.grad(out, (q, k, v), grad)
    want_out = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(16, 16 + prefix))
    want = torch.autograd.grad(want_out, (q, k, v), grad)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out, want_out, rtol=tol, atol=tol)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
