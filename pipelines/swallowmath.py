"""SwallowMath: math web text (FineMath-like JSONL or Parquet) -> LLM math-tutor rewrites -> Parquet shards.

python -m pipelines.swallowmath            # the built-in sample -> ./output/swallowmath/ (no rewrite without --model)
python -m pipelines.swallowmath --input='finemath/*.parquet' --output=out/math --model=/models/Llama-3.3-70B-Instruct \\
    --backend=vllm --runner=DirectRunner
python -m pipelines.swallowmath --input=... --model=llama-70b --backend=openai --base_url=http://pool:8000/v1 ...

Every finished generation is cached under <output>/_generations/ (keyed by model, sampling and prompt), so a rerun
or a retried bundle never pays for it twice. Nothing is downloaded: --model is a local folder or a served name.
Without --input the job reads its built-in sample (pipelines/sample_math.py: forum pages with navigation, cookie
notes, a question and a terse answer); there, without a model, the rewrite is off and the rows carry the original
text, and the run says so. Your own data without a model is an error.
"""
from __future__ import annotations

import sys

import apache_beam as beam

from core.job_config import flag_keys, load_job_config
from pipelines.jobs import expand_inputs, job_main, parse_args
from pipelines.options import LlmOptions, RefineryOptions, ShardOptions, split_globs
from pipelines.run_info import run_record
from pipelines.sample_math import SAMPLE_MATH_PATH
from pipelines.staging import plan_outputs, run_staged
from transforms.beam.flow import Flow
from transforms.beam.read_samples import ReadSamples
from transforms.beam.rewrite import Rewrite, rewritten
from transforms.beam.write import WriteRejected, WriteRows
from transforms.io.parquet import MATH_SCHEMA
from transforms.io.samples import Sample
from transforms.llm.cache import Generation
from transforms.llm.handlers import GenerationConfig
from transforms.llm.parse import parse_math
from transforms.llm.prompts import load_prompt
from transforms.llm.recipe import MathRecipe, generation_config, math_recipe_from_mapping

DEFAULT_OUTPUT = "./output/swallowmath"
STAGE = "rewrite"
ARTIFACTS = ("documents/part-*.parquet", "stats.json")  # what a run writes under --output (and replaces)
REJECTED_ARTIFACTS = ("part-*.parquet",)
OPTIONS = (RefineryOptions, ShardOptions, LlmOptions)  # the flags the job takes
LLM_OFF = "off: no --model given; pass --model=PATH to run the rewrite"  # the built-in sample without a model


def parse(sample: Sample, generation: Generation, *, min_chars: int) -> Sample | str:
    """The rewrite as the sample's new text, or the parser's drop reason."""
    parsed = parse_math(generation.text, min_chars=min_chars)
    if not parsed.keep:
        return parsed.reason
    return rewritten(sample, generation, parsed.text, stage=STAGE, final_answer=parsed.final_answer)


def to_row(sample: Sample) -> dict:
    """A shard row (transforms.io.parquet.MATH_SCHEMA); without the rewrite the text is the input's, model null."""
    e = sample.extra
    return {"id": sample.id, "source": sample.source, "text": sample.text, "original": e.get("original", sample.text),
            "char_count": len(sample.text), "model": e.get(f"{STAGE}_model"),
            "finish_reason": e.get(f"{STAGE}_finish_reason"), "prompt_tokens": e.get(f"{STAGE}_prompt_tokens"),
            "completion_tokens": e.get(f"{STAGE}_completion_tokens"), "final_answer": e.get("final_answer")}


def build(p: beam.Pipeline, *, recipe: MathRecipe, generation: GenerationConfig | None, inputs: list[str],
          output: str, rejected_output: str | None, cache_prefix: str) -> list[str]:
    """read -> rewrite (not without a generation config) -> shards, and the rejections when asked for -> stages."""
    flow = Flow(emit_rejected=rejected_output is not None)
    samples = flow.apply(p | "Globs" >> beam.Create(inputs), "Read", ReadSamples(
        fields=recipe.read.fields, max_bytes=recipe.read.max_bytes, emit_rejected=flow.emit_rejected), "read")
    if generation is not None:
        samples = flow.apply(samples, "Rewrite", Rewrite(
            prompt=load_prompt(recipe.prompt), generation=generation, cache_prefix=cache_prefix, stage=STAGE,
            parse=lambda s, g: parse(s, g, min_chars=recipe.min_output_chars), emit_rejected=flow.emit_rejected),
            f"{STAGE}_llm", STAGE, kept="samples")
    flow.apply(samples | "ToRows" >> beam.Map(to_row), "Write", WriteRows(
        f"{output}/documents", schema=MATH_SCHEMA, num_shards=recipe.output.num_shards, codec=recipe.output.codec,
        row_group_bytes=recipe.output.row_group_bytes), "write")
    flow.write_rejected(WriteRejected(rejected_output, codec=recipe.output.codec))
    return flow.stages


def run(argv: list[str] | None = None) -> dict:
    """Parse flags, validate the inputs, outputs, recipe and model settings, run into a staging folder, swap it
    in, and return the stats report."""
    overrides, options = parse_args(argv, OPTIONS, prog="python -m pipelines.swallowmath")
    common, llm, shards = (options.view_as(RefineryOptions), options.view_as(LlmOptions),
                           options.view_as(ShardOptions))
    flags = {**flag_keys(("num_shards", shards.num_shards, "output.num_shards")), **llm.keys()}
    loaded = load_job_config(common.config or "default", folder="swallowmath", what="recipe",
                             build=math_recipe_from_mapping, overrides=overrides, flags=flags)
    recipe = loaded.config
    globs, output = split_globs(common.input), (common.output or DEFAULT_OUTPUT).rstrip("/")
    rewrite_off = not globs and not recipe.generation.get("model_path")  # the built-in sample without a model
    generation = None if rewrite_off else generation_config(recipe.generation, where=f"{loaded.where}: generation")
    load_prompt(recipe.prompt)  # a missing or broken prompt file fails now
    globs = globs or [str(SAMPLE_MATH_PATH)]
    inputs = expand_inputs(globs, expected="JSONL or Parquet files with a text column")
    out, rej = plan_outputs(output, shards.rejected_output, artifacts=ARTIFACTS, rejected_artifacts=REJECTED_ARTIFACTS)
    report = run_staged(out=out, rejected=rej, options=options,
                        build=lambda p, output, rejected: build(
                            p, recipe=recipe, generation=generation, inputs=inputs.patterns, output=output,
                            rejected_output=rejected, cache_prefix=f"{out.final}/_generations"),
                        extra={**run_record(job="swallowmath", loaded=loaded, inputs=globs, files=inputs.files,
                                            config=recipe),
                               "model": generation.model_name if generation else None,
                               "backend": generation.backend if generation else None,
                               "llm_stages": LLM_OFF if rewrite_off else f"on: {STAGE}"})
    if rewrite_off:
        print(f"built-in sample ({SAMPLE_MATH_PATH.name}), llm_stages {LLM_OFF} (the rows carry the original text)")
    return report

if __name__ == "__main__":
    sys.exit(job_main(sys.argv[1:], name="swallowmath", doc=__doc__, option_classes=OPTIONS,
                      run=run))
