"""Losses written as F(S), S = sums over positions of weighted token log-probabilities, so the head can stream.

Next-token, SFT and DPO losses all depend on the logits only through per-sequence sums
S[j, b] = sum_t w[j, b, t] * log p(target[b, t]). StreamBP materialises logits one sequence chunk at a time:
a first pass (no grad) accumulates S, autograd gives dF/dS on that small tensor, and a second pass
backpropagates sum_t (dF/dS * w) * log p chunk by chunk. Losses linear in S (next-token, SFT) skip the first
pass. `reference_loss` computes the same loss from full logits, the plain-backprop ground truth of the tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

IGNORE = -100


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per position (B, T), in fp32 or better (bf16 logits are upcast); ignored positions give 0."""
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    picked = logp.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return picked * (targets != IGNORE)


class Objective(Protocol):
    """What StreamBP needs of a loss."""

    linear: bool
    """F is linear in S (dF/dS constant), so the head needs one pass, not two."""

    def weights(self, targets: torch.Tensor) -> torch.Tensor:
        """(J, B, T) weights of the sums S."""

    def loss(self, sums: torch.Tensor) -> torch.Tensor:
        """F(S) for S of shape (J, B): a scalar."""


@dataclass(frozen=True)
class NextToken:
    """Cross-entropy of next tokens: the sum over valid positions divided by `normalizer`.

    normalizer = the valid-token count of the whole optimizer step (all micro-batches, all ranks) makes
    accumulated gradients equal one big batch's mean; 1.0 gives the sum. Positions whose target is -100
    (padding, or an SFT prompt) do not count, so SFT is this objective with prompt targets masked.
    """

    normalizer: float = 1.0
    linear: bool = True

    def weights(self, targets: torch.Tensor) -> torch.Tensor:
        return ((targets != IGNORE).to(torch.float64) / self.normalizer).unsqueeze(0)

    def loss(self, sums: torch.Tensor) -> torch.Tensor:
        return -sums.sum()


def sft_targets(targets: torch.Tensor, prompt_lengths: torch.Tensor) -> torch.Tensor:
    """Targets with the prompt's positions masked: the model is scored on the response only (SFT)."""
    positions = torch.arange(targets.shape[1], device=targets.device).unsqueeze(0)
    return targets.masked_fill(positions < prompt_lengths.unsqueeze(1), IGNORE)


@dataclass(frozen=True)
class DPO:
    """Direct preference optimisation: rows [0, P) are chosen responses, rows [P, 2P) the rejected ones.

    S[b] = log p(response of row b) under the policy (sum over unmasked targets); `reference` holds the same sums
    under the frozen reference model. Loss = mean over pairs of -log sigmoid(beta * ((S_c - R_c) - (S_r - R_r))).
    """

    reference: torch.Tensor
    beta: float = 0.1
    linear: bool = False

    def weights(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets != IGNORE).to(torch.float64).unsqueeze(0)

    def loss(self, sums: torch.Tensor) -> torch.Tensor:
        s = sums[0]
        pairs = s.shape[0] // 2
        margin = (s[:pairs] - self.reference[:pairs]) - (s[pairs:] - self.reference[pairs:])
        return -F.logsigmoid(self.beta * margin).mean()


def reference_loss(objective: Objective, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The objective computed from full (B, T, V) logits: what plain backprop differentiates."""
    logp = token_logprobs(logits, targets)
    sums = (objective.weights(targets).to(logp.dtype) * logp.unsqueeze(0)).sum(-1)
    return objective.loss(sums)
