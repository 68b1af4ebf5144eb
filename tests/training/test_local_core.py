"""Local learning: gradient isolation, AugLocal's schedule and sampling, MAN's EMA rule, small convergence checks.
(The research-only modules beside bench/train/local_digits.py, FF and Mono-Forward among them, are checked in
tests/bench/test_local_research.py; their MLP, mini-ResNet and training loop serve here as fixtures.)"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.train.local_research.loop import accuracy, fit
from bench.train.local_research.nets import mlp, resnet
from training.local import (Backbone, LocalModel, auglocal, backprop_step, ema_update_, greedy, local_step, man,
                            plan_modules, pyramid_depths, sample_later_blocks, trainable)
from training.local.aux_nets import MAN_MOMENTUM, MomentumAux

AUXES = {"greedy": greedy(), "greedy-head": greedy(n_blocks=0), "auglocal": auglocal(depth=2), "man": man()}


def blobs(n: int = 256, d: int = 16, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian class clusters: a task every method should learn in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(classes, d, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] + torch.randn(n, d, generator=g), y


def local_mlp(aux, *, n_modules: int = 3, widths=(24, 24, 24), seed: int = 0) -> LocalModel:
    torch.manual_seed(seed)
    bb = mlp(d_in=16, widths=widths, classes=4)
    return LocalModel(bb, groups=plan_modules(len(widths), n_modules), aux=aux)


def test_plan_modules_balances_contiguous_groups():
    assert plan_modules(4, 4) == ((0,), (1,), (2,), (3,))
    assert plan_modules(7, 3) == ((0, 1, 2), (3, 4), (5, 6))
    assert plan_modules(3, 1) == ((0, 1, 2),)
    with pytest.raises(ValueError, match="n_modules"):
        plan_modules(2, 3)


@pytest.mark.parametrize("name", list(AUXES))
def test_each_module_gets_gradient_only_from_its_own_loss(name):
    """Parameter hooks record which local loss is being backpropagated; module k may only see loss k."""
    model = local_mlp(AUXES[name])
    x, y = blobs(32)
    state = {"loss": -1}

    def counting_loss(out, target):
        state["loss"] += 1
        return F.cross_entropy(out, target)

    seen: dict[int, set[int]] = {k: set() for k in range(len(model.parts))}
    for k, part in enumerate(model.parts):
        for p in part.parameters():
            p.register_hook(lambda grad, k=k: seen[k].add(state["loss"]))
        part.register_forward_pre_hook(lambda mod, args: pytest.fail("module input carries a graph")
                                       if args[0].requires_grad else None)
    local_step(model, x, y, loss_fn=counting_loss)
    assert seen == {k: {k} for k in range(len(model.parts))}


@pytest.mark.parametrize("name", list(AUXES))
def test_earlier_gradients_ignore_later_modules(name):
    """Scrambling every later module, aux net and the head leaves module 0's gradients unchanged."""
    x, y = blobs(32)
    grads = []
    for scramble in (False, True):
        model = local_mlp(AUXES[name])
        if scramble:
            with torch.no_grad():
                for mod in [*model.parts[1:], *model.auxes[1:], model.head]:
                    for p in mod.parameters():
                        p.normal_()
        local_step(model, x, y)
        grads.append([p.grad.clone() for p in [*model.parts[0].parameters(), *model.auxes[0].parameters()]
                      if p.grad is not None])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


def test_one_module_is_plain_backprop():
    x, y = blobs(32)
    local, ref = local_mlp(greedy(), n_modules=1), local_mlp(greedy(), n_modules=1)
    local_step(local, x, y)
    backprop_step(ref, x, y)
    for a, b in zip(local.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)


def test_a_weight_shared_across_modules_is_refused():
    """A tied embedding and head would leak the last module's gradient into the first module."""
    bb = mlp(d_in=16, widths=(16, 16), classes=16)
    bb.head.weight = bb.blocks[0][0].weight  # both (16, 16)
    with pytest.raises(ValueError, match="untie"):
        LocalModel(bb, groups=plan_modules(2, 2), aux=greedy())
    LocalModel(bb, groups=plan_modules(2, 1), aux=greedy())  # one module: backprop, sharing is fine


