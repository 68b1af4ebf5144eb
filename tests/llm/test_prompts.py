"""Shipped prompts load and render with the document in place; the hash is stable and sensitive to every word."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ConfigError, from_mapping
from transforms.llm.prompts import (
    PLACEHOLDER,
    Prompt,
    PromptConfig,
    available_prompts,
    load_prompt,
    prompt_chars,
    prompt_hash,
    render_messages,
    template_hash,
)

REPO = Path(__file__).resolve().parents[2]
CODE = "def f(d):\n    return {k: v for k, v in d.items()}  # {text} stays literal\n"


def test_shipped_prompts_are_listed() -> None:
    assert available_prompts() == ["scor", "sgcr", "swallowmath"]


@pytest.mark.parametrize("name", ["sgcr", "scor", "swallowmath"])
def test_prompt_renders_with_document_last(name: str) -> None:
    prompt = load_prompt(name)
    messages = render_messages(prompt, CODE)
    assert prompt.name == name and prompt.version >= 1
    assert messages[0] == {"role": "system", "content": prompt.system}
    assert messages[-1] == {"role": "user", "content": CODE}  # braces and a literal {text} survive
    assert [m["role"] for m in messages[1:-1]] == ["user", "assistant"] * len(prompt.examples)


def test_sgcr_prompt_asks_for_the_parsed_layout() -> None:
    system = load_prompt("sgcr").system
    for heading in ("### Evaluation:", "### Suggestions:", "### Improved Code:", "```python"):
        assert heading in system


def test_math_prompt_is_one_shot_ending_in_an_answer_line() -> None:
    prompt = load_prompt("swallowmath")
    assert len(prompt.examples) == 1
    assert prompt.examples[0].assistant.rstrip().splitlines()[-1] == "#### 66"
    assert "####" in prompt.system


def test_user_template_wraps_the_document() -> None:
    prompt = Prompt(name="t", version=1, system="Be brief.", user="Code:\n{text}\nEnd.")
    assert render_messages(prompt, "x = 1")[-1]["content"] == "Code:\nx = 1\nEnd."


@pytest.mark.parametrize("user", ["no placeholder", "{text} and {text}"])
def test_template_needs_one_placeholder(user: str) -> None:
    with pytest.raises(ValueError, match="placeholder"):
        Prompt(name="t", version=1, system="s", user=user)


def test_prompt_file_rejects_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nversion: 1\nsystem: hi\nsytem_prompt: oops\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="valid keys are"):
        load_prompt(str(path))


def test_prompt_file_by_path_and_unknown_name(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text('name: p\nversion: 2\nsystem: hi\nuser: "Q: {text}"\n', encoding="utf-8")
    assert load_prompt(str(path)).user == "Q: {text}"
    with pytest.raises(ConfigError, match="sgcr"):
        load_prompt("sgrc")


def test_prompt_config_validates() -> None:
    cfg = from_mapping(PromptConfig, {"prompt": "swallowmath", "max_prompt_chars": 102688}, where="math")
    assert cfg.max_prompt_chars == 102_688
    with pytest.raises(ConfigError, match="max_prompt_chars"):
        from_mapping(PromptConfig, {"prompt": "sgcr", "max_prompt_chars": 0}, where="code")


def test_prompt_chars_counts_content() -> None:
    assert prompt_chars([{"role": "system", "content": "abc"}, {"role": "user", "content": "de"}]) == 5


def test_hash_is_pinned_for_fixed_messages() -> None:
    # sha256 of '[{"content":"s","role":"system"},{"content":"é","role":"user"}]' (sorted keys, no spaces,
    # UTF-8); a change here invalidates every cached rewrite, so it must be deliberate.
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "é"}]
    assert prompt_hash(messages) == "1b725bb45890410eae4b3d4619140a8868e8e6d0830d7482c828818721ee613a"


def test_hash_is_stable_across_processes() -> None:
    code = (
        "from transforms.llm.prompts import load_prompt, prompt_hash, render_messages\n"
        f"print(prompt_hash(render_messages(load_prompt('sgcr'), {CODE!r})))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == prompt_hash(render_messages(load_prompt("sgcr"), CODE))


def test_hash_changes_with_text_and_system() -> None:
    prompt = load_prompt("scor")
    base = prompt_hash(render_messages(prompt, CODE))
    assert prompt_hash(render_messages(prompt, CODE + " ")) != base
    edited = Prompt(name=prompt.name, version=prompt.version, system=prompt.system + ".", user=prompt.user)
    assert prompt_hash(render_messages(edited, CODE)) != base
    assert template_hash(edited) != template_hash(prompt)
    assert template_hash(prompt) == prompt_hash(render_messages(prompt, PLACEHOLDER))
