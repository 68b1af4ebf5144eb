"""Local-learning trainer (`--trainer=local --method=greedy|auglocal|man --blocks=K`) for our language model.

The decoder is cut into K gradient-isolated modules (training/local/): each module trains on its own local
next-token loss through an aux net and frees its activations at once; the last module trains through the real
head. Evaluation and the reported loss use the real head on the whole network, so perplexities compare with
backprop's at equal tokens. Data parallel like StreamBP: gradients are averaged over ranks once per step
(DDP's hooks expect one backward per forward; local learning runs K).

Checkpoints hold the decoder under its own parameter names (embed, layers.N, norm, head) plus the aux nets
under `auxes.k`, so `python -m training.export` turns a local run into a Hugging Face model like any other,
and the decoupled pipeline (trainers/decoupled.py) writes the very same keys.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from training.distributed import all_reduce_grads, all_reduce_sum
from training.local.core import LocalModel, local_step, plan_modules, trainable
from training.local.lm_backbone import aux_builder, backbone, lm_loss
from training.model import Llama
from training.trainers.baseline import Batch, Trainer


class AuxNets(nn.Module):
    """The aux nets of the modules this rank trains, keyed by module index (checkpoint keys `auxes.k...`)."""

    def __init__(self, auxes: dict[int, nn.Module]) -> None:
        super().__init__()
        self.auxes = nn.ModuleDict({str(k): aux for k, aux in auxes.items()})


def build_local(trainer: Trainer, blocks: int) -> tuple[Llama, LocalModel]:
    """The seeded decoder and its local-learning view with `blocks` modules (same init on every rank)."""
    cfg = trainer.cfg.local
    llama = Llama(trainer.model_cfg)
    try:
        local = LocalModel(backbone(llama), groups=plan_modules(trainer.model_cfg.n_layers, blocks),
                           aux=aux_builder(cfg.method, aux_depth=cfg.aux_depth))
    except ValueError as err:
        raise ValueError(f"local.{cfg.method} with {blocks} blocks: {err}") from err
    return llama, local


def joint_norm(norms: list[float]) -> float:
    """The norm of all modules' gradients together, from each module's own norm."""
    return math.sqrt(sum(n * n for n in norms))


def module_record(losses: list[float], norms: list[float]) -> dict[str, float]:
    """Per-module local losses (and, with per-module clipping, gradient norms) as logged metrics."""
    return {**{f"local_loss_{k}": v for k, v in enumerate(losses)},
            **{f"local_grad_norm_{k}": v for k, v in enumerate(norms)}}


class LocalTrainer(Trainer):
    name = "local"
    wrap_ddp = False
    decoupled = False  # modules on one rank; the decoupled pipeline puts each on its own

    def clip_scope(self) -> str:
        scope = self.cfg.local.clip
        return ("module" if self.decoupled else "global") if scope == "auto" else scope

    def build_parts(self) -> list[nn.Module]:
        llama, self.local = build_local(self, self.cfg.local.blocks)
        self.llama = self.model = llama.to(self.d.device)  # evaluation runs the decoder itself, through the real head
        self.local.to(self.d.device)
        self.module_losses: list[float] = []
        self.module_norms: list[float] = []
        return [self.llama, AuxNets(dict(enumerate(self.local.auxes)))]

    def clip(self) -> float:
        """Global or per-module clipping (local.clip); returns the whole network's norm before clipping."""
        if self.clip_scope() == "global":
            return super().clip()
        last = len(self.local.parts) - 1
        self.module_norms = [self.clip_params(trainable([part, self.local.head if k == last else self.local.auxes[k]]))
                             for k, part in enumerate(self.local.parts)]
        return joint_norm(self.module_norms)

    def forward_backward(self, micro_batches: list[Batch]) -> torch.Tensor:
        """Each module's local loss backpropagates inside the module; returns the real head's loss."""
        loss_fn = lm_loss(1.0 / len(micro_batches))
        sums = [0.0] * len(self.local.parts)
        for inputs, targets in micro_batches:
            with self.autocast():
                for k, value in enumerate(local_step(self.local, inputs, targets, loss_fn=loss_fn)):
                    sums[k] += value
        if self.d.initialized:
            params = [p for p in self.local.parameters() if p.requires_grad and p.grad is not None]
            all_reduce_grads(self.d, params)
            for p in params:
                p.grad.div_(self.d.world)
        self.module_losses = sums
        return torch.tensor(sums[-1])

    def after_step(self) -> dict[str, float]:
        """MAN's EMA copies follow the next block after every optimizer step; module losses are logged."""
        self.local.after_step()
        if self.step % self.cfg.log.every:
            return {}
        losses = all_reduce_sum(self.d, self.module_losses)  # each rank's mean over its own batches
        return module_record([v / self.d.world for v in losses], self.module_norms)
