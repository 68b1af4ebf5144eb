"""Small backbones for local-learning checks: an MLP and a mini-ResNet of BasicBlocks, each with its aux factories.

They also show how to plug a network into the core: give its blocks in order, its head, a block factory that
knows each block's width (and stride) and a head factory (training-anchors §3.7 and §4 for the sizes).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from training.local.core import Backbone


def dense(d_in: int, d_out: int) -> nn.Sequential:
    """One MLP layer: Linear then ReLU."""
    return nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU())


def mlp(*, d_in: int = 64, widths: Sequence[int] = (256, 256, 256), classes: int = 10) -> Backbone:
    """64-256-256-256-10 by default, the MLP of the anchors' digits run (§3.7); one block per hidden layer."""
    dims = (d_in, *widths)
    return Backbone(
        blocks=tuple(dense(dims[i], dims[i + 1]) for i in range(len(widths))),
        head=nn.Linear(widths[-1], classes),
        make_block=lambda i, *, after: dense(widths[after], widths[i]),
        make_head=lambda after: nn.Linear(widths[after], classes),
    )


class BasicBlock(nn.Module):
    """He et al.'s two 3x3 convs with a residual; a 1x1 projection when width or stride changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out else
                     nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def pooled_head(channels: int, classes: int) -> nn.Sequential:
    """Global average pool, then a linear classifier (AugLocal's head, without its BatchNorm1d)."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes))


def resnet(*, c_in: int = 1, widths: Sequence[int] = (16, 16, 32, 32), strides: Sequence[int] = (1, 1, 2, 1),
           classes: int = 10) -> Backbone:
    """Block 0 is a conv-BN-ReLU stem, the rest BasicBlocks; on 1x8x8 digits the defaults give 8x8 -> 4x4 maps."""
    if len(widths) != len(strides):
        raise ValueError(f"widths ({len(widths)}) and strides ({len(strides)}) must have one entry per block")
    scale = [1]  # downsampling factor after each block, so a fresh block knows which stride to use
    for s in strides[1:]:
        scale.append(scale[-1] * s)
    stem = nn.Sequential(nn.Conv2d(c_in, widths[0], 3, strides[0], 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
    blocks = (stem, *(BasicBlock(widths[i - 1], widths[i], strides[i]) for i in range(1, len(widths))))
    return Backbone(
        blocks=blocks,
        head=pooled_head(widths[-1], classes),
        make_block=lambda i, *, after: BasicBlock(widths[after], widths[i], scale[i] // scale[after]),
        make_head=lambda after: pooled_head(widths[after], classes),
    )
