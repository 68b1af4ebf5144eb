"""One trainer registry and one schedule table: what the config accepts, what --help lists and what runs agree."""
from __future__ import annotations

import pytest
import torch.distributed.pipelining.schedules as torch_schedules

from core.config import ConfigError
from training.config import load_config
from training.parallel.schedules import SCHEDULES
from training.pretrain import parse_args
from training.trainers.baseline import Trainer
from training.trainers.registry import TRAINERS, trainer_class


@pytest.mark.parametrize("name", list(TRAINERS))
def test_every_registered_trainer_loads_and_carries_its_name(name):
    cls = trainer_class(name)
    assert issubclass(cls, Trainer) and cls.name == name  # the name a checkpoint's meta.json records
    assert load_config("tiny", [f"trainer={name}"]).trainer == name


def test_the_six_methods_of_the_mission_are_registered():
    assert set(TRAINERS) == {"baseline", "streambp", "pipeline", "skippipe", "local", "decoupled"}


def test_a_misspelt_trainer_or_schedule_names_the_close_one():
    with pytest.raises(ConfigError, match="trainer: 'skipipe' is not one of .*; did you mean 'skippipe'"):
        load_config("tiny", ["trainer=skipipe"])
    with pytest.raises(ConfigError, match="pipeline.schedule: 'skippipe' is not one of"):
        load_config("tiny", ["pipeline.schedule=skippipe"])  # a trainer of its own now, not a schedule


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_every_schedule_names_a_torch_schedule_class(name):
    info = SCHEDULES[name]
    cls = getattr(torch_schedules, info.torch_class)
    multi = issubclass(cls, torch_schedules.PipelineScheduleMulti)  # several stages per rank
    assert multi == (info.stages_per_rank == 2), name
    assert load_config("tiny", [f"pipeline.schedule={name}"]).pipeline.schedule == name


def test_help_lists_every_trainer_and_schedule(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, even inside "zero-bubble"
    assert all(f"{name}:" in text for name in [*TRAINERS, *SCHEDULES])
