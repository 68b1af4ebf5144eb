"""Vocabulary parallelism (Yeung, Qi, Lin, Wan; MLSys 2025): the input embedding and the output layer split by
vocabulary rows over the ranks of a pipeline group, so that no stage carries them alone.

Rank r of p holds rows [r·V'/p, (r+1)·V'/p) of the vocabulary matrix, V' = V rounded up to a multiple of p.
Rows >= V are padding: no token looks them up, their logits are left out of the softmax, their gradient is 0.

The output layer, per token, with x the final hidden state and z_r = x W_rᵀ the logits of rank r's rows:
    loss = m + log s − z_target,   m = max_r m_r,   s = Σ_r s_r·exp(m_r − m),   s_r = Σ_{j in r} exp(z_j − m_r)
    ∂loss/∂z_r = softmax_r − onehot_r(target),   ∂loss/∂W_r = (∂loss/∂z_r)ᵀ x,   ∂loss/∂x = Σ_r (∂loss/∂z_r) W_r
so the forward needs three reductions over the group (the max; the sum of exponentials and the target logit,
which travel in one all-reduce) and never the full logits. Two algorithms, as the paper's:
- `barriers=2` (Vocab-2): the forward pass S ends in the statistics' all-reduces (barrier 1); the backward pass T
  forms each rank's share of ∂loss/∂x and all-reduces it (barrier 2), after which the last stage can go on.
- `barriers=1` (Vocab-1): softmax_r W_r = exp(m_r − m)/s · Σ_j exp(z_j − m_r) W_j is a sum of local terms once m is
  known, so S also forms those terms and the target rows, and one all-reduce carries them with the statistics;
  ∂loss/∂x is known when S ends and T only computes the weight gradient, with no communication.

The input embedding: each rank looks up the tokens of its rows (zeros elsewhere) and an all-reduce forms the
embedding; the backward all-reduces ∂loss/∂embedding (only the first stage's is non-zero) and each rank adds
it to its rows. Tied embeddings share one shard per rank, the same tensor in both layers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

IGNORE = -100


@dataclass(frozen=True)
class VocabShard:
    """Which rows of a V-row vocabulary matrix rank `rank` of `ranks` holds."""

    vocab_size: int
    ranks: int
    rank: int

    def __post_init__(self) -> None:
        if self.ranks < 1 or not 0 <= self.rank < self.ranks:
            raise ValueError(f"rank {self.rank} of {self.ranks} ranks: need ranks >= 1 and 0 <= rank < ranks")
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {self.vocab_size}")

    @property
    def padded(self) -> int:
        """V rounded up to a multiple of the ranks."""
        return -(-self.vocab_size // self.ranks) * self.ranks

    @property
    def rows(self) -> int:
        return self.padded // self.ranks

    @property
    def start(self) -> int:
        return self.rank * self.rows

    @property
    def end(self) -> int:
        return self.start + self.rows

    @property
    def real_rows(self) -> int:
        """Rows of this shard that are vocabulary (the rest is padding)."""
        return max(0, min(self.end, self.vocab_size) - self.start)


def shard_of(full: torch.Tensor, shard: VocabShard) -> torch.Tensor:
    """This rank's rows of a (V, d) matrix, padding rows zero."""
    out = full.new_zeros(shard.rows, full.shape[1])
    out[:shard.real_rows] = full[shard.start:shard.start + shard.real_rows]
    return out


def unshard(shards: list[torch.Tensor], vocab_size: int) -> torch.Tensor:
    """The (V, d) matrix from every rank's rows in rank order, padding dropped (export, checks)."""
    return torch.cat(shards)[:vocab_size]


def _sum(t: torch.Tensor, group: object) -> torch.Tensor:
    if dist.is_initialized():  # one process without a group: the shard is the whole vocabulary
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
    return t


def _max(t: torch.Tensor, group: object) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return t


# -- the output layer ------------------------------------------------------------------------------------------


@dataclass
class OutputPass:
    """What pass S leaves for pass T: the shard's logits and the global statistics of every token."""

    x: torch.Tensor  # (N, d), the final hidden states (the same on every rank)
    local: torch.Tensor  # (N,) target index inside this shard, -1 when the target is elsewhere or ignored
    logits: torch.Tensor  # (N, rows), this shard's logits, padding columns -inf
    m: torch.Tensor  # (N,) global max
    s: torch.Tensor  # (N,) global Σ exp(z − m)
    counted: torch.Tensor  # (N,) 1.0 where the target is a token, 0.0 where it is ignored
    loss: torch.Tensor  # (N,) per-token loss, 0 where ignored (the same on every rank)
    grad_x: torch.Tensor | None = None  # (N, d) unscaled ∂loss/∂x, known after S when barriers == 1


