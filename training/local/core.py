"""Supervised local learning on any backbone given as an ordered list of blocks (training-anchors §3.1).

The network is cut into K contiguous, gradient-isolated modules. Module k reads a detached input, feeds its
output to an auxiliary network with its own loss, and runs backward at once, so autograd frees module k's
graph before module k+1 starts; the last module trains through the backbone's real head. No gradient crosses
a module boundary, and saved activations peak at about one module plus its aux net instead of the whole net.
The blocks are not copied: a LocalModel trains the very modules the caller passed in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Groups = tuple[tuple[int, ...], ...]


class BlockFactory(Protocol):
    """make_block(i, after=j): a fresh block shaped like backbone block i that reads block j's output."""

    def __call__(self, i: int, *, after: int) -> nn.Module: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Backbone:
    """The network as local learning sees it: ordered blocks, the real head, and factories for aux nets."""

    blocks: tuple[nn.Module, ...]  # applied in order; block 0 may hold an embedding or stem
    head: nn.Module  # the real output layer, on the last block's output
    make_block: BlockFactory  # fresh, randomly initialised; `after` fixes its input shape (widths, strides)
    make_head: Callable[[int], nn.Module]  # make_head(j): a fresh head on block j's output

    def __post_init__(self) -> None:
        if not self.blocks:
            raise ValueError("a Backbone needs at least one block; pass the network's layers in order")


@dataclass(frozen=True, kw_only=True, slots=True)
class AuxSite:
    """Where an aux net sits: after module k of len(groups), whose last block is `last`."""

    k: int
    groups: Groups
    backbone: Backbone

    @property
    def last(self) -> int:
        return self.groups[self.k][-1]

    @property
    def n_blocks(self) -> int:
        return len(self.backbone.blocks)

    @property
    def n_modules(self) -> int:
        return len(self.groups)


AuxBuilder = Callable[[AuxSite], nn.Module]


def plan_modules(n_blocks: int, n_modules: int) -> Groups:
    """Contiguous groups of block indices, sizes differing by at most one (earlier groups get the extra)."""
    if not 1 <= n_modules <= n_blocks:
        raise ValueError(f"n_modules ({n_modules}) must be in 1..n_blocks ({n_blocks}); lower the module count")
    size, extra = divmod(n_blocks, n_modules)
    groups, start = [], 0
    for k in range(n_modules):
        stop = start + size + (k < extra)
        groups.append(tuple(range(start, stop)))
        start = stop
    return tuple(groups)


def check_groups(groups: Groups, n_blocks: int) -> None:
    """Groups must cover blocks 0..n-1 once, in order, none empty."""
    flat = [i for g in groups for i in g]
    if flat != list(range(n_blocks)) or any(not g for g in groups):
        raise ValueError(f"groups {groups} must split blocks 0..{n_blocks - 1} into non-empty contiguous runs")


def check_disjoint(owners: Sequence[nn.Module]) -> None:
    """A parameter shared by two modules (tied embedding and head) would carry gradient across the boundary."""
    seen: dict[int, int] = {}
    for k, owner in enumerate(owners):
        for name, p in owner.named_parameters():
            if seen.setdefault(id(p), k) != k:
                raise ValueError(f"parameter {name} of module {k} is shared with module {seen[id(p)]}; untie it "
                                 "(e.g. model.tie_embeddings=false) or put both users in one module")


class LocalModel(nn.Module):
    """K gradient-isolated modules, K-1 aux nets, and the real head; forward() is plain inference."""

    def __init__(self, backbone: Backbone, *, groups: Groups, aux: AuxBuilder) -> None:
        super().__init__()
        check_groups(groups, len(backbone.blocks))
        self.groups = groups
        self.parts = nn.ModuleList(nn.Sequential(*(backbone.blocks[i] for i in g)) for g in groups)
        self.auxes = nn.ModuleList(aux(AuxSite(k=k, groups=groups, backbone=backbone)) for k in range(len(groups) - 1))
        self.head = backbone.head
        check_disjoint([*self.parts[:-1], nn.ModuleList([self.parts[-1], self.head])])

    def block(self, i: int) -> nn.Module:
        """Backbone block i, wherever its module holds it."""
        k = next(k for k, g in enumerate(self.groups) if i in g)
        return self.parts[k][self.groups[k].index(i)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for part in self.parts:
            x = part(x)
        return self.head(x)

    def block_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output, in order (features for linear probes)."""
        outs = []
        for part in self.parts:
            for blk in part:
                x = blk(x)
                outs.append(x)
        return outs

    def module_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each module's own prediction: aux nets for modules 0..K-2, the real head for the last (early exits)."""
        outs = []
        for k, part in enumerate(self.parts):
            x = part(x)
            outs.append(self.auxes[k](x) if k < len(self.auxes) else self.head(x))
        return outs

    @torch.no_grad()
    def after_step(self) -> None:
        """Run aux nets' post-optimizer updates (MAN's EMA); call once after every optimizer.step()."""
        for aux in self.auxes:
            update = getattr(aux, "after_step", None)
            if update is not None:
                update(self)


def local_step(model: LocalModel, x: torch.Tensor, y: torch.Tensor, *,
               loss_fn: LossFn = F.cross_entropy) -> list[float]:
    """One local step: per module, forward on a detached input, local loss, backward now; returns the losses."""
    losses, last = [], len(model.parts) - 1
    h = x
    for k, part in enumerate(model.parts):
        h = part(h.detach())
        loss = loss_fn(model.head(h) if k == last else model.auxes[k](h), y)
        loss.backward()  # frees module k's graph (and its aux net's) before module k+1 runs
        losses.append(loss.item())
    return losses


def backprop_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                  loss_fn: LossFn = F.cross_entropy) -> list[float]:
    """End-to-end backprop through the same network: the twin every local method is compared with."""
    loss = loss_fn(model(x), y)
    loss.backward()
    return [loss.item()]


def trainable(modules: Sequence[nn.Module] | nn.Module) -> list[nn.Parameter]:
    """Parameters an optimizer should own (MAN's EMA copies are frozen and excluded)."""
    mods = [modules] if isinstance(modules, nn.Module) else modules
    seen, out = set(), []
    for m in mods:
        for p in m.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out
