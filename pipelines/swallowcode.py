"""SwallowCode: Python files or The Stack v2 shards -> syntax and pylint filters -> SGCR and SCOR LLM rewrites.

python -m pipelines.swallowcode            # the built-in sample -> ./output/swallowcode/ (filters only without --model)
python -m pipelines.swallowcode --input='stack-v2/*.parquet' --output=out/code --model=/models/Llama-3.3-70B-Instruct \\
    --backend=vllm
python -m pipelines.swallowcode --input='src/**/*.py' --config=filter   # syntax + pylint only, no model

Stages: language -> syntax (compile(), never executed) -> pylint >= 7 after the comment penalty -> SGCR -> SCOR
-> compile and lint of the result (stored) -> Parquet with the original, each rewrite and every score. Generations
are cached under <output>/_generations/, so a rerun never pays twice. Nothing is downloaded. Without --input the
job reads its built-in sample (pipelines/sample_code.py: clean, broken, badly linted, comment-heavy and non-Python
snippets); there, without a model, the LLM stages are off and the run says so. Your own data without a model is an
error while the recipe has rewrites (use --config=filter for the filters alone).
"""
from __future__ import annotations

import dataclasses
import sys

import apache_beam as beam

from core.job_config import flag_keys, load_job_config
from pipelines.jobs import expand_inputs, job_main, parse_args
from pipelines.options import LlmOptions, RefineryOptions, ShardOptions, split_globs
from pipelines.run_info import run_record
from pipelines.sample_code import SAMPLE_CODE_PATH
from pipelines.staging import plan_outputs, run_staged
from transforms.beam.code import LanguageFn, LintFn, SyntaxFn
from transforms.beam.flow import Flow
from transforms.beam.metrics import Counted
from transforms.beam.read_samples import ReadSamples
from transforms.beam.rewrite import Rewrite, rewritten
from transforms.beam.stages import REJECTED
from transforms.beam.write import WriteRejected, WriteRows
from transforms.code.recipe import CodeRecipe, RewriteStage, code_recipe_from_mapping
from transforms.code.syntax import SyntaxConfig
from transforms.io.parquet import CODE_SCHEMA
from transforms.io.samples import Sample
from transforms.llm.cache import Generation
from transforms.llm.parse import REPETITION, has_degenerate_repetition, parse_scor, parse_sgcr
from transforms.llm.prompts import load_prompt
from transforms.llm.recipe import generation_config

DEFAULT_OUTPUT = "./output/swallowcode"
ARTIFACTS = ("documents/part-*.parquet", "stats.json")  # what a run writes under --output (and replaces)
REJECTED_ARTIFACTS = ("part-*.parquet",)
OPTIONS = (RefineryOptions, ShardOptions, LlmOptions)  # the flags the job takes
LLM_OFF = "off: no --model given; pass --model=PATH to run SGCR and SCOR"  # the built-in sample without a model


def parse_rewrite(sample: Sample, generation: Generation, *, stage: str, cfg: RewriteStage) -> Sample | str:
    """SGCR's improved-code block or SCOR's first block as the sample's new text, or the drop reason."""
    if stage == "sgcr":
        parsed = parse_sgcr(generation.text)
        columns = {"sgcr_score": parsed.score}
    else:
        parsed, columns = parse_scor(generation.text), {}
    if not parsed.keep:
        return parsed.reason
    if cfg.drop_repetition and has_degenerate_repetition(parsed.code):
        return REPETITION
    if stage == "sgcr":
        columns["sgcr_code"] = parsed.code
    return rewritten(sample, generation, parsed.code, stage=stage, **columns)


def to_row(sample: Sample, *, last_rewrite: str | None) -> dict:
    """A shard row (transforms.io.parquet.CODE_SCHEMA); without rewrites the text is the filtered input."""
    e, llm = sample.extra, (lambda key: e.get(f"{last_rewrite}_{key}") if last_rewrite else None)
    return {"id": sample.id, "source": sample.source, "text": sample.text, "original": e.get("original", sample.text),
            "char_count": len(sample.text), "model": llm("model"), "finish_reason": llm("finish_reason"),
            "prompt_tokens": llm("prompt_tokens"), "completion_tokens": llm("completion_tokens"),
            "language": sample.language, "python": e.get("python"), "pylint_score": e.get("pylint_score"),
            "sgcr_score": e.get("sgcr_score"), "sgcr_code": e.get("sgcr_code"),
            "final_syntax_error": e.get("final_syntax_error"), "final_pylint_score": e.get("final_pylint_score")}


