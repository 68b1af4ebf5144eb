"""The built-in samples of swallowcode, swallowmath and tokenize are exactly what their seeded generators write, ship
with the package, hold the cases they promise, and the shipped tokenize config finds them from any folder."""
from __future__ import annotations

import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from tokenizers import Tokenizer

from pipelines import sample_code, sample_math, sample_tokens
from tests.conftest import REPO
from transforms.packing import load_tokenize_config

SHIPPED = [sample_code.SAMPLE_CODE_PATH, sample_math.SAMPLE_MATH_PATH, sample_tokens.SAMPLE_TEXT_PATH,
           sample_tokens.SAMPLE_TOKENIZER_PATH]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_generator_rebuilds_its_shipped_file_bit_for_bit(tmp_path):
    for n in (1, 2):  # twice: nothing depends on the clock, the process or a hash seed
        (tmp_path / f"{n}").mkdir()
        assert sample_code.main([str(tmp_path / f"{n}" / "code.jsonl")]) == 0
        assert sample_math.main([str(tmp_path / f"{n}" / "math.jsonl")]) == 0
        assert sample_tokens.main([str(tmp_path / f"{n}")]) == 0
    for name, shipped in [("code.jsonl", sample_code.SAMPLE_CODE_PATH), ("math.jsonl", sample_math.SAMPLE_MATH_PATH),
                          (sample_tokens.TEXT_NAME, sample_tokens.SAMPLE_TEXT_PATH),
                          (sample_tokens.TOKENIZER_NAME, sample_tokens.SAMPLE_TOKENIZER_PATH)]:
        first, second = (tmp_path / "1" / name).read_bytes(), (tmp_path / "2" / name).read_bytes()
        assert first == second, name
        assert first == shipped.read_bytes(), f"{shipped.name}: regenerate with python -m pipelines.sample_*"


def test_the_wheel_globs_ship_every_sample_file():
    """pyproject's package-data globs for `pipelines` must match each file by its path under the package."""
    globs = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    for path in SHIPPED:
        rel = path.relative_to(REPO / "pipelines").as_posix()
        assert any(fnmatch(rel, g) for g in globs["pipelines"]), rel


def test_the_code_sample_holds_every_case_the_recipe_meets():
    found = rows(sample_code.SAMPLE_CODE_PATH)
    assert [set(r) for r in found] == [{"blob_id", "language", "text"}] * len(found)  # The Stack v2's columns
    ids = [r["blob_id"] for r in found]
    assert len(set(ids)) == len(ids) == 27
    kinds = {i.split("-")[0] for i in ids}
    assert kinds == {"clean", "syntax", "lint", "comments", "other", "empty"}
    assert {r["language"] for r in found if r["blob_id"].startswith("other-")} == {"JavaScript", "Go"}
    assert all(r["language"] == "Python" for r in found if not r["blob_id"].startswith("other-"))
    assert ids != sorted(ids)  # the cases are mixed, as in a real shard


def test_the_math_sample_is_questions_in_boilerplate():
    pages = rows(sample_math.SAMPLE_MATH_PATH)
    assert [p["id"] for p in pages] == [f"math-{n:02d}" for n in range(12)]
    for page in pages:
        lines = page["text"].split("\n")
        assert " | " in lines[0]  # a navigation bar first
        assert any(line.startswith("Question posted by ") for line in lines)
        assert any(line.startswith("Best answer from ") for line in lines) and "(c) " in lines[-1]
    assert sum("cookie" in p["text"].lower() for p in pages) == 8  # every page but each third (n % 3 == 2)


def test_the_shipped_tokenizer_is_small_and_covers_the_sample_text():
    assert sample_tokens.SAMPLE_TOKENIZER_PATH.stat().st_size < 100_000
    tok = Tokenizer.from_file(str(sample_tokens.SAMPLE_TOKENIZER_PATH))
    assert tok.get_vocab_size() == 1024 and tok.token_to_id("<|endoftext|>") == 0
    texts = [r["text"] for r in rows(sample_tokens.SAMPLE_TEXT_PATH)]
    assert len(texts) == 48
    for text in texts[:5]:
        ids = tok.encode(text).ids
        assert tok.decode(ids) == text and len(ids) < len(text) / 2  # merges at work, byte-level round trip


def test_the_sample_config_finds_its_files_from_any_folder(tmp_path, monkeypatch):
    """The paths are relative to the configs package; from a folder that holds nothing they must resolve there."""
    from pipelines.tokenize import located
    monkeypatch.chdir(tmp_path)
    cfg = load_tokenize_config("sample").config
    assert cfg.seq_len == 128
    assert Path(located(cfg.tokenizer)) == sample_tokens.SAMPLE_TOKENIZER_PATH
    assert [Path(located(p)) for p in cfg.sources[0].paths] == [sample_tokens.SAMPLE_TEXT_PATH]
    assert located("nothing/here/*.parquet") == "nothing/here/*.parquet"  # errors keep naming what was written
    (tmp_path / "mine.jsonl").write_text("{}\n", encoding="utf-8")
    assert located("mine.jsonl") == "mine.jsonl"  # the working directory comes first
