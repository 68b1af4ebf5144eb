"""StreamBP equals plain backprop on every parameter, for every objective, chunk size, padding and accumulation."""
from __future__ import annotations

import pytest
import torch

from training.memory import SavedActivations
from training.model import Llama, ModelConfig
from training.stream import DPO, NextToken, StreamConfig, reference_loss, sft_targets, streambp_backward
from training.stream.backprop import chunk_bounds
from training.stream.objectives import IGNORE

T = 64
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def model(dtype: torch.dtype, *, tied: bool = False, kv: int | None = 2, layers: int = 3) -> Llama:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=101, dim=32, n_layers=layers, n_heads=4, n_kv_heads=kv, ffn_dim=48,
                      max_seq_len=T, tie_embeddings=tied)
    return Llama(cfg).to(dtype)


def batch(b: int = 2, pad_from: int | None = int(0.8 * T), seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens; the last 20 % of the second row is padding (targets -100), as in the authors' test."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 101, (b, T), generator=g)
    targets = torch.randint(0, 101, (b, T), generator=g)
    if pad_from is not None:
        targets[-1, pad_from:] = IGNORE
    return tokens, targets


def grads(m: Llama) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad(set_to_none=True)
    return out


def assert_same_grads(got: dict, want: dict, tol: float) -> None:
    assert got.keys() == want.keys()
    for name in want:
        err = (got[name] - want[name]).abs().max() / want[name].abs().max().clamp_min(1e-30)
        assert err <= tol, f"{name}: relative error {float(err):.2e} > {tol:.0e}"


def check_against_backprop(m: Llama, tokens: torch.Tensor, targets: torch.Tensor, objective, cfg: StreamConfig,
                           dtype: torch.dtype) -> None:
    """Plain backprop of the objective on full logits, then StreamBP: same loss, same gradient on every parameter."""
    want_loss = reference_loss(objective, m(tokens), targets)
    want_loss.backward()
    want = grads(m)
    loss = streambp_backward(m, tokens, targets, objective, cfg)
    assert_same_grads(grads(m), want, TOL[dtype])
    assert float(loss) == pytest.approx(want_loss.item(), rel=TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("chunk", [T // 8, T // 4, T // 2, T, 24, 21])  # 24: an uneven last chunk; 21: one token
@pytest.mark.parametrize("tied", [False, True])
def test_next_token_gradients_equal_plain_backprop(dtype, chunk, tied):
    m = model(dtype, tied=tied)
    tokens, targets = batch()
    objective = NextToken(normalizer=float((targets != IGNORE).sum()))
    check_against_backprop(m, tokens, targets, objective, StreamConfig(chunk=chunk), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_multi_head_attention_and_a_separate_logits_chunk(dtype):
    m = model(dtype, kv=None)
    tokens, targets = batch(b=3)
    objective = NextToken()  # the sum
    reference_loss(objective, m(tokens), targets).backward()
    want = grads(m)
    streambp_backward(m, tokens, targets, objective, StreamConfig(chunk=T // 8, logits_chunk=T // 2))
    assert_same_grads(grads(m), want, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradient_accumulation_normalised_by_valid_tokens_equals_one_big_batch(dtype):
    """Two micro-batches with different padding: the mean over all their valid tokens, not a mean of means."""
    m = model(dtype)
    a, b = batch(seed=1, pad_from=10), batch(seed=2, pad_from=50)
    tokens, targets = torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])
    valid = float((targets != IGNORE).sum())
    reference_loss(NextToken(normalizer=valid), m(tokens), targets).backward()
    want = grads(m)
    for t, y in (a, b):
        streambp_backward(m, t, y, NextToken(normalizer=valid), StreamConfig(chunk=T // 8))
    assert_same_grads(grads(m), want, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sft_masked_loss(dtype):
    m = model(dtype)
    tokens, targets = batch(pad_from=None)
    targets = sft_targets(targets, torch.tensor([20, 37]))
    assert (targets[0, :20] == IGNORE).all() and (targets[0, 20:] != IGNORE).all()
    objective = NextToken(normalizer=float((targets != IGNORE).sum()))
    reference_loss(objective, m(tokens), targets).backward()
    want = grads(m)
    streambp_backward(m, tokens, targets, objective, StreamConfig(chunk=T // 8))
    assert_same_grads(grads(m), want, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("chunk", [T // 8, T])
def test_dpo_pairwise_loss(dtype, chunk):
    """Not linear in the log-probs: the head streams twice (sums, then the chunked logits gradient)."""
    m = model(dtype)
    tokens, targets = batch(b=4, pad_from=None)
    targets = sft_targets(targets, torch.tensor([10, 10, 30, 30]))
    reference = torch.randn(4, dtype=dtype, generator=torch.Generator().manual_seed(3)) - 250.0
    check_against_backprop(m, tokens, targets, DPO(reference=reference, beta=0.1), StreamConfig(chunk=chunk), dtype)


def test_dpo_loss_and_gradients_match_the_papers_formula_written_out():
    """Rafailov et al. (2023), eq. 7, from F.cross_entropy's token log-probs: chosen rows first, loss = mean of
    -log sigmoid(beta * ((S_c - R_c) - (S_r - R_r))). The check above takes its reference from DPO.loss itself,
    so a flipped sign there would pass it; this one would not."""
    dtype, beta = torch.float64, 0.1
    m = model(dtype)
    tokens, targets = batch(b=4, pad_from=None)
    targets = sft_targets(targets, torch.tensor([10, 10, 30, 30]))
    reference = torch.randn(4, dtype=dtype, generator=torch.Generator().manual_seed(3)) - 250.0
    logits = m(tokens)
    token_logp = -torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE,
                                                    reduction="none")  # 0 where the target is ignored
    s = token_logp.sum(-1)
    margin = (s[:2] - reference[:2]) - (s[2:] - reference[2:])
    want_loss = -torch.log(torch.sigmoid(beta * margin)).mean()
    want_loss.backward()
    want = grads(m)
    loss = streambp_backward(m, tokens, targets, DPO(reference=reference, beta=beta), StreamConfig(chunk=T // 8))
    assert float(loss) == pytest.approx(want_loss.item(), rel=1e-10)
    assert_same_grads(grads(m), want, TOL[dtype])


def test_activation_memory_falls_with_the_chunk_size():
    """Saved activations (saved_tensors_hooks): one chunk's worth at a time, and no full logits."""
    m = model(torch.float32, layers=2)
    tokens, targets = batch(b=1, pad_from=None)
    objective = NextToken(normalizer=float(T))
    with SavedActivations(m) as plain:
        reference_loss(objective, m(tokens), targets).backward()
    peaks = []
    for chunk in (T, T // 4, T // 16):
        m.zero_grad()
        with SavedActivations(m) as meter:
            streambp_backward(m, tokens, targets, objective, StreamConfig(chunk=chunk))
        peaks.append(meter.peak_bytes)
    assert peaks[0] < plain.peak_bytes  # even one chunk holds one layer at a time, not all of them
    assert peaks[2] < peaks[1] < peaks[0]
    assert peaks[2] * 4 < plain.peak_bytes


def test_chunk_bounds_cover_the_sequence():
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(9, 4) == [(0, 4), (4, 8), (8, 9)]  # a last chunk of one token
    assert chunk_bounds(8, 8) == [(0, 8)]
    with pytest.raises(ValueError):
        chunk_bounds(8, 0)
