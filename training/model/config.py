"""The shape of the Llama-style decoder, with the sizes of the ablation ladder (Blu-WERP: 150M, 400M, 1B)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from training.bounds import at_least, check_range, positive


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Hyperparameters of `training.model.Llama`; field names follow Llama's, defaults Llama-3's choices."""

    vocab_size: int
    """Rows of the embedding and the head; must be at least the tokenizer's vocabulary."""
    dim: int = 768
    """Width of the residual stream."""
    n_layers: int = 12
    """Decoder blocks."""
    n_heads: int = 12
    """Query heads; the head size is dim / n_heads."""
    n_kv_heads: int | None = None
    """Grouped-query attention: fewer key/value heads than query heads (None = n_heads, plain multi-head)."""
    ffn_dim: int | None = None
    """SwiGLU hidden size; None = 8/3 * dim rounded up to a multiple of `multiple_of` (Llama's rule)."""
    multiple_of: int = 256
    """Round the default SwiGLU size up to a multiple of this (GPU-friendly shapes)."""
    norm_eps: float = 1e-5
    """RMSNorm epsilon."""
    rope_theta: float = 10000.0
    """RoPE base; larger values (500000 in Llama 3) suit longer contexts."""
    max_seq_len: int = 2048
    """Longest sequence the RoPE table covers; the data's seq_len must not exceed it."""
    tie_embeddings: bool = False
    """Share the embedding matrix with the output head (saves vocab * dim parameters)."""
    init_std: float = 0.02
    """Std of the normal weight init; residual output projections get init_std / sqrt(2 * n_layers)."""
    dropout: float = 0.0
    """Residual dropout on each block's attention and MLP outputs while training (GPT-2's resid_pdrop); 0 = none,
    as in Llama pretraining. Not supported by trainer=streambp (it recomputes forwards)."""

    def __post_init__(self) -> None:
        self.check_shape()

    def check_shape(self) -> None:
        """Checks a run config can make before any data is read (its vocabulary and context may still be None)."""
        at_least(self, 2, "vocab_size")
        at_least(self, 1, "max_seq_len", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "multiple_of")
        positive(self, "norm_eps", "rope_theta", "init_std")
        check_range("dropout", self.dropout, 0, 1, open_high=True)
        if self.dim % self.n_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must divide dim ({self.dim})")
        if (self.dim // self.n_heads) % 2:
            raise ValueError(f"the head size dim / n_heads = {self.dim // self.n_heads} must be even for RoPE")
        if self.n_heads % self.kv_heads:
            raise ValueError(f"n_kv_heads ({self.kv_heads}) must divide n_heads ({self.n_heads})")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def hidden_dim(self) -> int:
        if self.ffn_dim:
            return self.ffn_dim
        hidden = int(2 * 4 * self.dim / 3)
        return self.multiple_of * -(-hidden // self.multiple_of)

    def with_vocab(self, vocab_size: int) -> "ModelConfig":
        return replace(self, vocab_size=vocab_size)


def param_count(cfg: ModelConfig, *, embedding: bool = True) -> int:
    """Parameters, from the shape alone; embedding=False counts what multiplies (blocks, norm, head)."""
    d, h, kv = cfg.dim, cfg.hidden_dim, cfg.kv_heads * cfg.head_dim
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * h + 2 * d
    blocks_norm = cfg.n_layers * per_layer + d
    table = cfg.vocab_size * d
    if not embedding:
        return blocks_norm + table  # the head is a matmul even when it shares the embedding's weights
    return blocks_norm + table + (0 if cfg.tie_embeddings else table)


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token, 6N + 12·L·d·T (PaLM appendix B): matmul parameters plus attention scores."""
    matmul_params = param_count(cfg, embedding=False)
    return 6.0 * matmul_params + 12.0 * cfg.n_layers * cfg.dim * seq_len