def build(p: beam.Pipeline, *, recipe: CodeRecipe, generation, inputs: list[str], output: str,
          rejected_output: str | None, cache_prefix: str) -> list[str]:
    """The recipe as a Beam graph -> its stages; a stage set to null in the recipe is not in the graph."""
    flow = Flow(emit_rejected=rejected_output is not None)
    emit = flow.emit_rejected
    samples = flow.apply(p | "Globs" >> beam.Create(inputs), "Read", ReadSamples(
        fields=recipe.read.fields, max_bytes=recipe.read.max_bytes, source_language=recipe.source_language,
        emit_rejected=emit), "read")
    if recipe.languages is not None:
        samples = flow.apply(samples, "Language", Counted(LanguageFn(recipe.languages, emit_rejected=emit),
                                                          tags=(REJECTED,)), "language")
    if recipe.syntax is not None:
        samples = flow.apply(samples, "Syntax", Counted(SyntaxFn(recipe.syntax, emit_rejected=emit),
                                                        tags=(REJECTED,)), "syntax")
    if recipe.lint is not None:
        samples = flow.apply(samples, "Lint", Counted(LintFn(
            recipe.lint, stage="lint", column="pylint_score", filter=True, emit_rejected=emit), tags=(REJECTED,)),
            "lint")
    for name, stage in recipe.rewrites:
        samples = flow.apply(samples, name.upper(), Rewrite(
            prompt=load_prompt(stage.prompt), generation=generation, cache_prefix=cache_prefix, stage=name,
            parse=lambda s, g, n=name, c=stage: parse_rewrite(s, g, stage=n, cfg=c), emit_rejected=emit),
            f"{name}_llm", name, kept="samples")
    if recipe.rewrites and recipe.final_check:
        samples = flow.apply(samples, "FinalSyntax", Counted(SyntaxFn(
            recipe.syntax or SyntaxConfig(), emit_rejected=emit, final=True), tags=(REJECTED,)), "final_syntax")
        if recipe.lint is not None:
            samples = flow.apply(samples, "FinalLint", Counted(LintFn(
                recipe.lint, stage="final_lint", column="final_pylint_score", filter=False, emit_rejected=emit),
                tags=(REJECTED,)), "final_lint")
    last = recipe.rewrites[-1][0] if recipe.rewrites else None
    flow.apply(samples | "ToRows" >> beam.Map(to_row, last_rewrite=last), "Write", WriteRows(
        f"{output}/documents", schema=CODE_SCHEMA, num_shards=recipe.output.num_shards, codec=recipe.output.codec,
        row_group_bytes=recipe.output.row_group_bytes), "write")
    flow.write_rejected(WriteRejected(rejected_output, codec=recipe.output.codec))
    return flow.stages


def run(argv: list[str] | None = None) -> dict:
    """Parse flags, validate the inputs, outputs and recipe (and the model when a rewrite is on), run into a
    staging folder, swap it in, and return the stats report."""
    overrides, options = parse_args(argv, OPTIONS, prog="python -m pipelines.swallowcode")
    common, llm, shards = (options.view_as(RefineryOptions), options.view_as(LlmOptions),
                           options.view_as(ShardOptions))
    flags = {**flag_keys(("num_shards", shards.num_shards, "output.num_shards")), **llm.keys()}
    loaded = load_job_config(common.config or "default", folder="swallowcode", what="recipe",
                             build=code_recipe_from_mapping, overrides=overrides, flags=flags)
    globs, output = split_globs(common.input), (common.output or DEFAULT_OUTPUT).rstrip("/")
    recipe, llm_stages = llm_plan(loaded.config, sample=not globs)
    generation = None
    if recipe.rewrites:
        generation = generation_config(recipe.generation, where=f"{loaded.where}: generation")
    globs = globs or [str(SAMPLE_CODE_PATH)]
    inputs = expand_inputs(globs, expected=".py files or JSONL/Parquet shards with a text column")
    out, rej = plan_outputs(output, shards.rejected_output, artifacts=ARTIFACTS, rejected_artifacts=REJECTED_ARTIFACTS)
    report = run_staged(out=out, rejected=rej, options=options,
                        build=lambda p, output, rejected: build(
                            p, recipe=recipe, generation=generation, inputs=inputs.patterns, output=output,
                            rejected_output=rejected, cache_prefix=f"{out.final}/_generations"),
                        extra={**run_record(job="swallowcode", loaded=loaded, inputs=globs, files=inputs.files,
                                            config=recipe),
                               "model": generation.model_name if generation else None, "llm_stages": llm_stages})
    if llm_stages == LLM_OFF:
        print(f"built-in sample ({SAMPLE_CODE_PATH.name}), llm_stages {LLM_OFF}")
    return report


def llm_plan(recipe: CodeRecipe, *, sample: bool) -> tuple[CodeRecipe, str]:
    """The recipe to run and what its LLM stages do: on the built-in sample without a model the rewrites are
    switched off (the filters still show their work); on the user's data the missing model stays an error."""
    if not recipe.rewrites:
        return recipe, "off: the recipe has no rewrite stages"
    if sample and not recipe.generation.get("model_path"):
        return dataclasses.replace(recipe, sgcr=None, scor=None), LLM_OFF
    return recipe, "on: " + ", ".join(name for name, _ in recipe.rewrites)

if __name__ == "__main__":
    sys.exit(job_main(sys.argv[1:], name="swallowcode", doc=__doc__, option_classes=OPTIONS,
                      run=run))
