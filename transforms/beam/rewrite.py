"""Shared shell of the LLM rewrite stages: samples -> chat requests -> Generate -> parsed rewrites, counted."""
from __future__ import annotations

from typing import Callable, Iterator

import apache_beam as beam

from transforms.beam.generate import Generate
from transforms.beam.stages import REJECTED, StageFn
from transforms.io.samples import Sample
from transforms.llm.cache import Generation
from transforms.llm.handlers import GenerationConfig
from transforms.llm.prompts import Prompt, render_messages


class ToRequestFn(beam.DoFn):
    """A sample as (sample, chat messages): the sample rides along as the key, so no join is needed afterwards."""

    def __init__(self, prompt: Prompt) -> None:
        self.prompt = prompt

    def process(self, sample: Sample) -> Iterator[tuple[Sample, list[dict]]]:
        yield sample, render_messages(self.prompt, sample.text)


class ParseFn(StageFn):
    """(sample, generation) -> an output row, or a counted rejection with the parser's reason."""

    def __init__(self, *, stage: str, to_row: Callable[[Sample, Generation], dict | str], emit_rejected: bool) -> None:
        super().__init__(None, emit_rejected=emit_rejected)
        self.stage, self.to_row = stage, to_row

    def process(self, keyed: tuple[Sample, Generation]) -> Iterator:
        sample, generation = keyed
        self.counters.count_in(len(generation.text))
        row = self.to_row(sample, generation)
        if isinstance(row, str):
            yield from self.reject(sample.id, sample.source, row, generation.text)
            return
        self.counters.count_out(row["char_count"])
        yield row


class Rewrite(beam.PTransform):
    """Samples -> rows (tagged `rows`) and rejections (tagged `rejected`) through one prompt and model."""

    def __init__(self, *, prompt: Prompt, generation: GenerationConfig, cache_prefix: str, stage: str,
                 to_row: Callable[[Sample, Generation], dict | str], emit_rejected: bool) -> None:
        super().__init__()
        self.prompt, self.generation, self.cache_prefix, self.stage = prompt, generation, cache_prefix, stage
        self.to_row, self.emit = to_row, emit_rejected

    def expand(self, samples):
        parsed = (samples
                  | "ToRequest" >> beam.ParDo(ToRequestFn(self.prompt))
                  | "Generate" >> Generate(self.generation, cache_prefix=self.cache_prefix, stage=f"{self.stage}_llm")
                  | "Parse" >> beam.ParDo(ParseFn(stage=self.stage, to_row=self.to_row, emit_rejected=self.emit))
                  .with_outputs(REJECTED, main="rows"))
        return {"rows": parsed.rows, REJECTED: parsed[REJECTED]}


def rewrite_row(sample: Sample, generation: Generation, text: str) -> dict:
    """The columns every rewrite shard has (transforms.io.parquet.REWRITE_FIELDS)."""
    return {"id": sample.id, "source": sample.source, "text": text, "original": sample.text, "char_count": len(text),
            "model": generation.model, "finish_reason": generation.finish_reason,
            "prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens}

