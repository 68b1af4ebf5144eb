"""The StreamBP trainer: the baseline loop with exact sequence-chunked backprop (training/stream/).

Long sequences fit because no layer's activations exist for the whole sequence at once and full logits are
never built. The step's loss is normalised by its valid-token count over all micro-batches and ranks, so
gradient accumulation and data parallelism give exactly the gradient of one large batch's mean loss.
Data parallel without DDP's hooks (they expect one backward per forward; StreamBP runs many per layer):
gradients are summed over ranks once per optimizer step, after the last micro-batch.
"""
from __future__ import annotations

import torch
from torch import nn

from training.distributed import all_reduce_grads, all_reduce_sum
from training.stream import NextToken, StreamConfig, streambp_backward
from training.stream.objectives import IGNORE
from training.trainers.baseline import Batch, Trainer


class StreamBPTrainer(Trainer):
    name = "streambp"
    wrap_ddp = False

    def build_parts(self) -> list[nn.Module]:
        if self.model_cfg.dropout:
            raise ValueError(f"model.dropout = {self.model_cfg.dropout}: StreamBP recomputes each layer's forward in its "
                             "backward, where dropout would draw other masks than the forward did; set model.dropout=0 "
                             "or use trainer=baseline")
        return super().build_parts()

    def stream_config(self) -> StreamConfig:
        return StreamConfig(chunk=self.cfg.streambp.chunk, logits_chunk=self.cfg.streambp.logits_chunk)

    def forward_backward(self, micro_batches: list[Batch]) -> torch.Tensor:
        """Gradients of sum(-log p over valid targets) / valid targets of the whole step; returns this rank's share."""
        local = float(sum(int((targets != IGNORE).sum()) for _, targets in micro_batches))
        valid = all_reduce_sum(self.d, [local])[0]
        objective, cfg = NextToken(normalizer=max(valid, 1.0)), self.stream_config()
        total = torch.zeros((), dtype=torch.float64)
        for inputs, targets in micro_batches:
            with self.autocast():
                total += streambp_backward(self.model, inputs, targets, objective, cfg).cpu()
        all_reduce_grads(self.d, [p for p in self.model.parameters() if p.requires_grad])
        return total

    def reduce_loss(self, loss: float) -> float:
        """Each rank's share is already divided by the global token count: the sum is the step's mean."""
        return all_reduce_sum(self.d, [loss])[0]
