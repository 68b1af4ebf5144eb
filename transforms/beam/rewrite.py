"""Shared shell of the LLM rewrite stages: samples -> chat requests -> Generate -> parsed rewrites, counted."""
from __future__ import annotations

from typing import Callable, Iterator

import apache_beam as beam

from transforms import stats
from transforms.beam.generate import Generate
from transforms.beam.metrics import Counted
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
    """(sample, generation) -> the rewritten sample, or a counted rejection with the parser's reason."""

    def __init__(self, *, stage: str, parse: Callable[[Sample, Generation], Sample | str], emit_rejected: bool) -> None:
        super().__init__(None, emit_rejected=emit_rejected)
        self.stage, self.parse = stage, parse

    def process(self, keyed: tuple[Sample, Generation]) -> Iterator:
        sample, generation = keyed
        self.counters.start_clock()
        self.counters.count_in(len(sample.text), words=stats.word_count(sample.text))
        out = self.parse(sample, generation)
        if isinstance(out, str):
            yield from self.reject(sample.id, sample.source, out, generation.text)
            return
        self.counters.count_out(len(out.text), words=stats.word_count(out.text))
        self.counters.stop_clock()
        yield out


class Rewrite(beam.PTransform):
    """Samples -> rewritten samples (tagged `samples`) and rejections (tagged `rejected`) through one prompt."""

    def __init__(self, *, prompt: Prompt, generation: GenerationConfig, cache_prefix: str, stage: str,
                 parse: Callable[[Sample, Generation], Sample | str], emit_rejected: bool) -> None:
        super().__init__()
        self.prompt, self.generation, self.cache_prefix, self.stage = prompt, generation, cache_prefix, stage
        self.parse, self.emit = parse, emit_rejected

    def expand(self, samples):
        parsed = (samples
                  | "ToRequest" >> beam.ParDo(ToRequestFn(self.prompt))
                  | "Generate" >> Generate(self.generation, cache_prefix=self.cache_prefix, stage=f"{self.stage}_llm")
                  | "Parse" >> Counted(ParseFn(stage=self.stage, parse=self.parse, emit_rejected=self.emit),
                                       tags=(REJECTED,)))
        return {"samples": parsed[0], REJECTED: parsed[1]}


def rewritten(sample: Sample, generation: Generation, text: str, *, stage: str, **columns) -> Sample:
    """The sample with its text replaced by a rewrite; the input stays as `original`, and what the model did
    goes to `<stage>_*` columns, so chained rewrites (SGCR then SCOR) keep every step."""
    extra = {"original": sample.text, **sample.extra, **columns, f"{stage}_model": generation.model,
             f"{stage}_finish_reason": generation.finish_reason, f"{stage}_prompt_tokens": generation.prompt_tokens,
             f"{stage}_completion_tokens": generation.completion_tokens}
    return Sample(id=sample.id, text=text, source=sample.source, language=sample.language, extra=extra)

