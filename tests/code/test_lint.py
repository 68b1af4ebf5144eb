"""pylint scoring: the comment penalty, per-snippet isolation, time limits, crashes, and CLI-identical scores."""
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from transforms.code.lint import (LOW_SCORE, NO_SCORE, LintConfig, comment_penalty,
                                  final_score, keep)
from core.config import ConfigError, from_mapping
from transforms.code.lint_pool import CRASH, TIMEOUT, TOO_LARGE, LintPool, SnippetLinter

from tests.code.pylint_cli import pylint_cli


def stdlib_files(n: int, *, min_bytes: int = 800, max_bytes: int = 4000) -> list[Path]:
    """The first n smallish .py files of this interpreter's standard library, sorted: a fixed sample."""
    root = Path(os.path.dirname(os.__file__))
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and "test" not in p.parts[-3:-1]
                   and min_bytes <= p.stat().st_size <= max_bytes)
    return files[:n]


def cli_score(code: str) -> float | None:
    """SwallowCode's way: the code in a fresh temp .py file, one `pylint` process, parse the rated-at line."""
    return pylint_cli(code)[0]


def test_comment_penalty_counts_tokens_not_lines():
    # tokens: COMMENT NL | NAME OP NUMBER NEWLINE | ENDMARKER -> 1 comment of 7 tokens
    assert comment_penalty("# note\nx = 1\n") == pytest.approx(1 / 7)
    assert comment_penalty("x = 1\n") == 0.0
    assert comment_penalty("") == 0.0
    assert comment_penalty("def f(:\n  (\n") == 0.0  # tokenize error: no penalty


def test_final_score_formula():
    assert final_score(8.0, 0.25) == pytest.approx(6.0)
    assert final_score(8.0, 0.0) == 8.0
    assert final_score(8.0, 1.0) == 0.0
    assert final_score(None, 0.5) is None


def test_keep_rule_and_config():
    cfg = from_mapping(LintConfig, {"min_score": 7, "timeout_s": 5}, where="lint")
    assert cfg.min_score == 7.0 and keep(7.0, cfg=cfg) == (True, None)
    assert keep(6.99, cfg=cfg) == (False, LOW_SCORE) and keep(None, cfg=cfg) == (False, NO_SCORE)
    with pytest.raises(ConfigError, match="valid keys"):
        from_mapping(LintConfig, {"min_scor": 7}, where="lint")
    with pytest.raises(ConfigError, match="min_score"):
        from_mapping(LintConfig, {"min_score": 11}, where="lint")


def test_same_path_relinted_is_not_stale(tmp_path):
    linter = SnippetLinter(str(tmp_path))
    assert linter.lint("x = 1\nprint(x)\n", module_name="same").score == 10.0
    bad = linter.lint("print(undefined_name)\n", module_name="same")
    assert bad.score == 0.0 and any("E0602" in m for m in bad.messages)


def test_attribute_written_by_one_snippet_does_not_leak_into_the_next(tmp_path):
    linter = SnippetLinter(str(tmp_path))
    assert linter.lint("import json\njson.foo = 1\n").score == 10.0
    reader = "import json\nprint(json.foo)\n"
    result = linter.lint(reader)
    assert any("E1101" in m for m in result.messages)  # no-member, as a fresh pylint process says
    assert result.score == cli_score(reader) == 0.0


def test_pool_counts_a_timeout_and_keeps_going():
    with LintPool(LintConfig(timeout_s=0.01, workers=1)) as pool:
        codes = ["\n".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(300))]
        assert pool.lint_many(codes)[0].reason == TIMEOUT
        pool.cfg = LintConfig(timeout_s=30, workers=1)
        assert pool.lint_many(["x = 1\nprint(x)\n"])[0].score == 10.0
        assert pool.restarts[TIMEOUT] == 1


def test_pool_counts_a_crash_and_keeps_going():
    big = "\n".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(3000))
    with LintPool(LintConfig(workers=1)) as pool:
        pool.lint_many(["x = 1\n"])  # the worker is up
        pid = pool._idle[0].process.pid
        threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()  # dies mid-snippet, like a segfault
        results = pool.lint_many([big, "x = 1\nprint(x)\n"])
        assert results[0].reason == CRASH and results[1].score == 10.0
        assert pool.restarts[CRASH] == 1


def test_pool_skips_snippets_over_max_bytes():
    with LintPool(LintConfig(max_bytes=10)) as pool:
        assert pool.lint_many(["x = 1\n" * 10])[0].reason == TOO_LARGE


def assert_scores_identical_to_the_cli(codes: list[str]) -> float:
    """Our pool's scores against one CLI process per snippet (two at a time); returns the pool's seconds."""
    start = time.perf_counter()
    with LintPool(LintConfig(workers=2, max_snippets_per_worker=40)) as pool:  # recycling is exercised too
        ours = [r.score for r in pool.lint_many(codes)]
        assert pool.restarts["recycled"] >= 1
    pool_s = time.perf_counter() - start
    with ThreadPoolExecutor(max_workers=2) as executor:
        reference = list(executor.map(cli_score, codes))
    mismatches = [(i, a, b) for i, (a, b) in enumerate(zip(ours, reference)) if a != b]
    assert not mismatches, mismatches
    assert sum(s is not None for s in ours) > 0.9 * len(codes)
    return pool_s


def test_scores_identical_to_the_cli_on_100_stdlib_files():
    """Small files (300-1,500 bytes) keep the 100 reference processes near 40 s on 2 cores."""
    codes = [p.read_text(encoding="utf-8") for p in stdlib_files(100, min_bytes=300, max_bytes=1500)]
    assert len(codes) == 100
    assert assert_scores_identical_to_the_cli(codes) < 30



def test_a_writer_module_stays_cached_and_its_writes_apply_only_where_imported(tmp_path):
    """A module that writes into another (helper: json.foo = 1) is kept "dormant", not rebuilt: its write
    is undone after each snippet and re-applied in the next snippet that imports it, as a fresh CLI does."""
    (tmp_path / "helper_mod.py").write_text("import json\njson.foo = 1\n", encoding="utf-8")
    linter = SnippetLinter(str(tmp_path))
    importer = "import json\nimport helper_mod\nprint(json.foo, helper_mod)\n"
    reader = "import json\nprint(json.foo)\n"

    def cli(code: str) -> float | None:
        return pylint_cli(code, tmp_path)[0]

    first = linter.lint(importer)
    assert not any("E1101" in m for m in first.messages) and "helper_mod" in linter.cache.dormant
    second = linter.lint(reader)
    assert any("E1101" in m for m in second.messages)
    third = linter.lint(importer)
    assert third == first and "helper_mod" in linter.cache.dormant
    assert (first.score, second.score) == (cli(importer), cli(reader))
