"""LLM generation as a Beam stage: cached responses first, RunInference only on the misses, each result saved at once.

(key, messages) -> (key, Generation). The cache (transforms/llm/cache.py) is checked in the same fused stage
that runs the model, so a bundle Beam retries skips what its first attempt already wrote, and a rerun of the
job pays only for what is missing. A crash loses at most the batches in flight.
"""
from __future__ import annotations

import logging
import uuid
from typing import Iterator, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from transforms import stats
from transforms.beam.metrics import Counted, CountingFn
from transforms.llm.cache import CorruptEntry, Generation, GenerationCache, Message, cache_key
from transforms.llm.handlers import GenerationConfig, Handler, PromptCounter, build_handler, require_backend

STAGE = "generate"
MISSES = "misses"
PROMPT_TOO_LONG = "generate.prompt_too_long"  # rendered prompt over max_prompt_tokens: skipped, never sent
CACHE_UNREADABLE = "generate.cache_unreadable"  # a cache file that did not decode: regenerated and overwritten
CACHE_HITS, MODEL_CALLS, GENERATED = "cache_hits", "model_calls", "generated"  # <stage>|<kind> counters

Request = tuple[str, list[Message]]


class BeamStore:
    """The cache's Store over Beam FileSystems, so the prefix may be local, gs:// or s3://."""

    def exists(self, path: str) -> bool:
        return FileSystems.exists(path)

    def read(self, path: str) -> bytes:
        with FileSystems.open(path) as fh:
            return fh.read()

    def write_atomic(self, path: str, data: bytes) -> None:
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with FileSystems.create(tmp) as fh:
            fh.write(data)
        FileSystems.rename([tmp], [path])  # readers only ever open the final name, so never half an entry


def prompt_chars(messages: list[Message]) -> int:
    return sum(len(m["content"]) for m in messages)


class LookupFn(CountingFn):
    """Answers a request from the cache, drops an over-long prompt, or tags it a miss for the model."""

    def __init__(self, cfg: GenerationConfig, *, cache_prefix: str, stage: str) -> None:
        self.cfg, self.cache_prefix, self.stage = cfg, cache_prefix, stage

    def setup(self) -> None:
        self.cache = GenerationCache(self.cache_prefix, BeamStore())
        self.counters = self.stage_counters(self.stage)
        self.count_tokens = (PromptCounter(self.cfg.tokenizer_path or self.cfg.model_path)
                             if self.cfg.max_prompt_tokens is not None else None)

    def process(self, request: Request) -> Iterator:
        key, messages = request
        self.counters.count_in(prompt_chars(messages))
        ck = cache_key(model=self.cfg.model_name, sampling=self.cfg.sampling(), messages=messages)
        try:
            hit = self.cache.get(ck)
        except CorruptEntry as exc:
            logging.getLogger("refinery").warning("%s", exc)
            self.counters.count_error(CACHE_UNREADABLE)
            hit = None
        if hit is not None:
            self.counters.count(CACHE_HITS)
            self.counters.count_out(len(hit.text))
            yield key, hit
        elif self.count_tokens is not None and self.count_tokens(messages) > self.cfg.max_prompt_tokens:
            self.counters.count_dropped(PROMPT_TOO_LONG)
        else:
            yield beam.pvalue.TaggedOutput(MISSES, (key, (ck, messages)))


class LLMModelHandler(ModelHandler):
    """RunInference's view of a backend: batches of (cache key, messages) -> Generations, model calls counted."""

    def __init__(self, cfg: GenerationConfig, *, stage: str) -> None:
        # full batches, not Beam's time-adaptive sizes: the model wants them full, and a seeded rerun sees the same
        super().__init__(min_batch_size=cfg.batch_size, max_batch_size=cfg.batch_size)
        self.cfg, self.stage = cfg, stage

    def load_model(self) -> Handler:
        handler = build_handler(self.cfg)
        handler.load()
        return handler

    def run_inference(self, batch: Sequence[tuple[str, list[Message]]], model: Handler,
                      inference_args: dict | None = None) -> list[PredictionResult]:
        generations = model.generate([messages for _, messages in batch])
        if len(generations) != len(batch):
            raise RuntimeError(f"{self.cfg.backend} returned {len(generations)} responses for {len(batch)} prompts")
        # The first result of each call says so, for WriteCacheFn to count model calls as data (stats.json): a
        # count made here, inside RunInference's DoFn, could only be a Beam metric.
        return [PredictionResult((*example, i == 0), g, model_id=self.cfg.model_name)
                for i, (example, g) in enumerate(zip(batch, generations))]

    def get_num_bytes(self, batch: Sequence[tuple[str, list[Message]]]) -> int:
        return sum(prompt_chars(messages) for _, messages in batch)

    def get_metrics_namespace(self) -> str:
        return f"{stats.NAMESPACE}.{self.stage}.run_inference"


class WriteCacheFn(CountingFn):
    """Saves each generation the moment it arrives, then passes it on as (key, Generation)."""

    def __init__(self, *, cache_prefix: str, stage: str) -> None:
        self.cache_prefix, self.stage = cache_prefix, stage

    def setup(self) -> None:
        self.cache = GenerationCache(self.cache_prefix, BeamStore())
        self.counters = self.stage_counters(self.stage)

    def process(self, keyed: tuple[str, PredictionResult]) -> Iterator[tuple[str, Generation]]:
        key, result = keyed
        ck, _, first_of_call = result.example
        self.cache.put(ck, result.inference)
        if first_of_call:
            self.counters.count(MODEL_CALLS)
        self.counters.count(GENERATED)
        self.counters.count_out(len(result.inference.text))
        yield key, result.inference


class Generate(beam.PTransform):
    """(key, messages) requests -> (key, Generation) for cache hits and new generations alike."""

    def __init__(self, cfg: GenerationConfig, *, cache_prefix: str, stage: str = STAGE) -> None:
        super().__init__()
        require_backend(cfg)  # a missing vLLM/transformers fails here, while the pipeline is built
        self.cfg, self.cache_prefix, self.stage = cfg, cache_prefix, stage

    def expand(self, requests):
        hits, misses = requests | "LookupCache" >> Counted(
            LookupFn(self.cfg, cache_prefix=self.cache_prefix, stage=self.stage), tags=(MISSES,))
        generated = (misses
                     | "RunInference" >> RunInference(KeyedModelHandler(LLMModelHandler(self.cfg, stage=self.stage)))
                     | "WriteCache" >> Counted(WriteCacheFn(cache_prefix=self.cache_prefix, stage=self.stage)))
        return (hits, generated) | "Merge" >> beam.Flatten()
