"""A Llama-style decoder laid out as embedding -> blocks -> norm -> head, so trainers can cut or wrap it.

Pipeline stages keep a slice of `layers` and set `embed`/`norm`/`head` to None (forward passes through
missing parts), StreamBP runs `embed`, each block and the head on sequence chunks, and local learning
attaches heads between blocks; none of that lives here. Layers sit in a ModuleDict keyed "0".."n-1" so
parameter names survive a cut (torchtitan's layout). RoPE uses the rotate-half convention of Hugging Face's
Llama, so export is a renaming of weights, not a permutation.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.model.attention import prefix_causal_attention
from training.model.config import ModelConfig


class RMSNorm(nn.Module):
    """Root-mean-square norm computed in fp32 (or fp64) and cast back, as Llama does, so bf16 runs stay stable."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.to(torch.promote_types(dtype, torch.float32))
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def rope_table(head_dim: int, max_seq_len: int, theta: float) -> torch.Tensor:
    """cos and sin of every position, stacked as (2, max_seq_len, head_dim), in fp32."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return torch.stack([angles.cos(), angles.sin()]).float()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, T, hd) queries or keys by the (2, T, hd) table slice of their positions."""
    cos, sin = rope[0].to(x.dtype), rope[1].to(x.dtype)
    return x * cos + rotate_half(x) * sin


class Attention(nn.Module):
    """Causal self-attention with optional grouped key/value heads, on PyTorch's fused SDPA kernel."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.dim, cfg.kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.dim, cfg.kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)

    def project_kv(self, x: torch.Tensor, rope: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotated keys and values (B, Hkv, T, hd) of normed inputs x at the positions of `rope`."""
        b, t, _ = x.shape
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        return apply_rope(k, rope), v

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        """Queries of the last T positions (normed x, (B, T, d)) against all S >= T keys/values, causally."""
        b, t, _ = x.shape
        q = apply_rope(self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2), rope)  # (B, H, T, hd)
        if self.kv_heads != self.n_heads:
            repeat = self.n_heads // self.kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        out = prefix_causal_attention(q, k, v)  # the plain causal kernel when k covers exactly these positions
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        return self.attend(x, *self.project_kv(x, rope), rope)


class FeedForward(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = FeedForward(cfg.dim, cfg.hidden_dim)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout else nn.Identity()  # Identity draws no random numbers

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.attn_norm(x), rope))
        return x + self.drop(self.mlp(self.mlp_norm(x)))

    def kv(self, x: torch.Tensor, rope: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of a whole sequence, for `forward_chunk` (sequence-chunked trainers)."""
        return self.attn.project_kv(self.attn_norm(x), rope)

    def forward_chunk(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        """The block on the last positions x (B, c, d) of a prefix whose keys/values are k, v (B, Hkv, e, hd)."""
        x = x + self.drop(self.attn.attend(self.attn_norm(x), k, v, rope))
        return x + self.drop(self.mlp(self.mlp_norm(x)))


class Llama(nn.Module):
    """tokens (B, T) -> logits (B, T, V); any of embed / norm / head may be None in a pipeline stage."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed: nn.Embedding | None = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleDict({str(i): Block(cfg) for i in range(cfg.n_layers)})
        self.norm: RMSNorm | None = RMSNorm(cfg.dim, cfg.norm_eps)
        self.head: nn.Linear | None = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        self.register_buffer("rope", rope_table(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta), persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Normal(0, init_std) weights; residual output projections scaled by 1/sqrt(2·n_layers) (GPT-2)."""
        std = self.cfg.init_std
        residual_std = std / math.sqrt(2 * self.cfg.n_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                last = name.rsplit(".", 1)[-1]
                nn.init.normal_(module.weight, mean=0.0, std=residual_std if last in ("o_proj", "down_proj") else std)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        self.rope = rope_table(self.cfg.head_dim, self.cfg.max_seq_len, self.cfg.rope_theta).to(self.rope.device)

    def rope_for(self, seq_len: int, offset: int = 0) -> torch.Tensor:
        if offset + seq_len > self.cfg.max_seq_len:
            raise ValueError(f"positions up to {offset + seq_len} exceed model.max_seq_len = {self.cfg.max_seq_len}; "
                             "raise max_seq_len in the model config or use shorter sequences")
        return self.rope[:, offset:offset + seq_len]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) if self.embed is not None else x
        rope = self.rope_for(h.shape[1])
        for layer in self.layers.values():
            h = layer(h, rope)
        if self.norm is not None:
            h = self.norm(h)
        return self.head(h) if self.head is not None else h


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor, *, ignore_index: int = -100,
                    reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of (B, T, V) logits against (B, T) targets, computed in fp32."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=ignore_index, reduction=reduction)
