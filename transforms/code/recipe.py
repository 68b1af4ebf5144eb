"""The swallowcode recipe (configs/swallowcode/*.yaml) as validated dataclasses; every stage can be switched off."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from core.config import ConfigError, from_mapping
from transforms.code.lint import LintConfig
from transforms.code.syntax import SyntaxConfig
from transforms.llm.recipe import SampleReadConfig, ShardConfig, pop_generation


@dataclass(frozen=True, kw_only=True, slots=True)
class RewriteStage:
    """One LLM rewrite: its prompt, and whether looping outputs are dropped."""

    prompt: str  # a name under configs/prompts or a .yaml path
    drop_repetition: bool = True  # SwallowCode's degenerate-output filter on the rewritten code


@dataclass(frozen=True, kw_only=True, slots=True)
class CodeRecipe:
    """SwallowCode: language -> syntax -> pylint -> SGCR -> SCOR -> syntax and pylint of the result -> shards."""

    name: str = "custom"
    read: SampleReadConfig = SampleReadConfig()
    languages: tuple[str, ...] | None = ("Python",)  # kept values of the language column; null = keep all
    source_language: str = "Python"  # the language given to .py files read directly
    syntax: SyntaxConfig | None = SyntaxConfig()
    lint: LintConfig | None = LintConfig()
    sgcr: RewriteStage | None = None
    scor: RewriteStage | None = None
    final_check: bool = True  # compile and lint the rewritten code and store both (SwallowCode did not filter)
    generation: Mapping[str, Any] = field(default_factory=dict)  # GenerationConfig keys; model_path from --model
    output: ShardConfig = ShardConfig()

    @property
    def rewrites(self) -> list[tuple[str, RewriteStage]]:
        return [(name, stage) for name, stage in (("sgcr", self.sgcr), ("scor", self.scor)) if stage is not None]


SWITCHABLE = ("languages", "syntax", "lint", "sgcr", "scor")


def code_recipe_from_mapping(data: Mapping[str, Any], *, where: str) -> CodeRecipe:
    """Validate a parsed YAML recipe; generation keys are checked now, their values once --model is merged."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a recipe is a mapping of sections, got {type(data).__name__}")
    data = dict(data)
    generation = pop_generation(data, where=where)
    off = [name for name in SWITCHABLE if name in data and data[name] is None]  # null switches a stage off
    for name in off:
        data.pop(name)
    recipe = from_mapping(CodeRecipe, data, where=where)
    return dataclasses.replace(recipe, generation=generation, **{name: None for name in off})