def test_pyramid_depths_follow_the_formula():
    for depth, k, tau in [(3, 16, 0.5), (5, 55, 0.5), (2, 4, 1.0), (4, 17, 0.5)]:
        want = tuple(max(1, round(depth * (1 - i * tau / (k - 2)) + i * tau / (k - 2))) for i in range(k - 1))
        assert pyramid_depths(depth, k, tau=tau) == want
    # hand values: d=3, K=16: 3 ... then 2.5 rounds to even (2) at i=7, and d(1-τ)+τ = 2 at the last aux net
    got = pyramid_depths(3, 16)
    assert len(got) == 15 and got[0] == 3 and got[1] == 3 and got[7] == 2 and got[-1] == 2
    assert pyramid_depths(1, 8) == (1,) * 7
    assert pyramid_depths(4, 2) == (4,)


def test_unif_samp_positions_match_auglocal():
    # ResNet-32 as AugLocal counts it: a stem plus 15 blocks, N = 16
    assert sample_later_blocks(0, 16, 3) == (5, 10, 15)
    assert sample_later_blocks(3, 16, 3) == (7, 11, 15)
    assert sample_later_blocks(2, 16, 2) == (8, 15)  # 8.5 rounds to even
    assert sample_later_blocks(12, 16, 5) == (13, 14, 15)  # d >= N-1-ℓ: all remaining
    assert sample_later_blocks(14, 16, 1) == (15,)
    with pytest.raises(ValueError, match="real head"):
        sample_later_blocks(15, 16, 1)


def test_auglocal_aux_is_fresh_blocks_shaped_like_the_sampled_ones():
    widths = tuple(range(20, 28))  # every block a different width, so the chain tells which block it copies
    model = local_mlp(auglocal(depth=3), n_modules=8, widths=widths)
    depths = pyramid_depths(3, 8)
    for k, aux in enumerate(model.auxes):
        sampled = sample_later_blocks(k, 8, depths[k])
        linears = [m for m in aux.modules() if isinstance(m, nn.Linear)]
        assert [m.out_features for m in linears[:-1]] == [widths[i] for i in sampled]
        assert linears[-1].out_features == 4
        assert not {id(p) for p in aux.parameters()} & {id(p) for p in model.parts.parameters()}


def test_ema_update_rule_is_exact():
    torch.manual_seed(0)
    ema, src = nn.Linear(5, 3).double(), nn.Linear(5, 3).double()
    old = [p.clone() for p in ema.parameters()]
    ema_update_(ema, src, 0.995)
    for e, o, s in zip(ema.parameters(), old, src.parameters()):
        torch.testing.assert_close(e, 0.995 * o + 0.005 * s, rtol=0, atol=1e-15)


def test_man_tracks_the_next_block_after_each_optimizer_step():
    model = local_mlp(man(), n_modules=3)
    aux = model.auxes[0]
    assert isinstance(aux, MomentumAux) and aux.momentum == MAN_MOMENTUM
    nxt = model.block(1)
    for copy_ in (aux.ema, aux.learnable):  # both start as copies of the next block
        for a, b in zip(copy_.parameters(), nxt.parameters()):
            assert torch.equal(a, b) and a is not b
    assert all(not p.requires_grad for p in aux.ema.parameters())
    assert not {id(p) for p in aux.ema.parameters()} & {id(p) for p in trainable(model)}
    opt = torch.optim.SGD(trainable(model), lr=0.5)
    x, y = blobs(32)
    ema_before = [p.clone() for p in aux.ema.parameters()]
    local_step(model, x, y)
    assert all(p.grad is None for p in aux.ema.parameters())
    assert all(p.grad is not None for p in aux.learnable.parameters())
    opt.step()
    model.after_step()
    for e, o, s in zip(aux.ema.parameters(), ema_before, nxt.parameters()):
        torch.testing.assert_close(e, MAN_MOMENTUM * o + (1 - MAN_MOMENTUM) * s, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["backprop", *AUXES])