def output_forward(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, shard: VocabShard, group: object,
                   *, barriers: int = 2) -> OutputPass:
    """Pass S on this rank's rows, ending in the barrier that makes the loss (and, with one barrier, ∂loss/∂x) known."""
    if barriers not in (1, 2):
        raise ValueError(f"barriers must be 1 (Vocab-1) or 2 (Vocab-2), got {barriers}")
    x = x.detach().reshape(-1, x.shape[-1])
    targets = targets.reshape(-1)
    dtype = torch.promote_types(x.dtype, torch.float32)
    w = weight.detach().to(dtype)
    logits = x.to(dtype) @ w.t()
    if shard.real_rows < shard.rows:
        logits[:, shard.real_rows:] = float("-inf")
    counted = (targets != IGNORE).to(dtype)
    inside = (targets >= shard.start) & (targets < shard.start + shard.real_rows)
    local = torch.where(inside, targets - shard.start, torch.full_like(targets, -1))
    m = _max(logits.max(dim=1).values, group)  # reduction 1: the max (-inf from a shard of padding only)
    rows = torch.arange(len(targets), device=targets.device)
    target_logit = torch.where(inside, logits[rows, local.clamp(min=0)], torch.zeros_like(counted))
    exp = torch.exp(logits - m[:, None])  # exp(z − m) directly: the global max is known before the sum
    if barriers == 2:
        stats = _sum(torch.stack([exp.sum(1), target_logit], dim=1), group)  # reductions 2 and 3 in one call
        s, z_t = stats[:, 0], stats[:, 1]
        grad_x = None
    else:
        d = x.shape[1]
        zero = torch.zeros(1, d, dtype=dtype, device=x.device)
        target_row = torch.where(inside[:, None], w[local.clamp(min=0)], zero)
        packed = torch.cat([exp.sum(1, keepdim=True), target_logit[:, None], exp @ w, target_row], dim=1)
        packed = _sum(packed, group)  # the one barrier carries the statistics and both halves of ∂loss/∂x
        s, z_t = packed[:, 0], packed[:, 1]
        grad_x = (packed[:, 2:2 + d] / s[:, None] - packed[:, 2 + d:]) * counted[:, None]
    loss = (m + torch.log(s) - z_t) * counted
    return OutputPass(x=x, local=torch.where(targets == IGNORE, torch.full_like(local, -1), local), logits=logits,
                      m=m, s=s, counted=counted, loss=loss, grad_x=grad_x)


def output_backward(state: OutputPass, weight: torch.Tensor, grad_loss: torch.Tensor,
                    group: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Pass T: (∂/∂x, ∂/∂W_r) of Σ grad_loss·loss; ∂/∂x is the full one, on every rank.

    With two barriers ∂/∂x is summed over the group here (barrier 2); with one, pass S formed it."""
    grad_loss = grad_loss.reshape(-1).to(state.logits.dtype) * state.counted
    g = torch.exp(state.logits - state.m[:, None]) / state.s[:, None]  # softmax over this shard's rows
    hit = state.local >= 0
    g[hit, state.local[hit]] -= 1.0
    g *= grad_loss[:, None]
    grad_w = (g.t() @ state.x.to(g.dtype)).to(weight.dtype)
    if state.grad_x is not None:
        return (state.grad_x * grad_loss[:, None]).to(state.x.dtype), grad_w
    return _sum(g @ weight.detach().to(g.dtype), group).to(state.x.dtype), grad_w


class _VocabCrossEntropy(torch.autograd.Function):
    """Autograd shell over passes S and T (the pipeline runtime calls them itself, at their scheduled times)."""

    @staticmethod
    def forward(ctx, x, weight, targets, shard, group, barriers):  # noqa: ANN001, ANN205
        state = output_forward(x, weight, targets, shard, group, barriers=barriers)
        ctx.state, ctx.weight, ctx.group, ctx.shape = state, weight, group, x.shape
        return state.loss.to(x.dtype).reshape(targets.shape)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        grad_x, grad_w = output_backward(ctx.state, ctx.weight, grad, ctx.group)
        return grad_x.reshape(ctx.shape), grad_w, None, None, None, None


def vocab_cross_entropy(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, shard: VocabShard,
                        group: object, *, barriers: int = 2) -> torch.Tensor:
    """Per-token cross-entropy (0 at ignored targets) of the logits x Wᵀ, W split by rows over `group`.

    Every rank passes the same x and targets and gets the same loss; x's gradient is the full one on every rank,
    `weight`'s that of this rank's rows. Collective: every rank of `group` calls it and its backward in order."""
    return _VocabCrossEntropy.apply(x, weight, targets, shard, group, barriers)


# -- the input embedding ---------------------------------------------------------------------------------------


def embed_forward(tokens: torch.Tensor, weight: torch.Tensor, shard: VocabShard, group: object) -> torch.Tensor:
    """The embedding of `tokens` (the same on every rank) from row shards; every rank gets the full result."""
    inside = (tokens >= shard.start) & (tokens < shard.start + shard.real_rows)
    local = torch.where(inside, tokens - shard.start, torch.zeros_like(tokens))
    return _sum(weight.detach()[local] * inside[..., None].to(weight.dtype), group)


def embed_backward(tokens: torch.Tensor, grad: torch.Tensor, shard: VocabShard, group: object) -> torch.Tensor:
    """∂/∂W_r from the embedding's output gradient, which only the first stage holds (the others pass zeros)."""
    grad = _sum(grad.detach().contiguous().clone(), group)
    inside = (tokens >= shard.start) & (tokens < shard.start + shard.real_rows)
    grad_w = grad.new_zeros(shard.rows, grad.shape[-1])
    return grad_w.index_add_(0, tokens[inside] - shard.start, grad[inside])


class _VocabEmbedding(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tokens, weight, shard, group):  # noqa: ANN001, ANN205
        ctx.tokens, ctx.shard, ctx.group = tokens, shard, group
        return embed_forward(tokens, weight, shard, group)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return None, embed_backward(ctx.tokens, grad, ctx.shard, ctx.group), None, None


def vocab_embedding(tokens: torch.Tensor, weight: torch.Tensor, shard: VocabShard, group: object) -> torch.Tensor:
    """Autograd shell over `embed_forward` / `embed_backward`: collective both ways, so every rank of `group` must
    run its backward too (a rank whose output feeds nothing backpropagates zeros)."""
    return _VocabEmbedding.apply(tokens, weight, shard, group)
