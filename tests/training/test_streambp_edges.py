"""Edges of StreamBP and its objectives (issue 16 mutation survivors).

Expected values come from hand arithmetic, `math`, or F.cross_entropy / F.log_softmax on full logits with plain
autograd, never from the objective or StreamBP function under test."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from training.model import Llama, ModelConfig
from training.stream import DPO, NextToken, StreamConfig, reference_loss, sft_targets, streambp_backward
from training.stream.backprop import chunk_bounds
from training.stream.objectives import IGNORE, token_logprobs

T, V = 12, 13


def small_model(layers: int = 2) -> Llama:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=V, dim=16, n_layers=layers, n_heads=2, n_kv_heads=1, ffn_dim=24, max_seq_len=T)
    return Llama(cfg).to(torch.float64)


def grads(m: Llama) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad(set_to_none=True)
    return out


# ---------------------------------------------------------------- objectives.py


def test_ignore_is_cross_entropys_default_minus_100_and_scores_zero():
    assert IGNORE == -100
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, V, dtype=torch.float64, generator=g)
    targets = torch.tensor([[0, 3, -100, 12, 0], [-100, -100, 1, 0, 7]])  # target 0 is a real token
    got = token_logprobs(logits, targets)
    want = -F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # ignore_index=-100: 0 there
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    by_hand = torch.log_softmax(logits, dim=-1)[0, 0, 0]
    assert float(got[0, 0]) == pytest.approx(float(by_hand), abs=1e-12)
    assert got[0, 2] == 0 and got[1, 0] == 0 and got[1, 1] == 0


def test_token_logprobs_upcast_bf16_and_keep_fp64():
    logits = torch.zeros(1, 2, 4)
    assert token_logprobs(logits.bfloat16(), torch.tensor([[1, 2]])).dtype == torch.float32
    assert token_logprobs(logits.double(), torch.tensor([[1, 2]])).dtype == torch.float64
    # uniform logits over 4 tokens: log(1/4) per valid position
    assert token_logprobs(logits, torch.tensor([[1, IGNORE]]))[0].tolist() == pytest.approx([-math.log(4), 0.0])


def test_next_token_weights_and_loss_by_hand():
    targets = torch.tensor([[5, -100, 0], [1, 2, -100]])
    w = NextToken(normalizer=4.0).weights(targets)
    assert w.dtype == torch.float64 and w.shape == (1, 2, 3)
    assert w.tolist() == [[[0.25, 0.0, 0.25], [0.25, 0.25, 0.0]]]
    assert NextToken().normalizer == 1.0 and NextToken().weights(targets).tolist() == [[[1, 0, 1], [1, 1, 0]]]
    assert float(NextToken().loss(torch.tensor([[1.5, -2.0]]))) == 0.5  # -(1.5 - 2.0)


def test_next_token_reference_loss_is_cross_entropys_mean():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 6, V, dtype=torch.float64, generator=g)
    targets = torch.randint(0, V, (3, 6), generator=g)
    targets[1, 4:] = -100
    targets[2, 0] = 0
    valid = int((targets != -100).sum())
    want = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-100)
    got = reference_loss(NextToken(normalizer=float(valid)), logits, targets)
    assert float(got) == pytest.approx(float(want), rel=1e-12)
    assert float(reference_loss(NextToken(), logits, targets)) == pytest.approx(float(want) * valid, rel=1e-12)


def test_dpo_reference_loss_is_the_papers_formula_from_cross_entropy():
    """reference_loss sums each row's token log-probs over positions (one S per row), then DPO pairs the rows."""
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(4, 6, V, dtype=torch.float64, generator=g)
    targets = torch.randint(0, V, (4, 6), generator=g)
    targets[:, :2] = -100  # prompts
    ref = torch.tensor([-20.0, -21.0, -19.0, -22.0], dtype=torch.float64)
    s = -F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").sum(-1)  # (4,)
    margin = (s[:2] - ref[:2]) - (s[2:] - ref[2:])
    want = -F.logsigmoid(0.3 * margin).mean()
    got = reference_loss(DPO(reference=ref, beta=0.3), logits, targets)
    assert float(got) == pytest.approx(float(want), rel=1e-12)


