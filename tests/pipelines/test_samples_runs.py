"""Each job's first run is one command: swallowcode, swallowmath and tokenize with no --input run end to end on
their built-in samples (FnApiRunner, in process), and their stats.json records the run (versions, input files with
sizes, the resolved recipe). Oracles: the cases the sample was written with, pylint's own score with SwallowCode's
comment rule written out here, and token counts made with the tokenizers library."""
from __future__ import annotations

import hashlib
import io
import json
import os
import tokenize as pytokenize
from pathlib import Path

import pandas as pd
import pytest
from tokenizers import Tokenizer

from pipelines import swallowcode, swallowmath, tokenize
from pipelines.jobs import JobError
from pipelines.sample_code import SAMPLE_CODE_PATH
from pipelines.sample_math import SAMPLE_MATH_PATH
from pipelines.sample_tokens import SAMPLE_TEXT_PATH, SAMPLE_TOKENIZER_PATH
from tests.pipelines.test_tokenize import assert_balanced

LOCAL = ["--runner=FnApiRunner"]
WRITTEN_BROKEN = {"syntax-py2-print", "syntax-missing-colon", "syntax-unclosed-bracket", "syntax-bad-indent",
                  "syntax-py2-except"}  # pipelines/sample_code_snippets.py's SYNTAX table, each broken on purpose


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def parquet(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def assert_run_info(stats: dict, *, path: Path, recipe_name: str) -> None:
    """werp's run record: versions, every input file with its real size, the recipe with its defaults."""
    assert stats["refinery_version"] and stats["versions"]["apache-beam"]
    assert stats["input_files"] == [{"path": str(path), "bytes": os.path.getsize(path)}]
    assert stats["recipe_resolved"]["name"] == recipe_name


def penalised_score(code: str, folder: Path, name: str) -> float:
    """pylint's global note with SwallowCode's options, times (1 - COMMENT tokens / all tokens) as SwallowCode's
    check_comment_ratio counts them (tokenize's tokens, ENDMARKER included); a file of only comments scores 0."""
    from pylint.lint import Run
    from pylint.reporters import CollectingReporter

    from transforms.code.lint import PYLINT_OPTIONS  # SwallowCode's flags: configuration, not the rule under test

    path = folder / f"{name.replace('-', '_')}.py"
    path.write_text(code, encoding="utf-8")
    note = Run([*PYLINT_OPTIONS, str(path)], reporter=CollectingReporter(), exit=False).linter.stats.global_note
    tokens = list(pytokenize.generate_tokens(io.StringIO(code).readline))
    ratio = sum(t.type == pytokenize.COMMENT for t in tokens) / len(tokens)
    return 0.0 if ratio == 1 else note * (1 - ratio)


@pytest.mark.slow
def test_swallowcode_with_no_input_filters_the_sample_and_says_the_llm_stages_are_off(tmp_path, capsys):
    out, rejected = tmp_path / "out", tmp_path / "rejected"
    report = swallowcode.run([*LOCAL, f"--output={out}", f"--rejected_output={rejected}"])
    printed = capsys.readouterr().out
    assert "llm_stages off: no --model given; pass --model=PATH to run SGCR and SCOR" in printed
    sample = rows(SAMPLE_CODE_PATH)
    empty = {r["blob_id"] for r in sample if not r["text"].strip()}
    other = {r["blob_id"] for r in sample if r["text"].strip() and r["language"] != "Python"}
    python = [r for r in sample if r["blob_id"] not in empty | other]
    compiles = [r for r in python if r["blob_id"] not in WRITTEN_BROKEN]
    scores = {r["blob_id"]: penalised_score(r["text"], tmp_path, r["blob_id"]) for r in compiles}
    kept = {i for i, s in scores.items() if s >= 7.0}
    assert kept == {r["blob_id"] for r in sample if r["blob_id"].startswith("clean-")}  # the sample's promise
    assert {i for i in scores if i.startswith("comments-") and scores[i] < 7.0} == {"comments-gcd",
                                                                                   "comments-commented-out"}

    stages = report["stages"]
    assert list(stages) == ["read", "language", "syntax", "lint", "write"]  # no SGCR, SCOR or final checks
    assert stages["read"]["dropped"] == {"input.empty": len(empty)}
    assert stages["language"]["dropped"] == {"language.other": len(other)}
    assert stages["syntax"]["dropped"] == {"syntax.error": len(WRITTEN_BROKEN)}
    assert stages["lint"]["dropped"] == {"lint.low_score": len(compiles) - len(kept)}
    assert_balanced(report)
    dropped = parquet(rejected)
    assert set(dropped[dropped.stage == "syntax"].id) == WRITTEN_BROKEN
    assert set(dropped[dropped.stage == "language"].id) == other
    assert set(dropped[dropped.stage == "lint"].id) == set(scores) - kept
    docs = parquet(out / "documents")
    assert set(docs.id) == kept and (docs.text == docs.original).all() and docs.model.isna().all()
    for doc in docs.itertuples():
        assert doc.pylint_score == pytest.approx(scores[doc.id])

    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["llm_stages"] == swallowcode.LLM_OFF and stats["model"] is None
    assert_run_info(stats, path=SAMPLE_CODE_PATH, recipe_name="swallowcode")
    resolved = stats["recipe_resolved"]
    assert resolved["sgcr"] is None and resolved["scor"] is None and resolved["lint"]["min_score"] == 7.0


def test_swallowcode_keeps_the_rewrites_on_the_sample_when_a_model_is_named():
    recipe = swallowcode.code_recipe_from_mapping({"sgcr": {"prompt": "sgcr"}, "scor": {"prompt": "scor"},
                                                   "generation": {"model_path": "/models/m"}}, where="test")
    assert swallowcode.llm_plan(recipe, sample=True) == (recipe, "on: sgcr, scor")
    without = swallowcode.code_recipe_from_mapping({"sgcr": {"prompt": "sgcr"}}, where="test")
    assert swallowcode.llm_plan(without, sample=False) == (without, "on: sgcr")  # user data: the model error follows
    off, said = swallowcode.llm_plan(without, sample=True)
    assert off.rewrites == [] and said == swallowcode.LLM_OFF


@pytest.mark.slow
def test_swallowmath_with_no_input_writes_the_sample_unrewritten_and_says_so(tmp_path, capsys):
    out = tmp_path / "out"
    report = swallowmath.run([*LOCAL, f"--output={out}"])
    printed = capsys.readouterr().out
    assert "llm_stages off: no --model given; pass --model=PATH to run the rewrite (the rows carry the original " \
           "text)" in printed
    assert list(report["stages"]) == ["read", "write"]
    pages = {r["id"]: r["text"] for r in rows(SAMPLE_MATH_PATH)}
    assert report["stages"]["read"]["docs_out"] == report["stages"]["write"]["docs_out"] == len(pages) == 12
    docs = parquet(out / "documents").set_index("id")
    assert {i: docs.text[i] for i in docs.index} == pages
    assert (docs.original == docs.text).all() and docs.model.isna().all() and docs.final_answer.isna().all()
    assert (docs.char_count == docs.text.str.len()).all()
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["llm_stages"] == swallowmath.LLM_OFF and stats["model"] is None
    assert_run_info(stats, path=SAMPLE_MATH_PATH, recipe_name="swallowmath")


@pytest.mark.slow
def test_tokenize_with_no_input_or_config_packs_the_sample_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the sample config's paths must not depend on the working directory
    report = tokenize.run([*LOCAL, "--output=tokens"])
    tok = Tokenizer.from_file(str(SAMPLE_TOKENIZER_PATH))
    texts = [r["text"] for r in rows(SAMPLE_TEXT_PATH)]
    by_hand = sum(len(tok.encode(t).ids) + 1 for t in texts)  # each document, then <|endoftext|>
    manifest = json.loads((tmp_path / "tokens" / "manifest.json").read_text(encoding="utf-8"))
    web = manifest["sources"]["web"]
    assert web["documents"] == len(texts) == 48 and web["tokens_available"] == web["tokens_taken"] == by_hand
    assert sum(web["tokens_taken_by_split"].values()) == by_hand
    assert manifest["seq_len"] == 128 and manifest["vocab_size"] == 1024
    assert manifest["tokenizer_sha256"] == hashlib.sha256(SAMPLE_TOKENIZER_PATH.read_bytes()).hexdigest()
    for split, taken in web["tokens_taken_by_split"].items():  # rows of 129 overlapping by one (core/shards.py)
        s = manifest["splits"][split]
        assert s["rows"] == (taken - 1) // 128 > 0, split
        assert s["tail_tokens_dropped"] == taken - 1 - 128 * s["rows"]
    assert report["recipe"] == "sample" and report["splits"] == manifest["splits"]
    stats = json.loads((tmp_path / "tokens" / "stats.json").read_text(encoding="utf-8"))
    assert_run_info(stats, path=SAMPLE_TEXT_PATH, recipe_name="sample")
    assert stats["recipe_resolved"]["tokenizer"] == str(SAMPLE_TOKENIZER_PATH)
    page = (tmp_path / "tokens" / "report.html").read_text(encoding="utf-8")  # written beside stats.json
    assert "tokenize run report" in page and f'data-field="docs_in">{len(texts)}<' in page
    assert "realised" in page.lower()  # the target vs realised mixture


def test_tokenize_with_a_config_and_no_input_still_reads_the_configs_sources(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(JobError, match=r"source 'web': 'output/werp/documents/\*\.parquet' matched no files"):
        tokenize.run([*LOCAL, "--config=default", "--tokenizer=" + str(SAMPLE_TOKENIZER_PATH), "--output=t"])


@pytest.mark.parametrize("job", [swallowcode, swallowmath, tokenize])
def test_help_shows_the_one_command_first_run_and_the_inputs_default(job, capsys):
    from pipelines.jobs import job_main
    name = job.__name__.rsplit(".", 1)[1]
    assert job_main(["--help"], name=name, doc=job.__doc__, option_classes=job.OPTIONS, run=job.run) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    first = next(line for line in job.__doc__.splitlines() if line.startswith("python -m "))
    assert first.split("#")[0].strip() == f"python -m pipelines.{name}"  # nothing to pass on a first run
    assert " ".join(first.split()) in text and "Default: the job's built-in sample" in text
