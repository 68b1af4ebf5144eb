"""Our decoder as a local-learning backbone: blocks are the transformer layers, the embedding rides in block 0.

Aux nets for a language model are fresh decoder blocks (AugLocal's sampled later layers, MAN's copies of the
next layer, or none for greedy) followed by a fresh final norm and LM head, so every module has its own local
next-token loss. A tied embedding would share one tensor between module 0 (embedding) and the last module
(head), carrying gradient across the boundary, so local learning needs tie_embeddings=false.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from training.local import aux_nets as aux_builders
from training.local.core import AuxBuilder, Backbone
from training.model import Llama
from training.model.llama import Block, RMSNorm

METHODS = ("greedy", "auglocal", "man")


class RopeBlock(nn.Module):
    """A decoder block that fetches its own RoPE table, so it can sit in a plain sequence of blocks."""

    def __init__(self, block: Block, rope: Callable[[int], torch.Tensor], embed: nn.Embedding | None = None) -> None:
        super().__init__()
        self.embed, self.block = embed, block
        self._rope = rope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) if self.embed is not None else x
        return self.block(h, self._rope(h.shape[1]))


class LMHead(nn.Module):
    """Final norm and vocabulary projection: the real head, and (freshly initialised) every aux net's head."""

    def __init__(self, norm: RMSNorm, head: nn.Linear) -> None:
        super().__init__()
        self.norm, self.head = norm, head

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(h))


def backbone(model: Llama) -> Backbone:
    """The model's layers as blocks (block 0 embeds), its norm + head, and factories for fresh aux layers."""
    cfg = model.cfg
    if cfg.tie_embeddings:
        raise ValueError("local learning needs model.tie_embeddings=false: a tied embedding would carry gradient "
                         "from the last module's head into the first module")
    layers = list(model.layers.values())
    blocks = tuple(RopeBlock(layer, model.rope_for, model.embed if i == 0 else None) for i, layer in enumerate(layers))

    def fresh_block(i: int, *, after: int) -> nn.Module:
        block = Block(cfg)
        for name, module in block.named_modules():  # the model's init: normal(0, std), scaled residual outputs
            if isinstance(module, nn.Linear):
                last = name.rsplit(".", 1)[-1]
                std = cfg.init_std / (2 * cfg.n_layers) ** 0.5 if last in ("o_proj", "down_proj") else cfg.init_std
                nn.init.normal_(module.weight, std=std)
        return RopeBlock(block, model.rope_for)

    def fresh_head(after: int) -> nn.Module:
        head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        nn.init.normal_(head.weight, std=cfg.init_std)
        return LMHead(RMSNorm(cfg.dim, cfg.norm_eps), head)

    return Backbone(blocks=blocks, head=LMHead(model.norm, model.head), make_block=fresh_block, make_head=fresh_head)


def aux_builder(method: str, *, aux_depth: int) -> AuxBuilder:
    """greedy: a fresh head on each module; auglocal: sampled later layers (pyramidal depth); man: EMA + LB."""
    if method == "greedy":
        return aux_builders.greedy(n_blocks=0)
    if method == "auglocal":
        return aux_builders.auglocal(depth=aux_depth)
    if method == "man":
        return aux_builders.man()
    raise ValueError(f"unknown local method {method!r}; choose one of {', '.join(METHODS)}")


def lm_loss(scale: float = 1.0, *, reduction: str = "mean") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Next-token cross-entropy of (B, T, V) logits (mean, or sum over tokens), times `scale`: 1 / accumulation
    steps for a mean, 1 / the step's tokens for a sum (microbatches with padding weigh by their real tokens)."""

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=-100, reduction=reduction) * scale

    return loss
