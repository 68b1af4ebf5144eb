"""swallowcode end to end on standard-library files: the filters alone, and with both rewrites on a tiny Llama."""
from __future__ import annotations

import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from pipelines import swallowcode
from tests.doubles import send_json
from tests.pipelines.test_werp import assert_balanced

LOCAL = ["--runner=FnApiRunner"]
STDLIB = Path(os.path.dirname(os.__file__))


def stdlib_inputs(tmp_path: Path, n: int = 24) -> Path:
    """n real stdlib modules plus the bad inputs SwallowCode meets: a syntax error, non-UTF-8, an empty file."""
    src = tmp_path / "src"
    src.mkdir()
    files = sorted(p for p in STDLIB.glob("*.py") if 500 < p.stat().st_size < 6000)[:n]
    for f in files:
        shutil.copy(f, src / f.name)
    (src / "py2.py").write_text("print 'hello'\n", encoding="utf-8")
    (src / "latin1.py").write_bytes("s = 'caf\xe9'\n".encode("latin-1"))
    (src / "empty.py").write_text("", encoding="utf-8")
    return src


def shards(out: Path) -> pd.DataFrame:
    files = sorted((out / "documents").glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


@pytest.mark.slow
def test_filters_alone_keep_compilable_well_linted_code(tmp_path):
    src = stdlib_inputs(tmp_path)
    report = swallowcode.run([*LOCAL, f"--input={src}/*.py", f"--output={tmp_path / 'out'}", "--config=filter"])
    stages = report["stages"]
    assert stages["read"]["dropped"] == {"input.not_utf8": 1, "input.empty": 1}
    assert stages["syntax"]["dropped"] == {"syntax.error": 1}
    assert stages["lint"]["docs_in"] == 24 and 0 < stages["lint"]["docs_out"] < 24  # some stdlib code scores < 7
    df = shards(tmp_path / "out")
    assert len(df) == stages["lint"]["docs_out"] and (df.pylint_score >= 7.0).all()
    assert (df.text == df.original).all() and df.model.isna().all() and set(df.python) == {"3.11"}
    assert_balanced(report)


@pytest.mark.slow
def test_both_rewrites_run_cached_and_counted_with_a_tiny_model(tiny_model, tmp_path):
    rows = [{"blob_id": f"b{i}", "language": lang, "text": f"def f{i}(x):\n    return x + {i}\n"}
            for i, lang in enumerate(["Python", "Python", "Python", "Go"])]
    (tmp_path / "stack.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    args = [*LOCAL, f"--input={tmp_path / 'stack.jsonl'}", f"--output={tmp_path / 'out'}", f"--model={tiny_model}",
            "--max_tokens=24", "--batch_size=2"]
    report = swallowcode.run(args)
    stages = report["stages"]
    assert stages["language"]["dropped"] == {"language.other": 1}
    survivors = stages["lint"]["docs_out"]
    assert stages["sgcr_llm"]["docs_in"] == survivors and stages["sgcr"]["docs_in"] == survivors
    # the tiny model writes gibberish: SGCR finds no improved code, so every sample is dropped there and counted
    assert sum(stages["sgcr"]["dropped"].values()) == survivors - stages["sgcr"]["docs_out"]
    assert_balanced(report)
    again = swallowcode.run(args)["stages"]["sgcr_llm"]["other"]
    assert again.get("cache_hits") == survivors and "generated" not in again


def test_no_model_with_rewrites_on_is_a_clear_error(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n", encoding="utf-8")
    from pipelines.jobs import job_main
    code = job_main([*LOCAL, f"--input={tmp_path / 'a.py'}", f"--output={tmp_path / 'o'}"], name="swallowcode",
                    doc=swallowcode.__doc__, option_classes=(), run=swallowcode.run)
    assert code == 2


class RewriterTestDouble(BaseHTTPRequestHandler):
    """A test double of an OpenAI-compatible server that answers like a well-behaved rewriting model: an SGCR
    review (grade 8, one suggestion, the code with a docstring added) or a SCOR block (the code with type hints)."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        system, code = body["messages"][0]["content"], body["messages"][-1]["content"]
        if "### Evaluation" in system:
            answer = (f"### Evaluation: 8\n### Suggestions:\n- add a docstring\n### Improved Code:\n```python\n"
                      f'"""Adds numbers."""\n{code.strip()}\n```\n')
        else:
            answer = f"Here it is:\n```python\n{code.replace('(a, b):', '(a: int, b: int) -> int:').strip()}\n```"
        send_json(self, 200, {"model": body["model"], "usage": {"prompt_tokens": 20, "completion_tokens": 30},
                              "choices": [{"message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]})

    def log_message(self, *args) -> None:
        pass


@pytest.mark.slow
def test_sgcr_then_scor_through_an_openai_compatible_endpoint(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), RewriterTestDouble)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rows = [{"blob_id": f"b{i}", "language": "Python", "text": f"def add{i}(a, b):\n    return a + b + {i}\n"}
                for i in range(3)]
        (tmp_path / "stack.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
        report = swallowcode.run([*LOCAL, f"--input={tmp_path / 'stack.jsonl'}", f"--output={tmp_path / 'out'}",
                                  "--backend=openai", f"--base_url=http://127.0.0.1:{server.server_port}/v1",
                                  "--model=rewriter-test-double"])
    finally:
        server.shutdown()
    stages = report["stages"]
    assert stages["sgcr"]["docs_out"] == stages["scor"]["docs_out"] == 3 and stages["final_syntax"]["docs_in"] == 3
    df = shards(tmp_path / "out").sort_values("id")
    assert list(df.id) == ["b0", "b1", "b2"] and (df.sgcr_score == 8.0).all()
    assert df.sgcr_code.str.startswith('"""Adds numbers."""').all()
    assert df.text.str.contains("(a: int, b: int) -> int:", regex=False).all()  # SCOR's code is the document
    assert df.original.str.startswith("def add").all() and df.final_syntax_error.isna().all()
    assert df.final_pylint_score.notna().all() and (df.model == "rewriter-test-double").all()
    assert_balanced(report)


def test_the_lint_stage_applies_the_comment_penalty(tmp_path):
    """SwallowCode's keep rule is on pylint's score times (1 - comment tokens / all tokens). Both files lint
    clean (10.0, pylint's own note, checked here); counted by hand with Python's tokenizer, each `Ak = k  # c`
    line is 5 tokens (NAME OP NUMBER COMMENT NEWLINE) with one comment, a `# note` line 2 (COMMENT NL) with one,
    the docstring line 2 (STRING NEWLINE) and the end 1. light.py: 10 of 53 -> 8.11, kept; heavy.py, 20 comment
    lines more: 30 of 93 -> 6.77, dropped though pylint alone gives 10."""
    from pylint.lint import Run
    from pylint.reporters import CollectingReporter

    from transforms.code.lint import LOW_SCORE, PYLINT_OPTIONS

    src = tmp_path / "src"
    src.mkdir()
    body = '"""Constants."""\n' + "".join(f"A{k} = {k}  # c\n" for k in range(10))
    (src / "light.py").write_text(body, encoding="utf-8")
    (src / "heavy.py").write_text(body + "# note\n" * 20, encoding="utf-8")
    for name in ("light.py", "heavy.py"):
        run = Run([*PYLINT_OPTIONS, str(src / name)], reporter=CollectingReporter(), exit=False)
        assert run.linter.stats.global_note == 10.0, run.linter.reporter.messages
    report = swallowcode.run([*LOCAL, f"--input={src}/*.py", f"--output={tmp_path / 'out'}", "--config=filter"])
    assert report["stages"]["lint"]["dropped"] == {LOW_SCORE: 1}
    df = shards(tmp_path / "out")
    assert list(df.source.map(lambda s: Path(s).name)) == ["light.py"]
    assert df.pylint_score.iloc[0] == pytest.approx(10.0 * (1 - 10 / 53))