def test_sft_targets_mask_exactly_the_prompt():
    targets = torch.arange(12).reshape(3, 4)
    got = sft_targets(targets, torch.tensor([0, 2, 4]))
    assert got.tolist() == [[0, 1, 2, 3], [-100, -100, 6, 7], [-100, -100, -100, -100]]
    one = sft_targets(torch.tensor([[9, 9, 9]]), torch.tensor([1]))
    assert one.tolist() == [[-100, 9, 9]]


def test_dpo_loss_and_weights_by_hand():
    beta = 0.5
    s = torch.tensor([[-3.0, -5.0, -6.0, -1.0]], dtype=torch.float64)  # chosen rows 0, 1; rejected rows 2, 3
    ref = torch.tensor([-2.0, -6.0, -3.0, -2.0], dtype=torch.float64)
    m0, m1 = (-3.0 + 2.0) - (-6.0 + 3.0), (-5.0 + 6.0) - (-1.0 + 2.0)  # 2.0 and 0.0
    want = (math.log1p(math.exp(-beta * m0)) + math.log1p(math.exp(-beta * m1))) / 2
    assert float(DPO(reference=ref, beta=beta).loss(s)) == pytest.approx(want, rel=1e-12)
    default = DPO(reference=ref)
    assert default.beta == 0.1 and default.linear is False
    want01 = (math.log1p(math.exp(-0.1 * m0)) + math.log1p(math.exp(-0.1 * m1))) / 2
    assert float(default.loss(s)) == pytest.approx(want01, rel=1e-12)
    w = default.weights(torch.tensor([[3, -100], [-100, 0]]))
    assert w.dtype == torch.float64 and w.tolist() == [[[1.0, 0.0], [0.0, 1.0]]]


def test_objectives_are_frozen_and_say_whether_they_are_linear():
    assert NextToken().linear is True and DPO(reference=torch.zeros(2)).linear is False
    for obj in (NextToken(), DPO(reference=torch.zeros(2))):
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.linear = not obj.linear  # type: ignore[misc]


def count_head_calls(m: Llama) -> list[int]:
    calls: list[int] = []
    m.head.register_forward_hook(lambda _mod, inp, _out: calls.append(inp[0].shape[1]))
    return calls


@pytest.mark.parametrize("objective,passes", [(NextToken(), 1),
                                              (DPO(reference=torch.zeros(2, dtype=torch.float64)), 2)])
def test_a_linear_loss_streams_the_head_once_and_dpo_twice(objective, passes):
    """The docstring's promise: losses linear in S skip the first (no-grad) pass over the head."""
    m = small_model(layers=1)
    g = torch.Generator().manual_seed(2)
    tokens, targets = torch.randint(0, V, (2, T), generator=g), torch.randint(0, V, (2, T), generator=g)
    calls = count_head_calls(m)
    streambp_backward(m, tokens, targets, objective, StreamConfig(chunk=4))
    assert calls == [4, 4, 4] * passes


# ---------------------------------------------------------------- backprop.py


def test_chunk_bounds_edges():
    assert chunk_bounds(0, 3) == []
    assert chunk_bounds(3, 1) == [(0, 1), (1, 2), (2, 3)]
    assert chunk_bounds(3, 5) == [(0, 3)]
    for bad in (0, -1):
        with pytest.raises(ValueError, match=f"chunk size must be at least 1, got {bad}"):
            chunk_bounds(4, bad)


def test_stream_config_is_frozen_and_its_logits_chunk_defaults_to_the_chunk():
    cfg = StreamConfig(chunk=3)
    assert cfg.logits_chunk is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.chunk = 4  # type: ignore[misc]


