"""How big a step is and in what precision it runs: pure functions of the config, the data and the device."""
from __future__ import annotations

import torch


def accumulation_steps(*, tokens_per_step: int | None, micro_batch_size: int, seq_len: int, world: int) -> int:
    """Micro-batches per rank per optimizer step so that a step sees exactly tokens_per_step tokens."""
    per_micro = micro_batch_size * seq_len * world
    if tokens_per_step is None:
        return 1
    if tokens_per_step % per_micro:
        raise ValueError(f"train.tokens_per_step = {tokens_per_step} is not a multiple of micro_batch_size × seq_len × "
                         f"ranks = {micro_batch_size} × {seq_len} × {world} = {per_micro}; use a multiple "
                         f"(e.g. {max(1, round(tokens_per_step / per_micro)) * per_micro})")
    return tokens_per_step // per_micro


def autocast_dtype(cfg_dtype: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast where asked for or (auto) where the GPU supports it; None means plain fp32."""
    if cfg_dtype == "bf16":
        return torch.bfloat16
    if cfg_dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None
