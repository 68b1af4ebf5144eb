"""The process-wide random generators (torch, CUDA, numpy, Python): seeding, saving and restoring them together.

A resumed run restores every one of them, and a fresh run seeds every one of them, so nothing a checkpoint
records depends on the state a new process happens to start with.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def derived_seed(*keys: int) -> int:
    """A 32-bit seed for a tuple of keys (seed, rank, ...): independent streams per key (numpy's SeedSequence)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def seed_rngs(seed: int) -> None:
    """Seed torch (every device), numpy's and Python's global generators alike."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def rng_state(device: torch.device) -> dict[str, Any]:
    """The generators this process draws from: torch's CPU one, numpy's, Python's, and on a GPU the one of `device`.

    Only this rank's own GPU: the node's others belong to other ranks, and their number may differ on resume."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore the generators `state` holds (a checkpoint may lack some: the resume is then not bitwise)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "python" in state:
        random.setstate(state["python"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
