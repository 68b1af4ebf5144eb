"""The Generate stage end to end on FnApiRunner with a tiny local Llama: plumbing, counting, caching and resume."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from transforms import stats
from transforms.beam.generate import Generate
from transforms.llm.handlers import GenerationConfig, PromptCounter, build_handler

REQUESTS = [(f"doc-{i}", [{"role": "system", "content": "Rewrite this Python code."},
                          {"role": "user", "content": f"def f{i}(x):\n    return x * {i}" + " + 1" * i}])
            for i in range(6)]


def greedy(model: Path, **kw) -> GenerationConfig:
    return GenerationConfig(model_path=str(model), model_id="tiny-llama", temperature=0.0, max_tokens=5,
                            batch_size=2, **kw)


def run(cfg: GenerationConfig, requests: list, cache: Path, expected: list | None = None) -> dict[str, int]:
    """Runs the stage once; checks the outputs against `expected` (key, text) pairs; returns the stage's counters."""
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = p | beam.Create(requests) | Generate(cfg, cache_prefix=str(cache), stage="rewrite")
        texts = out | beam.MapTuple(lambda key, g: (key, g.text))
        assert_that(texts, equal_to(expected if expected is not None else []))
    return {c.key.metric.name: c.committed
            for c in p.result.metrics().query(MetricsFilter().with_namespace(stats.NAMESPACE))["counters"]}


def cached_files(cache: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in cache.rglob("*.json")}


@pytest.fixture(scope="module")
def expected(tiny_model) -> list[tuple[str, str]]:
    """What the model answers each prompt on its own, outside Beam (greedy is batch-independent)."""
    handler = build_handler(greedy(tiny_model))
    handler.load()
    return [(key, handler.generate([messages])[0].text) for key, messages in REQUESTS]


def test_second_run_is_all_cache_hits(tiny_model, expected, tmp_path):
    first = run(greedy(tiny_model), REQUESTS, tmp_path, expected)
    assert first["rewrite|docs_in"] == 6 and first["rewrite|docs_out"] == 6 and first["rewrite|generated"] == 6
    assert first["rewrite|model_calls"] == 3 and first.get("rewrite|cache_hits", 0) == 0
    assert len(cached_files(tmp_path)) == 6
    second = run(greedy(tiny_model), REQUESTS, tmp_path, expected)
    assert second["rewrite|cache_hits"] == 6 and second["rewrite|docs_out"] == 6
    assert "rewrite|model_calls" not in second and "rewrite|generated" not in second


def test_interrupted_run_regenerates_only_the_missing(tiny_model, expected, tmp_path):
    run(greedy(tiny_model), REQUESTS[:3], tmp_path, expected[:3])  # the run that "crashed" after three
    resumed = run(greedy(tiny_model), REQUESTS, tmp_path, expected)
    assert resumed["rewrite|cache_hits"] == 3 and resumed["rewrite|generated"] == 3


def test_seeded_sampling_reruns_identically(tiny_model, tmp_path):
    cfg = GenerationConfig(model_path=str(tiny_model), temperature=1.0, top_p=0.9, max_tokens=5, batch_size=3, seed=7)
    handler = build_handler(cfg)
    handler.load()
    sampled = [(key, g.text) for (key, _), g in zip(REQUESTS[:3], handler.generate([m for _, m in REQUESTS[:3]]))]
    run(cfg, REQUESTS[:3], tmp_path / "a", sampled)
    run(cfg, REQUESTS[:3], tmp_path / "b", sampled)
    assert cached_files(tmp_path / "a") == cached_files(tmp_path / "b")


def test_over_long_prompts_are_skipped_and_counted(tiny_model, expected, tmp_path):
    count = PromptCounter(str(tiny_model))
    lengths = sorted(count(messages) for _, messages in REQUESTS)
    cfg = greedy(tiny_model, max_prompt_tokens=lengths[3])  # the two longest prompts are over the limit
    kept = [(key, text) for (key, messages), (_, text) in zip(REQUESTS, expected) if count(messages) <= lengths[3]]
    counters = run(cfg, REQUESTS, tmp_path, kept)
    assert counters["rewrite|dropped|generate.prompt_too_long"] == 2 and counters["rewrite|generated"] == 4
    assert counters["rewrite|docs_in"] == 6 and counters["rewrite|docs_out"] == 4
    assert len(cached_files(tmp_path)) == 4


def test_missing_vllm_fails_while_the_pipeline_is_built(tmp_path):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(ImportError, match="refinery\\[gpu\\]"):
        Generate(GenerationConfig(backend="vllm", model_path="/models/llama"), cache_prefix=str(tmp_path))
