"""Forward-Forward (Hinton 2022, arXiv 2212.13345), supervised variant, for MLPs.

The label is embedded in the input (one-hot, appended); positives carry the true label, negatives a random wrong
one. Each layer reads the length-normalised, detached output of the layer below (so only its direction passes
on) and is trained alone to push goodness above θ on positives and below θ on negatives. Prediction tries every
label and picks the one with the largest goodness, summed over the chosen layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True, kw_only=True, slots=True)
class FFConfig:
    """Defaults are those of the anchors' digits run (§3.7): θ=2 on mean goodness, label one-hot x5."""

    theta: float = 2.0  # goodness threshold
    per_unit: bool = True  # goodness = mean of squares (mohammadpz/pytorch_forward_forward); False = Hinton's sum
    label_scale: float = 5.0  # value of the hot entry in the appended one-hot label
    classes: int = 10


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Unit length per row, so a layer sees only the direction of the one below (Hinton's layer normalisation)."""
    return x / (x.norm(dim=1, keepdim=True) + 1e-4)


class ForwardForward(nn.Module):
    """An MLP of Linear+ReLU layers on [image, label one-hot]; layers() gives each layer's activity."""

    def __init__(self, *, d_in: int, widths: Sequence[int], cfg: FFConfig = FFConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        dims = (d_in + cfg.classes, *widths)
        self.layers = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(len(widths)))

    def embed(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.cfg.label_scale * F.one_hot(labels, self.cfg.classes).to(x.dtype)], dim=1)

    def embed_neutral(self, x: torch.Tensor) -> torch.Tensor:
        """The image with every label equally likely (Hinton's neutral label), for probing features."""
        neutral = x.new_full((x.shape[0], self.cfg.classes), self.cfg.label_scale / self.cfg.classes)
        return torch.cat([x, neutral], dim=1)

    def activities(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's ReLU output on the embedded input z; inputs are normalised and detached layer by layer."""
        outs = []
        for layer in self.layers:
            z = torch.relu(layer(normalise(z.detach())))
            outs.append(z)
        return outs

    def goodness(self, h: torch.Tensor) -> torch.Tensor:
        sq = h.pow(2)
        return sq.mean(dim=1) if self.cfg.per_unit else sq.sum(dim=1)

    @torch.no_grad()
    def label_goodness(self, x: torch.Tensor) -> torch.Tensor:
        """(layers, B, classes): each layer's goodness with each label embedded."""
        b, c = x.shape[0], self.cfg.classes
        labels = torch.arange(c).repeat(b)  # (B*C,)
        acts = self.activities(self.embed(x.repeat_interleave(c, dim=0), labels))
        return torch.stack([self.goodness(h).view(b, c) for h in acts])

    def predict(self, x: torch.Tensor, *, layers: Sequence[int] | None = None) -> torch.Tensor:
        """Labels with the largest goodness summed over `layers` (all by default)."""
        g = self.label_goodness(x)
        picked = g if layers is None else g[list(layers)]
        return picked.sum(dim=0).argmax(dim=1)


def wrong_labels(y: torch.Tensor, classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random label other than the true one, per row."""
    shift = torch.randint(1, classes, y.shape, generator=generator)
    return (y + shift) % classes


def ff_step(model: ForwardForward, x: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator) -> list[float]:
    """One FF step: per layer, softplus(θ - g_pos) + softplus(g_neg - θ), backward inside that layer only."""
    theta, losses = model.cfg.theta, []
    z_pos = model.embed(x, y)
    z_neg = model.embed(x, wrong_labels(y, model.cfg.classes, generator))
    for layer in model.layers:
        h_pos = torch.relu(layer(normalise(z_pos.detach())))
        h_neg = torch.relu(layer(normalise(z_neg.detach())))
        loss = (F.softplus(theta - model.goodness(h_pos)) + F.softplus(model.goodness(h_neg) - theta)).mean()
        loss.backward()
        losses.append(loss.item())
        z_pos, z_neg = h_pos, h_neg
    return losses
