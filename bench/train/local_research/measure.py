"""What a training step costs: peak saved-activation bytes (training/memory.py) and FLOPs of forward + backward.

Both are deterministic, unlike RSS or allocator peaks (training-anchors §3.1 caveat, §5 general rules).
"""
from __future__ import annotations

from typing import Callable

from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from training.memory import SavedActivations


def saved_peak_bytes(model: nn.Module, step: Callable[[], object]) -> int:
    """Peak live bytes autograd holds for backward while `step` runs (weights excluded); grads are cleared after."""
    with SavedActivations(model) as meter:
        step()
    model.zero_grad(set_to_none=True)
    return meter.peak_bytes


def step_flops(model: nn.Module, step: Callable[[], object]) -> int:
    """FLOPs of one step, forward and backward (aux nets included), as torch's flop counter sees them."""
    with FlopCounterMode(display=False) as counter:
        step()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()
