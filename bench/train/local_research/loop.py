"""A minimal training loop shared by the local methods, their backprop twin, the tests and bench.train.local_digits."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

Step = Callable[[torch.Tensor, torch.Tensor], list[float]]


def fit(params: list[nn.Parameter], step: Step, x: torch.Tensor, y: torch.Tensor, *, lr: float, epochs: int,
        batch_size: int, seed: int, after_step: Callable[[], None] | None = None) -> list[float]:
    """Adam over shuffled mini-batches; `step` computes and backpropagates its losses. Returns summed loss per epoch."""
    opt = torch.optim.Adam(params, lr=lr)
    g = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(epochs):
        order, total, batches = torch.randperm(len(x), generator=g), 0.0, 0
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad(set_to_none=True)
            total += sum(step(x[idx], y[idx]))
            opt.step()
            if after_step is not None:
                after_step()
            batches += 1
        history.append(total / batches)
    return history


@torch.no_grad()
def accuracy(predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows whose predicted label is y."""
    return (predict(x) == y).float().mean().item()


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, forward: Callable[[torch.Tensor], object], x: torch.Tensor, *,
                          batch_size: int) -> None:
    """Recompute BatchNorm running statistics over x with the final weights ("precise BN"), then switch to eval.

    Running averages collected while training lag the weights; on the digits ResNet this cost local methods 7-9
    points of test accuracy against 1 for backprop (bench/train/local_digits.py), so every method is recalibrated.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    model.train()
    for start in range(0, len(x), batch_size):
        forward(x[start:start + batch_size])
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.eval()
