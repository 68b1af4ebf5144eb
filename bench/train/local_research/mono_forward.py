"""Mono-Forward (Gong, Li, Abdulla, arXiv 2501.09238) on any backbone, as a case of the local core.

Each block is its own module with a projection M_i to the class logits (the backbone's head factory on that
block) and a local softmax cross-entropy; inputs are detached. One pass serves training and prediction: the last
projection (the real head) predicts, or any earlier one (the "best layer" of the anchors' §3.7 run).
Differences from the paper, kept for one code path: M_i is the backbone's head (a Linear with a bias; on a CNN,
average pooling first).
"""
from __future__ import annotations

import torch

from training.local.aux_nets import greedy
from training.local.core import Backbone, LocalModel, plan_modules


def mono_forward(backbone: Backbone) -> LocalModel:
    """One module per block, each with a projection head; train it with local_step."""
    n = len(backbone.blocks)
    return LocalModel(backbone, groups=plan_modules(n, n), aux=greedy(n_blocks=0))


@torch.no_grad()
def layer_predictions(model: LocalModel, x: torch.Tensor) -> torch.Tensor:
    """(modules, B): the label each module's own head predicts."""
    return torch.stack([logits.argmax(dim=1) for logits in model.module_logits(x)])
