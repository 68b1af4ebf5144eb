"""Trainers by name; each shares the baseline loop and replaces how micro-batches become gradients."""
from training.trainers.baseline import Trainer

TRAINERS: dict[str, type[Trainer]] = {"baseline": Trainer}

__all__ = ["TRAINERS", "Trainer"]
