"""Vocabulary parallelism (Yeung, Qi, Lin, Wan; MLSys 2025): the input embedding and the output layer split by
vocabulary rows over the ranks of a pipeline group, so that no stage carries them alone.

Rank r of p holds rows [r·V'/p, (r+1)·V'/p) of the vocabulary matrix, V' = V rounded up to a multiple of p.
Rows >= V are padding: no token looks them up, their logits are left out of the softmax, their gradient is 0.

The output layer, per token, with x the final hidden state and z_r = x W_rᵀ the logits of rank r's rows:
    loss = m + log s − z_target,   m = max_r m_r,   s = Σ_r s_r·exp(m_r − m),   s_r = Σ_{j in r} exp(z_j − m_r)
    ∂loss/∂z_r = softmax_r − onehot_r(target),   ∂loss/∂W_r = (∂loss/∂z_r)ᵀ x,   ∂loss/∂x = Σ_r (∂loss/∂z_r) W_r
so the forward needs three reductions over the group (the max, the sum of exponentials, the target logit) and
never the full logits. They travel as one all-gather of each rank's (m_r, s_r, target logit), combined as online
softmax combines blocks; it is left in flight, so a rank waits only where it needs the result. Two algorithms,
as the paper's:
- `barriers=2` (Vocab-2): pass S ends by starting the statistics' all-gather (barrier 1); pass T forms each
  rank's share of ∂loss/∂x and all-reduces it (barrier 2), which only the last stage waits for.
- `barriers=1` (Vocab-1): softmax_r W_r = exp(m_r − m)/s · Σ_j exp(z_j − m_r) W_j is a sum of terms each rank
  forms alone, so S gathers those and the target rows with the statistics (p× the bytes of an all-reduce, no
  second collective); ∂loss/∂x is known when that one barrier completes and T only computes the weight
  gradient, with no communication.

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


# -- the output layer ------------------------------------------------------------------------------------------


class Pending:
    """A collective in flight (gloo and NCCL run it beside the caller's compute); `wait` gives its result."""

    def __init__(self, work: object, parts: list[torch.Tensor] | torch.Tensor, *, stacked: bool) -> None:
        self.work, self.parts, self.stacked = work, parts, stacked

    def wait(self) -> torch.Tensor:
        if self.work is not None:
            self.work.wait()
            self.work = None
        return torch.stack(self.parts) if self.stacked else self.parts


def _gather(t: torch.Tensor, group: object) -> Pending:
    """Every rank's `t`, stacked in rank order (p, *t.shape), asynchronously."""
    if not dist.is_initialized():
        return Pending(None, [t], stacked=True)
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size(group))]
    return Pending(dist.all_gather(parts, t.contiguous(), group=group, async_op=True), parts, stacked=True)


def _sum_async(t: torch.Tensor, group: object) -> Pending:
    if not dist.is_initialized():
        return Pending(None, t, stacked=False)
    return Pending(dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group, async_op=True), t, stacked=False)


@dataclass
class OutputPass:
    """Pass S's work on this rank's rows and its statistics' all-gather in flight; `finish` completes it."""

    x: torch.Tensor  # (N, d), the final hidden states (the same on every rank)
    local: torch.Tensor  # (N,) target index inside this shard, -1 when the target is elsewhere or ignored
    logits: torch.Tensor  # (N, rows), this shard's logits, padding columns -inf
    counted: torch.Tensor  # (N,) 1.0 where the target is a token, 0.0 where it is ignored
    pending: Pending  # (p, N, k): every rank's max, sum-exp, target logit (and with one barrier its ∂x terms)
    m: torch.Tensor | None = None  # (N,) global max, once finished
    s: torch.Tensor | None = None  # (N,) global Σ exp(z − m)
    loss: torch.Tensor | None = None  # (N,) per-token loss, 0 where ignored (the same on every rank)
    grad_x: torch.Tensor | None = None  # (N, d) unscaled ∂loss/∂x (one barrier)