def test_each_method_lowers_its_loss(name):
    x, y = blobs(256)
    model = local_mlp(AUXES.get(name, greedy()), n_modules=1 if name == "backprop" else 3)
    step = backprop_step if name == "backprop" else local_step
    hist = fit(trainable(model), lambda a, b: step(model, a, b), x, y, lr=3e-3, epochs=8, batch_size=32, seed=0,
               after_step=model.after_step)
    assert hist[-1] < 0.5 * hist[0], hist
    assert accuracy(lambda a: model(a).argmax(1), x, y) > 0.9


def resnet_model() -> LocalModel:
    torch.manual_seed(0)
    return LocalModel(resnet(widths=(4, 4, 8), strides=(1, 1, 2), classes=4), groups=plan_modules(3, 3), aux=man())


def test_resnet_local_step_isolates_and_learns():
    """Isolated: module 0's gradients are the same whatever the later modules, their aux nets and the head hold
    (scrambled to random values); and it learns."""
    x, y = blobs(64, d=64)
    x = x.view(-1, 1, 8, 8)
    grads = []
    for scramble in (False, True):
        model = resnet_model()
        if scramble:
            with torch.no_grad():
                for mod in [*model.parts[1:], *model.auxes[1:], model.head]:
                    for p in mod.parameters():
                        p.normal_()
        local_step(model, x[:32], y[:32])
        grads.append([p.grad.clone() for p in [*model.parts[0].parameters(), *model.auxes[0].parameters()]
                      if p.grad is not None])
    assert grads[0] and all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
    model = resnet_model()
    hist = fit(trainable(model), lambda a, b: local_step(model, a, b), x, y, lr=1e-2, epochs=6, batch_size=32,
               seed=0, after_step=model.after_step)
    assert hist[-1] < hist[0]


class RopeBlock(nn.Module):
    """Adapter: a decoder block as a tensor -> tensor block, holding its own slice of the RoPE table."""

    def __init__(self, block: nn.Module, rope: torch.Tensor) -> None:
        super().__init__()
        self.block = block
        self.register_buffer("rope", rope, persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block(h, self.rope[:, :h.shape[1]])


def llama_backbone():
    """How a decoder plugs in: block 0 is the embedding, then adapted decoder blocks; norm + LM head as heads."""
    from training.model import Llama, ModelConfig
    from training.model.llama import Block, RMSNorm

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=37, dim=32, n_layers=4, n_heads=4, ffn_dim=48, max_seq_len=16)
    lm = Llama(cfg)
    rope = lm.rope_for(cfg.max_seq_len)
    return Backbone(
        blocks=(lm.embed, *(RopeBlock(b, rope) for b in lm.layers.values())),
        head=nn.Sequential(lm.norm, lm.head),
        make_block=lambda i, *, after: RopeBlock(Block(cfg), rope),
        make_head=lambda after: nn.Sequential(RMSNorm(cfg.dim, cfg.norm_eps), nn.Linear(cfg.dim, cfg.vocab_size)),
    )


@pytest.mark.parametrize("name", ["auglocal", "man"])
def test_a_decoder_in_two_modules_is_isolated_and_learns(name):
    from training.model.llama import next_token_loss

    model = LocalModel(llama_backbone(), groups=((0, 1, 2), (3, 4)), aux=AUXES[name])
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 37, (4, 16), generator=g)
    targets = tokens.roll(-1, dims=1)
    seen: dict[int, set[int]] = {0: set(), 1: set()}
    state = {"loss": -1}

    def counting_loss(logits, t):
        state["loss"] += 1
        return next_token_loss(logits, t)

    for k, part in enumerate(model.parts):
        for p in part.parameters():
            p.register_hook(lambda grad, k=k: seen[k].add(state["loss"]))
    first = local_step(model, tokens, targets, loss_fn=counting_loss)
    assert seen == {0: {0}, 1: {1}}
    opt = torch.optim.Adam(trainable(model), lr=3e-3)
    for _ in range(15):
        opt.step()
        model.after_step()
        opt.zero_grad(set_to_none=True)
        last = local_step(model, tokens, targets, loss_fn=next_token_loss)
    assert last[0] < first[0] and last[1] < first[1]
