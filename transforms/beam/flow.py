"""A job's stages as one chain that reads as its recipe: the job applies its stages in order through a Flow, which
keeps the rest. Each stage's kept records go on; its rejected records are gathered for the one rejected-records
writer; the report names of its stages are kept in the order applied, the order stats.json shows them in."""
from __future__ import annotations

from typing import Any

import apache_beam as beam

from transforms.beam.stages import REJECTED


class Flow:
    """Applies a job's stages in order; see the module docstring."""

    def __init__(self, *, emit_rejected: bool) -> None:
        self.emit_rejected = emit_rejected
        self.stages: list[str] = []
        self._rejected: list = []

    def apply(self, records, label: str, transform: beam.PTransform, *stages: str, kept: str | None = None) -> Any:
        """`records | label >> transform`, counted under `stages` -> the records that go on. A transform returns
        its kept records alone, (kept, rejected...) or a dict holding `kept` and REJECTED."""
        out = records | label >> transform
        self.stages.extend(stages)
        if isinstance(out, dict):
            self._gather(out.get(REJECTED))
            return out[kept] if kept else out
        if isinstance(out, tuple):
            self._gather(out[1:])
            return out[0]
        return out

    def write_rejected(self, writer: beam.PTransform) -> None:
        """Every stage's rejected records through `writer`, when the job was asked to write them."""
        if self.emit_rejected and self._rejected:
            tuple(self._rejected) | "FlattenRejected" >> beam.Flatten() | "WriteRejected" >> writer

    def _gather(self, rejected) -> None:
        if isinstance(rejected, (list, tuple)):
            for r in rejected:
                self._gather(r)
        elif rejected is not None:
            self._rejected.append(rejected)