@pytest.mark.parametrize("chunk,logits_chunk,head_calls", [(3, None, [3, 3, 3, 3]), (2, 6, [6, 6]), (6, 4, [4, 4, 4])])
def test_the_head_runs_in_logits_chunks(chunk, logits_chunk, head_calls):
    m = small_model(layers=1)
    g = torch.Generator().manual_seed(3)
    tokens, targets = torch.randint(0, V, (1, T), generator=g), torch.randint(0, V, (1, T), generator=g)
    calls = count_head_calls(m)
    streambp_backward(m, tokens, targets, NextToken(), StreamConfig(chunk=chunk, logits_chunk=logits_chunk))
    assert calls == head_calls


@pytest.mark.parametrize("chunk", [1, 5, T])
def test_gradients_and_loss_equal_plain_autograd_of_cross_entropy(chunk):
    """Ground truth written without the objectives module: F.cross_entropy on the full logits, plain backward."""
    m = small_model()
    g = torch.Generator().manual_seed(4)
    tokens, targets = torch.randint(0, V, (2, T), generator=g), torch.randint(0, V, (2, T), generator=g)
    targets[0, :3] = -100
    targets[1, -4:] = -100
    want_loss = F.cross_entropy(m(tokens).reshape(-1, V), targets.reshape(-1), ignore_index=-100, reduction="sum")
    want_loss.backward()
    want = grads(m)
    loss = streambp_backward(m, tokens, targets, NextToken(), StreamConfig(chunk=chunk))
    got = grads(m)
    assert loss.dtype == torch.float64 and float(loss) == pytest.approx(want_loss.item(), rel=1e-10)
    for name in want:
        assert torch.allclose(got[name], want[name], rtol=1e-9, atol=1e-12), name


@dataclasses.dataclass(frozen=True)
class RowWeighted:
    """A linear objective other than the plain sum: F(S) = -sum_b c_b S[0, b], S of shape (J, B) per the Protocol."""

    c: torch.Tensor
    linear: bool = True

    def weights(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets != -100).to(torch.float64).unsqueeze(0)

    def loss(self, sums: torch.Tensor) -> torch.Tensor:
        assert sums.shape == (1, self.c.shape[0]), f"S must be (J, B) = (1, {self.c.shape[0]}), got {tuple(sums.shape)}"
        return -(sums[0] * self.c).sum()


@pytest.mark.parametrize("chunk", [5, T])
def test_a_linear_objective_gets_one_s_per_row_for_each_chunk(chunk):
    m = small_model(layers=1)
    g = torch.Generator().manual_seed(7)
    tokens, targets = torch.randint(0, V, (3, T), generator=g), torch.randint(0, V, (3, T), generator=g)
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    per_row = -F.cross_entropy(m(tokens).transpose(1, 2), targets, reduction="none").sum(-1)  # S of each row
    want = -(per_row * c).sum()
    want.backward()
    want_grads = grads(m)
    loss = streambp_backward(m, tokens, targets, RowWeighted(c), StreamConfig(chunk=chunk))
    assert float(loss) == pytest.approx(want.item(), rel=1e-10)
    got = grads(m)
    for name in want_grads:
        assert torch.allclose(got[name], want_grads[name], rtol=1e-9, atol=1e-12), name


def test_dpo_loss_returned_is_the_papers_formula():
    m = small_model(layers=1)
    g = torch.Generator().manual_seed(5)
    tokens, targets = torch.randint(0, V, (2, T), generator=g), torch.randint(0, V, (2, T), generator=g)
    ref = torch.tensor([-30.0, -31.0], dtype=torch.float64)
    s = -F.cross_entropy(m(tokens).transpose(1, 2), targets, reduction="none").sum(-1)
    want = -F.logsigmoid(0.1 * ((s[0] - ref[0]) - (s[1] - ref[1])))
    want.backward()
    want_grads = grads(m)
    loss = streambp_backward(m, tokens, targets, DPO(reference=ref), StreamConfig(chunk=5))
    assert float(loss) == pytest.approx(want.item(), rel=1e-10)
    got = grads(m)
    for name in want_grads:
        assert torch.allclose(got[name], want_grads[name], rtol=1e-9, atol=1e-12), name