def output_forward(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, shard: VocabShard, group: object,
                   *, barriers: int = 2) -> OutputPass:
    """Pass S on this rank's rows: logits and, per token, the rows' max, Σ exp(z − max) and target logit (with one
    barrier also Σ exp(z − max)·W_j and the target's row), sent to every rank by one all-gather left in flight.
    Gathering each rank's (max, sum) and combining them online-softmax style makes the three reductions (max, sum
    of exponentials, target logit) one collective that no rank waits for until it needs the result."""
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
    inside = (targets >= shard.start) & (targets < shard.start + shard.real_rows) & (targets != IGNORE)
    local = torch.where(inside, targets - shard.start, torch.full_like(targets, -1))
    m_r = logits.max(dim=1).values  # -inf on a shard of padding only
    exp = torch.exp(logits - torch.where(torch.isfinite(m_r), m_r, torch.zeros_like(m_r))[:, None])
    rows = torch.arange(len(targets), device=targets.device)
    target_logit = torch.where(inside, logits[rows, local.clamp(min=0)], torch.zeros_like(counted))
    columns = [m_r[:, None], exp.sum(1, keepdim=True), target_logit[:, None]]
    if barriers == 1:
        zero = torch.zeros(1, x.shape[1], dtype=dtype, device=x.device)
        columns += [exp @ w, torch.where(inside[:, None], w[local.clamp(min=0)], zero)]
    return OutputPass(x=x, local=local, logits=logits, counted=counted,
                      pending=_gather(torch.cat(columns, dim=1), group))


def finish(state: OutputPass) -> OutputPass:
    """Wait for pass S's all-gather and combine it: the loss (and with one barrier ∂loss/∂x) of every token."""
    if state.loss is not None:
        return state
    every = state.pending.wait()  # (p, N, k)
    m = every[:, :, 0].max(dim=0).values
    scale = torch.exp(every[:, :, 0] - m)  # exp(m_r − m): 0 for a shard of padding only
    state.m, state.s = m, (every[:, :, 1] * scale).sum(0)
    state.loss = (m + torch.log(state.s) - every[:, :, 2].sum(0)) * state.counted
    if every.shape[2] > 3:
        d = (every.shape[2] - 3) // 2
        softmax_w = (every[:, :, 3:3 + d] * scale[:, :, None]).sum(0) / state.s[:, None]
        state.grad_x = (softmax_w - every[:, :, 3 + d:].sum(0)) * state.counted[:, None]
    return state


def output_backward(state: OutputPass, weight: torch.Tensor, grad_loss: torch.Tensor,
                    group: object) -> tuple[Pending, torch.Tensor]:
    """Pass T: (∂/∂x of Σ grad_loss·loss, in flight or ready; ∂/∂W_r, this rank's rows).

    With two barriers ∂/∂x is this rank's share, all-reduced asynchronously (barrier 2: only the last stage
    waits for it); with one, pass S's all-gather carried it."""
    finish(state)
    grad_loss = grad_loss.reshape(-1).to(state.logits.dtype) * state.counted
    g = torch.exp(state.logits - state.m[:, None]) / state.s[:, None]  # softmax over this shard's rows
    hit = state.local >= 0
    g[hit, state.local[hit]] -= 1.0
    g *= grad_loss[:, None]
    grad_w = (g.t() @ state.x.to(g.dtype)).to(weight.dtype)
    if state.grad_x is not None:
        return Pending(None, (state.grad_x * grad_loss[:, None]).to(state.x.dtype), stacked=False), grad_w
    return _sum_async((g @ weight.detach().to(g.dtype)).to(state.x.dtype), group), grad_w


class _VocabCrossEntropy(torch.autograd.Function):
    """Autograd shell over passes S and T (the pipeline runtime calls them itself, at their scheduled times)."""

    @staticmethod
    def forward(ctx, x, weight, targets, shard, group, barriers):  # noqa: ANN001, ANN205
        state = finish(output_forward(x, weight, targets, shard, group, barriers=barriers))
        ctx.state, ctx.weight, ctx.group, ctx.shape = state, weight, group, x.shape
        return state.loss.to(x.dtype).reshape(targets.shape)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        grad_x, grad_w = output_backward(ctx.state, ctx.weight, grad, ctx.group)
        return grad_x.wait().reshape(ctx.shape), grad_w, None, None, None, None


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
