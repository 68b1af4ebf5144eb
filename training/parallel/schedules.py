"""The pipeline schedules by name: the one table that the config, --help, the runtime (pipeline.py) and the
simulator read. Each row names its class in torch.distributed.pipelining.schedules; nothing here imports torch."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScheduleInfo:
    torch_class: str
    stages_per_rank: int  # model chunks per rank unless pipeline.stages_per_rank says otherwise
    v_placement: bool  # a rank holds the first and the last stage (zbv, dualpipev): exactly 2 chunks per rank
    summary: str  # one line for --help


SCHEDULES = {
    "gpipe": ScheduleInfo("ScheduleGPipe", 1, False, "all forwards, then all backwards"),
    "1f1b": ScheduleInfo("Schedule1F1B", 1, False, "one forward, one backward (GPipe's order with fewer microbatches "
                         "than stages)"),
    "interleaved1f1b": ScheduleInfo("ScheduleInterleaved1F1B", 2, False, "Megatron's interleaved 1F1B"),
    "zero-bubble": ScheduleInfo("ScheduleInterleavedZeroBubble", 2, False,
                                "ZB-H1 style: the backward split into input and weight gradients"),
    "zbv": ScheduleInfo("ScheduleZBVZeroBubble", 2, True, "zero bubble, V placement"),
    "dualpipev": ScheduleInfo("ScheduleDualPipeV", 2, True, "DeepSeek's DualPipe, V placement"),
}
SCHEDULE_NAMES = tuple(SCHEDULES)
SINGLE_STAGE = frozenset(name for name, info in SCHEDULES.items() if info.stages_per_rank == 1)
V_PLACEMENT = frozenset(name for name, info in SCHEDULES.items() if info.v_placement)


def describe_schedules() -> str:
    """--schedule's help: each name and what it does."""
    return "; ".join(f"{name}: {info.summary}" for name, info in SCHEDULES.items())
