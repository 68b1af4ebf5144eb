"""SkipPipe's single-process simulation: run one microbatch along a path of stages through the whole model.

SkipPipe (Blagoev, Chen, Ersoy, arXiv 2502.19913) sends each microbatch through stage 0, then a subset of the
other stages, possibly with one adjacent pair swapped; embedding comes first and norm + head (the loss) last, on
whichever stage the path ends. Its convergence simulator (gensyn-ai/skippipe simulate-training/trainer.py) keeps one
full model and passes a layer `order` list to forward; `layer_order` builds that list from a path and a layout, and
`path_forward` runs it. Skipped layers are not run, so they get no gradient from that microbatch.
"""
from __future__ import annotations

from typing import Sequence

import torch

from training.model import Llama
from training.parallel.partition import Layout

Stages = Sequence[Sequence[str]]  # stage -> units, as Layout.stages


def stage_layers(layout: Layout | Stages, n_stages: int | None = None) -> tuple[tuple[int, ...], ...]:
    """Layer indices each stage holds, in stage order; `n_stages` (e.g. the SkipProblem's) must match if given."""
    stages = layout.stages if isinstance(layout, Layout) else layout
    if n_stages is not None and n_stages != len(stages):
        raise ValueError(f"the layout has {len(stages)} stages but {n_stages} were asked for; build the layout "
                         f"with n_stages={n_stages} (partition.uniform_layout) or plan paths over {len(stages)} stages")
    return tuple(tuple(int(u.split(".", 1)[1]) for u in stage if u.startswith("layers.")) for stage in stages)


def path_stages(path: Sequence[int] | Sequence[tuple[int, int]]) -> list[int]:
    """Stage indices of a path given as stages or as the planner's (stage, node) visits."""
    return [int(v[0]) if isinstance(v, (tuple, list)) else int(v) for v in path]


def layer_order(path: Sequence[int] | Sequence[tuple[int, int]], layers: Sequence[Sequence[int]]) -> list[int]:
    """The simulator's `order` list: stage 0's layers, then each visited stage's layers in path order."""
    stages = path_stages(path)
    if not stages or stages[0] != 0:
        raise ValueError(f"path {stages} must start at stage 0 (it holds the embedding); prepend 0")
    if len(set(stages)) != len(stages) or not all(0 <= s < len(layers) for s in stages):
        raise ValueError(f"path {stages} must visit distinct stages among 0..{len(layers) - 1}")
    return [i for s in stages for i in layers[s]]


def run_layers(model: Llama, tokens: torch.Tensor, order: Sequence[int]) -> torch.Tensor:
    """tokens (B, T) -> logits (B, T, V) through embed, the blocks listed in `order` (in that order), norm, head."""
    h = model.embed(tokens) if model.embed is not None else tokens  # (B, T, d)
    rope = model.rope_for(h.shape[1])
    for i in order:
        h = model.layers[str(i)](h, rope)
    if model.norm is not None:
        h = model.norm(h)
    return model.head(h) if model.head is not None else h  # (B, T, V)


def path_forward(model: Llama, tokens: torch.Tensor, *, path: Sequence[int] | Sequence[tuple[int, int]],
                 layout: Layout | Stages) -> torch.Tensor:
    """Logits of `tokens` along a SkipPipe path (stages or (stage, node) visits); the full path is model(tokens)."""
    return run_layers(model, tokens, layer_order(path, stage_layers(layout)))


def dropped_forward(model: Llama, tokens: torch.Tensor, *, keep_stages: Sequence[int],
                    layout: Layout | Stages) -> torch.Tensor:
    """Inference with stages dropped: the kept stages in their natural order (stage 0 must be kept)."""
    return path_forward(model, tokens, path=sorted(set(keep_stages)), layout=layout)
