"""Cut the model into pipeline stages of balanced cost, counting the embedding and the LM head.

The units are the model's top-level parts in order: `embed`, `layers.0` … `layers.{L-1}`, `norm`, `head`.
A stage is a contiguous run of units. Cost is forward FLOPs per token (the backward is ~2x everywhere, so it
does not change the balance): a block costs 2 x its matmul parameters plus 4·T·d for attention scores, the
head 2·d·V, the embedding a lookup. With a large vocabulary the head weighs several blocks (2V / (24d + 4T)
layers, training-anchors §1.1); torchtitan's fix is to give the first and last stage one layer less, ours is
to minimise the most expensive stage exactly (linear-partition dynamic programme over the units).
An explicit layout in the config overrides the search.
"""
from __future__ import annotations

from dataclasses import dataclass

from training.model.config import ModelConfig

EMBED, NORM, HEAD = "embed", "norm", "head"


def units(cfg: ModelConfig, *, vocab_parallel: bool = False) -> list[str]:
    """The units stages are cut from; with vocabulary parallelism the embedding and head are every rank's, not a
    stage's (training/parallel/vocab.py)."""
    if vocab_parallel:
        return [*(f"layers.{i}" for i in range(cfg.n_layers)), NORM]
    return [EMBED, *(f"layers.{i}" for i in range(cfg.n_layers)), NORM, HEAD]


def unit_cost(cfg: ModelConfig, unit: str, seq_len: int) -> float:
    """Forward FLOPs per token of one unit."""
    d, kv = cfg.dim, cfg.kv_heads * cfg.head_dim
    if unit == EMBED:
        return d  # a gather and a copy: small, but not free
    if unit == NORM:
        return 4.0 * d
    if unit == HEAD:
        return 2.0 * d * cfg.vocab_size + 5.0 * cfg.vocab_size  # matmul, then softmax and cross-entropy
    matmul = 2 * d * d + 2 * d * kv + 3 * d * cfg.hidden_dim
    return 2.0 * matmul + 4.0 * seq_len * d


@dataclass(frozen=True)
class Layout:
    """Which units each pipeline stage holds, in stage order, and what each stage costs."""

    stages: tuple[tuple[str, ...], ...]
    costs: tuple[float, ...]

    @property
    def imbalance(self) -> float:
        """Most expensive stage over the mean: 1.0 is perfect balance."""
        return max(self.costs) / (sum(self.costs) / len(self.costs))

    def stage_of(self, unit: str) -> int:
        return next(i for i, stage in enumerate(self.stages) if unit in stage)


def balanced_layout(cfg: ModelConfig, n_stages: int, *, seq_len: int, vocab_parallel: bool = False) -> Layout:
    """Contiguous stages minimising the largest stage cost; every stage gets at least one unit."""
    names = units(cfg, vocab_parallel=vocab_parallel)
    if n_stages > len(names):
        raise ValueError(f"{n_stages} pipeline stages but the model has only {len(names)} units ({', '.join(names)}); "
                         "use fewer stages or more layers")
    cost = [unit_cost(cfg, u, seq_len) for u in names]
    prefix = [0.0]
    for c in cost:
        prefix.append(prefix[-1] + c)
    n = len(names)
    inf = float("inf")
    # best[k][i]: minimal max-stage cost of cutting the first i units into k stages; cut[k][i]: where the last starts
    best = [[inf] * (n + 1) for _ in range(n_stages + 1)]
    cut = [[0] * (n + 1) for _ in range(n_stages + 1)]
    best[0][0] = 0.0
    for k in range(1, n_stages + 1):
        for i in range(k, n + 1):
            for j in range(k - 1, i):
                value = max(best[k - 1][j], prefix[i] - prefix[j])
                if value < best[k][i] - 1e-9:  # ties keep the earliest cut: deterministic
                    best[k][i], cut[k][i] = value, j
    bounds, i = [], n
    for k in range(n_stages, 0, -1):
        bounds.append((cut[k][i], i))
        i = cut[k][i]
    bounds.reverse()
    return Layout(tuple(tuple(names[a:b]) for a, b in bounds), tuple(prefix[b] - prefix[a] for a, b in bounds))


def explicit_layout(cfg: ModelConfig, stages: list[list[str]], *, seq_len: int,
                    vocab_parallel: bool = False) -> Layout:
    """A layout written in the config; checked to cover every unit once, in order."""
    names = units(cfg, vocab_parallel=vocab_parallel)
    flat = [u for stage in stages for u in stage]
    if flat != names or any(not stage for stage in stages):
        raise ValueError(f"pipeline.layout must list every unit exactly once, in order, in non-empty stages; "
                         f"the units are {names}, the layout has {stages}")
    return Layout(tuple(tuple(s) for s in stages), tuple(sum(unit_cost(cfg, u, seq_len) for u in s) for s in stages))


def uniform_layout(cfg: ModelConfig, n_stages: int, *, seq_len: int, vocab_parallel: bool = False) -> Layout:
    """Layers split evenly, embedding with the first stage and norm + head with the last: the naive cut."""
    per, extra = divmod(cfg.n_layers, n_stages)
    if per == 0:
        raise ValueError(f"{n_stages} stages for {cfg.n_layers} layers")
    stages, start = [], 0
    for s in range(n_stages):
        count = per + (1 if s < extra else 0)
        stage = [f"layers.{i}" for i in range(start, start + count)]
        start += count
        first = [EMBED] if s == 0 and not vocab_parallel else []
        last = ([NORM] if vocab_parallel else [NORM, HEAD]) if s == n_stages - 1 else []
        stages.append(first + stage + last)
    return explicit_layout(cfg, stages, seq_len=seq_len, vocab_parallel=vocab_parallel)
