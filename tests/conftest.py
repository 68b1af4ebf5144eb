"""Shared fixtures: where the shared test data lives, and a tiny local Llama for the LLM stages (offline)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser import INSTALL

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REFINERY_SHARED_DATA", REPO.parent / "shared" / "data"))  # elsewhere: set it


# Tests on real data (crawl files, extraction benchmarks) read ../shared/data. The project never needs it: every
# feature has fixtures of its own. Without it those tests are not run and the run says so in one line; under
# CI=true its absence fails the run before any test.
REAL_DATA_SKIP = "real-data test: ../shared/data is not present"
BROWSER_SKIP = "browser test: chromium is not installed"  # the start of tests/browser.py's MISSING


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data. Without the folder the test is not run (counted in the run's real-data line);
    with the folder, a missing file fails: the data is incomplete, not absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(REAL_DATA_SKIP)
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing from the shared test data (see {SHARED_DATA / 'PROVENANCE.md'})")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_path()


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("CI", "").lower() == "true" and not SHARED_DATA.is_dir():
        pytest.exit(f"CI=true and the shared test data is missing: put it at {SHARED_DATA} (beside the clone); the "
                    "real-data tests must run in CI", returncode=3)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """One line each for the real-data and browser tests not run, instead of a skip per test: their reports move
    from "skipped" (listed one by one under -ra) to their own count in the final line ("N real-data not run")."""
    stats = terminalreporter.stats
    for marker, key, line in (
            (REAL_DATA_SKIP, "real-data not run", f"real-data tests not run: {SHARED_DATA} is not present (every "
             "feature is also tested on the project's own fixtures)"),
            (BROWSER_SKIP, "browser not run", f"browser tests not run: chromium is not installed ({INSTALL}; "
             ".ci/run installs it, and under CI=true its absence fails)")):
        found = [r for r in stats.get("skipped", []) if isinstance(r.longrepr, tuple) and marker in str(r.longrepr[2])]
        if found:
            stats["skipped"] = [r for r in stats["skipped"] if r not in found]
            stats[key] = found
            terminalreporter.write_line(f"{len(found)} {line}", yellow=True)


# A tiny random-init Llama with a tokenizer trained here, saved to a folder: real model plumbing in ~0.1 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SPECIALS = ["<|bos|>", "<|eos|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
# ChatML, the layout Qwen and many instruct models use; <|im_end|> ends a turn and is the model's EOS.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def corpus_lines() -> list[str]:
    """A few hundred lines of real text: this repository's own transforms source."""
    lines = []
    for path in sorted((REPO / "transforms").rglob("*.py")):
        lines += [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return lines[:600]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A folder AutoModelForCausalLM/AutoTokenizer load with local_files_only; output is gibberish by design."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(corpus_lines(), trainers.BpeTrainer(
        vocab_size=512, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|bos|>", eos_token="<|im_end|>",
                                  pad_token="<|pad|>")
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)  # initializer_range=1.0: sharp logits, so greedy output differs from prompt to prompt
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True, initializer_range=1.0, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
