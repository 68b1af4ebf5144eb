"""Aux-net builders: greedy (DGL/InfoPro-like), AugLocal (unifSamp + pyramidal depth) and MAN (EMA + learnable bias).

Each builder is a function of an AuxSite (module k of K, the block cut, the backbone's factories) returning a fresh
nn.Module that maps module k's output to the task's output. Rounding follows the reference code: Python's
round(), which rounds halves to even (ChenxiangMA/AugLocal networks/resnet.py and auxiliary_nets.py).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from training.local.core import AuxBuilder, AuxSite, LocalModel

MAN_MOMENTUM = 0.995  # m in the MAN training scripts (JunhaoSu0/MAN); the argparse default is 0.999


def pyramid_depths(depth: int, n_modules: int, *, tau: float = 0.5) -> tuple[int, ...]:
    """AugLocal's depth per aux net i = 0..K-2: max(1, round(d(1 - iτ/(K-2)) + iτ/(K-2))), shrinking with depth."""
    if depth < 1 or n_modules < 2:
        raise ValueError(f"need depth >= 1 (got {depth}) and n_modules >= 2 (got {n_modules}) for aux nets")
    out = []
    for i in range(n_modules - 1):
        frac = i * tau / (n_modules - 2) if n_modules > 2 else 0.0  # K=2 has one aux net, at full depth
        out.append(max(1, round(depth * (1 - frac) + frac)))
    return tuple(out)


def sample_later_blocks(last: int, n_blocks: int, depth: int) -> tuple[int, ...]:
    """unifSamp: d indices spread evenly over last+1..N-1 (ℓ + (N-ℓ-1)/d·j), or all of them if d >= N-1-ℓ."""
    remaining = n_blocks - 1 - last
    if remaining < 1:
        raise ValueError(f"block {last} is the last of {n_blocks}; the final module uses the real head, not an aux net")
    if depth >= remaining:
        return tuple(range(last + 1, n_blocks))
    return tuple(round(last + remaining / depth * j) for j in range(1, depth + 1))


def chain(site: AuxSite, indices: tuple[int, ...]) -> nn.Sequential:
    """Fresh blocks shaped like backbone blocks `indices` (each reading the previous one's output) plus a fresh head."""
    layers, after = [], site.last
    for i in indices:
        layers.append(site.backbone.make_block(i, after=after))
        after = i
    return nn.Sequential(*layers, site.backbone.make_head(after))


def greedy(*, n_blocks: int = 1) -> AuxBuilder:
    """DGL/InfoPro-like: fresh copies of the next n_blocks blocks (0 = head only) plus a head, the same everywhere."""
    if n_blocks < 0:
        raise ValueError(f"n_blocks ({n_blocks}) must be >= 0; 0 means a head only")

    def build(site: AuxSite) -> nn.Module:
        nxt = tuple(range(site.last + 1, min(site.last + 1 + n_blocks, site.n_blocks)))
        return chain(site, nxt)

    return build


def auglocal(*, depth: int, tau: float = 0.5, pyramid: bool = True) -> AuxBuilder:
    """AugLocal: fresh blocks like a uniform sample of the later blocks plus a head; depth d_k from the pyramid."""

    def build(site: AuxSite) -> nn.Module:
        d = pyramid_depths(depth, site.n_modules, tau=tau)[site.k] if pyramid else depth
        return chain(site, sample_later_blocks(site.last, site.n_blocks, d))

    return build


@torch.no_grad()
def ema_update_(ema: nn.Module, source: nn.Module | Iterable[torch.Tensor], momentum: float) -> None:
    """θ_EMA ← m·θ_EMA + (1-m)·θ_source on parameters only (buffers stay, as in the MAN reference)."""
    values = source.parameters() if isinstance(source, nn.Module) else source
    for pe, ps in zip(ema.parameters(), values, strict=True):
        pe.mul_(momentum).add_(ps.detach(), alpha=1.0 - momentum)


class MomentumAux(nn.Module):
    """MAN's aux path head(LB(h) + EMA(h)): EMA a frozen moving average of the next block(s), LB a trainable copy."""

    def __init__(self, *, learnable: nn.Module, ema: nn.Module, head: nn.Module, sources: tuple[int, ...],
                 momentum: float) -> None:
        super().__init__()
        self.learnable, self.ema, self.head = learnable, ema, head
        self.ema.requires_grad_(False)
        self.sources, self.momentum = sources, momentum

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(self.learnable(h) + self.ema(h))

    def after_step(self, model: LocalModel) -> None:
        self.follow(nn.Sequential(*(model.block(i) for i in self.sources)).parameters())

    def follow(self, source: Iterable[torch.Tensor]) -> None:
        """The EMA step towards the source blocks' current parameters (passed in order, from any rank)."""
        ema_update_(self.ema, source, self.momentum)


def clone_blocks(site: AuxSite, indices: tuple[int, ...]) -> nn.Sequential:
    """Factory-built copies loaded with the blocks' state; deepcopy would also clone what an adapter references."""
    clones = []
    for i in indices:
        block = site.backbone.make_block(i, after=i - 1)
        block.load_state_dict(site.backbone.blocks[i].state_dict())
        clones.append(block)
    return nn.Sequential(*clones)


def man(*, momentum: float = MAN_MOMENTUM, whole_next_module: bool = False) -> AuxBuilder:
    """MAN: EMA and learnable-bias copies of the next block (the reference's choice) or of the whole next module."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum ({momentum}) must be in [0, 1); MAN uses {MAN_MOMENTUM}")

    def build(site: AuxSite) -> nn.Module:
        sources = site.groups[site.k + 1] if whole_next_module else (site.last + 1,)
        return MomentumAux(learnable=clone_blocks(site, sources), ema=clone_blocks(site, sources),
                           head=site.backbone.make_head(sources[-1]), sources=tuple(sources), momentum=momentum)

    return build
