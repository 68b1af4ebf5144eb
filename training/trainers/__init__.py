"""Trainers by name; each shares the baseline loop and replaces how micro-batches become gradients."""
from training.trainers.baseline import Trainer
from training.trainers.local import LocalTrainer
from training.trainers.pipeline import PipelineTrainer
from training.trainers.streambp import StreamBPTrainer

TRAINERS: dict[str, type[Trainer]] = {"baseline": Trainer, "streambp": StreamBPTrainer, "pipeline": PipelineTrainer,
                                     "local": LocalTrainer}

__all__ = ["TRAINERS", "LocalTrainer", "PipelineTrainer", "StreamBPTrainer", "Trainer"]
