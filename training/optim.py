"""AdamW with decoupled decay on matrices only, and the learning-rate schedule as a pure function of the step."""
from __future__ import annotations

import math

import torch
from torch import nn

from training.config import OptimSection


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay 2-D weights (projections, head); leave norms and the embedding alone (Llama/nanoGPT practice)."""
    decay, no_decay, seen = [], [], set()
    tied = getattr(getattr(model, "cfg", None), "tie_embeddings", False)
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        # a pipeline stage holding only the head of a tied model owns a copy of the embedding: treat it alike
        is_embedding = name.endswith("embed.weight") or (tied and name.endswith("head.weight"))
        (decay if p.ndim >= 2 and not is_embedding else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]  # an empty group breaks DCP's optimizer state (a tied vocabulary shard)


def build_optimizer(model: nn.Module, cfg: OptimSection, *, fused: bool = False) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             eps=cfg.eps, fused=fused or None)


def lr_at(step: int, cfg: OptimSection, total_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then cosine to min_lr_ratio * lr."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    decay = cfg.decay_steps if cfg.decay_steps is not None else max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, decay))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
