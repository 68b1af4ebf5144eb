"""Every trainer by its --trainer name: the one list that the config, --help and pretrain read. A class is imported
when it is chosen, so the config (which the trainers import) can read the names without importing a trainer."""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainerEntry:
    module: str
    cls: str
    summary: str  # one line for --help


TRAINERS = {
    "baseline": TrainerEntry("training.trainers.baseline", "Trainer", "the plain loop; DDP on several ranks"),
    "streambp": TrainerEntry("training.trainers.streambp", "StreamBPTrainer",
                             "StreamBP: exact backprop in sequence chunks (streambp.*)"),
    "pipeline": TrainerEntry("training.trainers.pipeline", "PipelineTrainer",
                             "pipeline parallelism on torch.distributed.pipelining (pipeline.schedule), times data "
                             "parallelism (pipeline.dp)"),
    "skippipe": TrainerEntry("training.trainers.skippipe", "SkipPipeTrainer",
                             "SkipPipe: every rank is a node; each microbatch skips planned stages (pipeline.skip)"),
    "local": TrainerEntry("training.trainers.local", "LocalTrainer",
                          "local learning: gradient-isolated modules with aux nets (local.method, local.blocks)"),
    "decoupled": TrainerEntry("training.trainers.decoupled", "DecoupledPipelineTrainer",
                              "local learning pipelined: one module per rank, no rank waits for a later one's backward"),
}
TRAINER_NAMES = tuple(TRAINERS)


def trainer_class(name: str) -> type:
    """The trainer class registered as `name` (a config has checked the name already)."""
    entry = TRAINERS[name]
    return getattr(importlib.import_module(entry.module), entry.cls)


def describe_trainers() -> str:
    """--trainer's help: each name and what it does."""
    return "; ".join(f"{name}: {entry.summary}" for name, entry in TRAINERS.items())
