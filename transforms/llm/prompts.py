"""Prompts live in configs/prompts/*.yaml so a rewrite's wording is versioned data, and its hash keys the outputs.

A prompt file holds `name`, `version`, a `system` prompt, a `user` template with one `{text}` placeholder,
and optional one-shot `examples` (user/assistant pairs sent before the real document).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path


from core.config import from_mapping, load_yaml
from core.resources import find_config, shipped_configs

PLACEHOLDER = "{text}"
PROMPTS_DIR = "prompts"
# SwallowMath skipped documents whose templated prompt exceeded this many characters (vLLM max_model_len,
# finemath-4+-rewrite-v1; data-seeds.md §2.2-2.3).
SWALLOW_MAX_PROMPT_CHARS = 102_688

Message = dict[str, str]


@dataclass(frozen=True, kw_only=True, slots=True)
class Example:
    """One one-shot turn pair, sent verbatim before the real document."""

    user: str
    assistant: str

    def __post_init__(self) -> None:
        if not self.user.strip() or not self.assistant.strip():
            raise ValueError("an example needs a non-empty `user` and `assistant`; fill both or drop the example")


@dataclass(frozen=True, kw_only=True, slots=True)
class Prompt:
    """A chat prompt: the system turn, the one-shot turns and the template the document fills."""

    name: str
    version: int  # bump on any wording change: outputs are keyed by the rendered hash, old ones keep theirs
    system: str
    user: str = PLACEHOLDER  # the last user turn; `{text}` is replaced by the document (no str.format)
    examples: tuple[Example, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must be non-empty; use the file stem (sgcr, scor, swallowmath)")
        if self.version < 1:
            raise ValueError(f"version ({self.version}) must be >= 1")
        if not self.system.strip():
            raise ValueError(f"prompt {self.name!r}: system must be non-empty")
        count = self.user.count(PLACEHOLDER)
        if count != 1:
            raise ValueError(f"prompt {self.name!r}: user template has {count} {PLACEHOLDER} placeholders; it needs exactly 1")


@dataclass(frozen=True, kw_only=True, slots=True)
class PromptConfig:
    """Which prompt a rewrite stage sends, and the longest prompt it will send."""

    prompt: str  # a name under configs/prompts (sgcr, scor, swallowmath) or a path to a .yaml file
    # Documents whose rendered messages exceed this many characters are skipped (None: no limit);
    # SwallowMath used SWALLOW_MAX_PROMPT_CHARS, SwallowCode no limit.
    max_prompt_chars: int | None = None

    def __post_init__(self) -> None:
        if not self.prompt:
            raise ValueError(f"prompt must be a name ({', '.join(available_prompts())}) or a .yaml path")
        if self.max_prompt_chars is not None and self.max_prompt_chars <= 0:
            raise ValueError(f"max_prompt_chars ({self.max_prompt_chars}) must be > 0, or null for no limit")


def available_prompts() -> list[str]:
    """Names of the shipped prompts."""
    return shipped_configs(PROMPTS_DIR)


def find_prompt(name_or_path: str) -> Path:
    """A shipped prompt by name, or a .yaml file by path (relative to the CWD or the configs package)."""
    return find_config(name_or_path, folder=PROMPTS_DIR, what="prompt", flag="prompt")


def load_prompt(name_or_path: str) -> Prompt:
    """Read and validate a prompt file; a typo in a key fails here with the valid keys listed."""
    path = find_prompt(name_or_path)
    return from_mapping(Prompt, load_yaml(path), where=str(path))


def render_messages(prompt: Prompt, text: str) -> list[Message]:
    """The chat messages for one document: system, one-shot turns, then the filled user template."""
    messages = [{"role": "system", "content": prompt.system}]
    for example in prompt.examples:
        messages.append({"role": "user", "content": example.user})
        messages.append({"role": "assistant", "content": example.assistant})
    # str.replace, not str.format: prompts and documents are full of braces (dicts, LaTeX \frac{a}{b}).
    messages.append({"role": "user", "content": prompt.user.replace(PLACEHOLDER, text, 1)})
    return messages


def prompt_chars(messages: list[Message]) -> int:
    """Characters of message content, the measure max_prompt_chars limits (chat-template markup excluded)."""
    return sum(len(m["content"]) for m in messages)


def prompt_hash(messages: list[Message]) -> str:
    """A sha256 hex of the messages as canonical JSON: the same in every process (unlike hash()), for cache keys."""
    canonical = json.dumps(messages, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def template_hash(prompt: Prompt) -> str:
    """The hash of the prompt itself (placeholder left in), which names a rewrite run's prompt version."""
    return prompt_hash(render_messages(prompt, PLACEHOLDER))
