"""What each pipeline rank will carry, from the shapes alone, so a user sees the balance before any step runs:
parameters, forward FLOPs per token and an estimate of peak activation memory per rank, with and without
vocabulary parallelism (printed by the pipeline trainer at start and by `training.pretrain --dry-run`).

FLOPs are partition.py's unit costs (forward, per token; the backward is about twice everywhere). The activation
estimate per token and layer is Korthikanti et al.'s 34·d + 5·heads·T bytes at 16-bit (scaled to the training
dtype), times the microbatches a stage holds at its peak (the simulator's replay of the schedule), plus the
logits: the last stage's full (T, V) in fp32 and its gradient without vocabulary parallelism, the V/p shard
while a microbatch waits between passes S and T with it.
"""
from __future__ import annotations

from dataclasses import dataclass

from training.model.config import ModelConfig
from training.parallel.partition import EMBED, HEAD, NORM, Layout, unit_cost


@dataclass(frozen=True)
class RankLoad:
    rank: int
    stages: tuple[int, ...]
    params: int
    flops_per_token: float  # forward
    activation_bytes: float  # estimated peak


def unit_params(cfg: ModelConfig, unit: str) -> int:
    d, kv = cfg.dim, cfg.kv_heads * cfg.head_dim
    if unit in (EMBED, HEAD):
        return cfg.vocab_size * d
    if unit == NORM:
        return d
    return 2 * d * d + 2 * d * kv + 3 * d * cfg.hidden_dim + 2 * d


def layer_activation_bytes(cfg: ModelConfig, seq_len: int, dtype_bytes: int) -> float:
    """Saved activations of one block per token (Korthikanti et al. 2022: 34·d + 5·a·s at 2 bytes)."""
    return (34 * cfg.dim + 5 * cfg.n_heads * seq_len) * dtype_bytes / 2


def rank_loads(cfg: ModelConfig, layout: Layout, stages_of: list[list[int]], *, seq_len: int, rows: int,
               in_flight: dict[int, int], vocab_parallel: bool, held_logits: int = 1,
               dtype_bytes: int = 4) -> list[RankLoad]:
    """Per rank: its stages' parameters and FLOPs (plus 1/p of the vocabulary layers with vocabulary parallelism)
    and peak activations for `rows` × `seq_len` tokens per microbatch, `in_flight[stage]` microbatches at peak."""
    p = len(stages_of)
    tokens = rows * seq_len
    vocab_params = unit_params(cfg, EMBED) * (1 if cfg.tie_embeddings else 2)
    vocab_flops = unit_cost(cfg, EMBED, seq_len) + unit_cost(cfg, HEAD, seq_len)
    shard_rows = -(-cfg.vocab_size // p)
    loads = []
    for rank, stages in enumerate(stages_of):
        names = [u for s in stages for u in layout.stages[s]]
        params = sum(unit_params(cfg, u) for u in names)
        if cfg.tie_embeddings and EMBED in names and HEAD in names:
            params -= unit_params(cfg, HEAD)  # one tensor on this rank
        flops = sum(unit_cost(cfg, u, seq_len) for u in names)
        act = 0.0
        for s in stages:
            layers = sum(1 for u in layout.stages[s] if u.startswith("layers."))
            per_mb = tokens * layers * layer_activation_bytes(cfg, seq_len, dtype_bytes)
            if HEAD in layout.stages[s]:
                per_mb += tokens * cfg.vocab_size * 4 * 2  # fp32 logits and their gradient
            act += in_flight.get(s, 0) * per_mb
        if vocab_parallel:
            params += vocab_params * shard_rows // cfg.vocab_size
            flops += vocab_flops / p
            act += held_logits * tokens * shard_rows * 4
        loads.append(RankLoad(rank, tuple(stages), params, flops, act))
    return loads


def spread(values: list[float]) -> float:
    """max / min (1.0 is perfect balance)."""
    low = min(values)
    return max(values) / low if low > 0 else float("inf")


def format_loads(loads: list[RankLoad], *, title: str) -> str:
    """A table a person reads before the run: one line per rank, then each column's max/min."""
    lines = [title, f"  {'rank':>4} {'stages':<10} {'params':>12} {'fwd MFLOP/token':>16} {'activations (est.)':>19}"]
    for x in loads:
        lines.append(f"  {x.rank:>4} {','.join(map(str, x.stages)):<10} {x.params:>12,} {x.flops_per_token / 1e6:>16.3f} "
                     f"{x.activation_bytes / 2**20:>15.1f} MiB")
    lines.append(f"  max/min: params {spread([x.params for x in loads]):.2f}, FLOPs "
                 f"{spread([x.flops_per_token for x in loads]):.2f}, activations "
                 f"{spread([x.activation_bytes for x in loads]):.2f}")
    return "\n".join(lines)


def plan_report(cfg: ModelConfig, plan: object, *, seq_len: int, rows: int, vocab_parallel: bool,
                barriers: int = 1) -> str:
    """The table of `format_loads` for a pipeline Plan (pipeline.py), peaks from a replay of its schedule."""
    from training.parallel.simulator import Costs, schedule_order, simulate
    from training.parallel.vocab_schedule import VocabCosts, held_logits, replay

    base = schedule_order(plan.runtime_schedule(), n_ranks=plan.pp, n_microbatches=plan.microbatches,
                          stages_per_rank=plan.stages_per_rank if plan.stages_per_rank > 1 else None)
    held = 0
    if vocab_parallel:
        share = (unit_cost(cfg, HEAD, seq_len) / plan.pp) / (sum(plan.layout.costs) / len(plan.layout.costs))
        _, spans = replay(base, barriers=barriers, costs=Costs(), vocab=VocabCosts(s=share, t=2 * share))
        from training.parallel.timeline import peak_in_flight

        peaks, held = peak_in_flight(spans), max(held_logits(spans).values())
    else:
        peaks = simulate(base).peak_in_flight
    loads = rank_loads(cfg, plan.layout, [plan.stages_of(r) for r in range(plan.pp)], seq_len=seq_len, rows=rows,
                       in_flight=peaks, vocab_parallel=vocab_parallel, held_logits=held)
    how = f"vocabulary parallel, Vocab-{barriers}" if vocab_parallel else "embedding and head on the end stages"
    return format_loads(loads, title=f"pipeline balance ({plan.schedule}, {plan.pp} ranks, {plan.microbatches} "
                                     f"microbatches of {rows} x {seq_len} tokens; {how}):")
