"""The pylint pool and astroid's cache tracking at their edges (issue 16 mutation survivors of
transforms/code/lint_pool.py and transforms/code/astroid_cache.py).

Oracles: the rules of astroid_cache written out on hand-made tables; real pylint in-process (SnippetLinter) against
what a fresh `pylint` process says (run here, or the no-member it prints, checked by hand); real worker processes
(LintPool) observed from outside: their count, their exit codes, their scratch folders, the time a hung one costs.
Helper modules have names of their own (pe_<test>_...): astroid's cache is shared by every SnippetLinter of the
pytest process, so a name another test uses would be found already cached."""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import transforms.code.lint_pool as lint_pool
from transforms.code.astroid_cache import TrackingCache, conflicts, drop
from transforms.code.lint import CRASH, TIMEOUT, LintConfig
from transforms.code.lint_pool import LintPool, LintResult, SnippetLinter

from tests.code.pylint_cli import pylint_cli

REPO = Path(__file__).resolve().parents[2]
GOOD, BAD = "x = 1\nprint(x)\n", "print(undefined_name)\n"  # pylint: 10.00 and 0.00 (E0602)
SLOW = "\n".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(300))  # well past 0.01 s of pylint


def cli(folder: Path, code: str) -> tuple[float | None, str]:
    return pylint_cli(code, folder)


def write(folder: Path, **modules: str) -> None:
    for name, code in modules.items():
        (folder / f"{name}.py").write_text(code, encoding="utf-8")


def no_member(result: LintResult, attr: str) -> bool:
    return any("E1101" in m and f"'{attr}'" in m for m in result.messages)


# astroid_cache's rules on hand-made tables


def test_a_writer_conflicts_with_a_sleeper_it_reaches_through_reads_that_writes_the_same_attribute() -> None:
    json_locals, os_locals = {}, {}
    sleepers = {"w": [(json_locals, "foo", "node_w", "json")],
                "mid": [(os_locals, "bar", "node_m", "os")],
                "far": [(json_locals, "foo", "node_f", "json")]}
    # w read mid, mid read far: far is woken with w and writes json.foo too
    assert conflicts("w", sleepers, {"w": {"mid": None}, "mid": {"far": None}}) is True
    # far not reached (nobody read it), or writing another attribute / another table: no conflict
    assert conflicts("w", sleepers, {"w": {"mid": None}}) is False
    assert conflicts("w", {**sleepers, "far": [(json_locals, "baz", "n", "json")]},
                     {"w": {"mid": None}, "mid": {"far": None}}) is False
    assert conflicts("w", {**sleepers, "far": [({}, "foo", "n", "other")]},
                     {"w": {"mid": None}, "mid": {"far": None}}) is False
    # a read cycle ends; a module read that is not a sleeper (no writes) is walked through
    assert conflicts("w", sleepers, {"w": {"plain": None}, "plain": {"w": None, "far": None}}) is True


def test_drop_removes_one_node_and_the_name_only_with_its_last_node() -> None:
    table = {"foo": ["a", "b"]}
    drop(table, "foo", "a")
    assert table == {"foo": ["b"]}
    drop(table, "foo", "b")
    assert table == {}


def test_drop_leaves_a_table_alone_without_that_name_or_node() -> None:
    table = {"foo": ["a"]}
    drop(table, "bar", "a")
    drop(table, "foo", "z")
    assert table == {"foo": ["a"]}


def test_a_tracking_cache_wakes_dormant_writers_only_while_touching() -> None:
    """A hit wakes a dormant writer (re-applies its writes) only in a snippet (touching); a new cache is not in one."""
    module, table = object(), {}
    cache = TrackingCache({"writer": module})
    cache.dormant["writer"] = [(table, "foo", "node", "json")]
    assert cache["writer"] is module and table == {} and not cache.active
    cache.touching = True
    assert cache["writer"] is module and table == {"foo": ["node"]} and cache.active == {"writer"}


# SnippetLinter with real pylint, against a fresh pylint process


def test_a_cached_module_hit_wakes_the_writers_its_build_read_and_built(tmp_path: Path) -> None:
    """pe_reads_a's build reads pe_reads_b, which is cached; pe_reads_b's build built pe_reads_c, which writes
    json.pe_reads_foo. A fresh process importing pe_reads_a builds all three, so json has the attribute."""
    write(tmp_path, pe_reads_c="import json\njson.pe_reads_foo = 1\n", pe_reads_b="import pe_reads_c\npe_reads_c.y = 1\n",
          pe_reads_a="import pe_reads_b\npe_reads_b.x = 1\n")
    linter = SnippetLinter(str(tmp_path))
    via_b = "import json\nimport pe_reads_b\nprint(json.pe_reads_foo, pe_reads_b)\n"
    via_a = "import json\nimport pe_reads_a\nprint(json.pe_reads_foo, pe_reads_a)\n"
    reader = "import json\nprint(json.pe_reads_foo)\n"
    results = [linter.lint(code) for code in (via_b, via_a, reader, via_a)]
    assert [no_member(r, "pe_reads_foo") for r in results] == [False, False, True, False]
    assert [r.score for r in results] == [10.0, 10.0, 0.0, 10.0]
    assert {"pe_reads_a", "pe_reads_b", "pe_reads_c"} <= set(linter.cache.dormant)
    assert cli(tmp_path, via_a)[0] == 10.0 and cli(tmp_path, reader)[0] == 0.0


def test_a_cache_hit_between_snippets_reapplies_no_dormant_write(tmp_path: Path) -> None:
    """Only a hit inside a snippet wakes a dormant writer: astroid used between snippets (here a plain cache read)
    must leave json without the undone attribute, and the next snippet still gets the CLI's no-member."""
    from astroid import MANAGER

    write(tmp_path, pe_between_w="import json\njson.pe_between_foo = 1\n")
    linter = SnippetLinter(str(tmp_path))
    assert linter.lint("import pe_between_w\nprint(pe_between_w)\n").score == 10.0
    assert "pe_between_w" in linter.cache.dormant
    MANAGER.astroid_cache["pe_between_w"]  # noqa: B018 - a cache hit outside any snippet
    assert "pe_between_foo" not in MANAGER.astroid_cache["json"].locals
    reader = "import json\nprint(json.pe_between_foo)\n"
    result = linter.lint(reader)
    assert no_member(result, "pe_between_foo") and result.score == 0.0 == cli(tmp_path, reader)[0]


def test_writers_that_write_into_each_other_are_woken_together(tmp_path: Path) -> None:
    """pe_cyc_a and pe_cyc_b import and write into each other, so each one's build read the other (a cycle of
    reads). Importing either wakes both, as a fresh process builds both; the walk over the cycle ends (an alarm
    turns an endless walk into a failure)."""
    write(tmp_path, pe_cyc_a="import pe_cyc_b\npe_cyc_b.from_a = 1\n", pe_cyc_b="import pe_cyc_a\npe_cyc_a.from_b = 1\n")
    linter = SnippetLinter(str(tmp_path))
    via_a, via_b = "import pe_cyc_a\nprint(pe_cyc_a.from_b)\n", "import pe_cyc_b\nprint(pe_cyc_b.from_a)\n"

    def endless(*_: object) -> None:
        raise TimeoutError("the cache walk did not end")

    previous = signal.signal(signal.SIGALRM, endless)
    signal.setitimer(signal.ITIMER_REAL, 10.0)
    try:
        results = [linter.lint(code) for code in (via_a, via_b, via_a)]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert [(r.score, r.messages) for r in results] == [(10.0, ())] * 3
    assert {"pe_cyc_a", "pe_cyc_b"} <= set(linter.cache.dormant)
    assert cli(tmp_path, via_b)[0] == 10.0


def test_a_snippets_write_leaves_no_stale_inference_behind(tmp_path: Path) -> None:
    """pe_stale_m.f() returns the module global G = 1. A snippet that sets pe_stale_m.G = 'text' makes f() a str
    too (so .upper() is fine); the next snippet must see only the int again, as a fresh process does."""
    write(tmp_path, pe_stale_m="G = 1\n\n\ndef f():\n    return G\n")
    linter = SnippetLinter(str(tmp_path))
    writer = "import pe_stale_m\npe_stale_m.G = 'text'\nprint(pe_stale_m.f().upper())\n"
    reader = "import pe_stale_m\nprint(pe_stale_m.f().upper())\n"
    first, second = linter.lint(writer), linter.lint(reader)
    assert first.score == 10.0 and not first.messages
    assert second.messages == ("2:6: E1101: Instance of 'int' has no 'upper' member (no-member)",)
    assert (first.score, second.score) == (cli(tmp_path, writer)[0], cli(tmp_path, reader)[0]) == (10.0, 0.0)


def test_writers_that_conflict_or_read_an_evicted_writer_are_evicted(tmp_path: Path) -> None:
    """pe_conf_d (dormant) writes json.pe_conf_f. pe_conf_n2 reads pe_conf_d and writes json.pe_conf_f too: a
    conflict, so it is evicted. pe_conf_n read pe_conf_n2 (built it): evicted as well. Nothing but pe_conf_d stays;
    the next snippet rebuilds both and sees every write, as a fresh process does."""
    from astroid import MANAGER

    write(tmp_path, pe_conf_d="import json\njson.pe_conf_f = 1\n",
          pe_conf_n2="import json\nimport pe_conf_d\npe_conf_d.extra = 2\njson.pe_conf_f = 3\n",
          pe_conf_n="import pe_conf_n2\npe_conf_n2.json.pe_conf_bar = 1\n")
    linter = SnippetLinter(str(tmp_path))
    assert linter.evictions == 1  # the warm-up module
    assert linter.lint("x = 1\n").score == 10.0 and linter.evictions == 2  # the snippet
    assert linter.lint("import pe_conf_d\nprint(pe_conf_d)\n").score == 10.0 and linter.evictions == 3
    assert "pe_conf_d" in linter.cache.dormant
    assert linter.lint("import pe_conf_n\nprint(pe_conf_n)\n").score == 10.0
    assert linter.evictions == 6  # the snippet, pe_conf_n2, pe_conf_n
    assert "pe_conf_d" in linter.cache.dormant and "pe_conf_d" in MANAGER.astroid_cache
    for gone in ("pe_conf_n2", "pe_conf_n"):
        assert gone not in linter.cache.dormant and gone not in MANAGER.astroid_cache
    uses = "import json\nimport pe_conf_d\nimport pe_conf_n\nprint(pe_conf_d.extra, json.pe_conf_bar, json.pe_conf_f, pe_conf_n)\n"
    result = linter.lint(uses)
    assert result.messages == () and result.score == 10.0 == cli(tmp_path, uses)[0]


def test_snippet_results_are_frozen_keyword_only_and_slotted() -> None:
    result = LintResult(score=9.5, messages=("1:0: C0304: Final newline missing (missing-final-newline)",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.score = 1.0  # type: ignore[misc]
    assert hash(result) == hash(LintResult(score=9.5, messages=result.messages))
    with pytest.raises(TypeError, match="positional"):
        LintResult(9.5)  # type: ignore[misc]
    assert not hasattr(result, "__dict__")


# LintPool with real worker processes


def scratch_dirs(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("refinery-lint-*"))


@pytest.fixture
def worker_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The workers' TMPDIR (spawned processes read it at start), where each makes its scratch folder."""
    folder = tmp_path / "workers"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def test_a_worker_is_recycled_after_exactly_max_snippets_and_leaves_no_scratch(worker_tmp: Path) -> None:
    """Five snippets, one worker at a time, two snippets per worker: workers 1 and 2 are recycled (after snippets 2
    and 4), worker 3 lints the fifth and idles. A recycled or closed worker ends on its own and removes its scratch
    folder. timeout_s=1: the parent's hard deadline is 1 s + 10 s of grace, enough for a fresh worker to start."""
    cfg = LintConfig(workers=1, max_snippets_per_worker=2, timeout_s=1.0)
    pool = LintPool(cfg)
    try:
        results = pool.lint_many([GOOD, BAD, GOOD, BAD, GOOD])
        assert [(r.score, r.reason) for r in results] == [(10.0, None), (0.0, None), (10.0, None), (0.0, None),
                                                          (10.0, None)]
        assert pool.restarts == {TIMEOUT: 0, CRASH: 0, "recycled": 2}
        assert len(scratch_dirs(worker_tmp)) == 1  # the idle worker's
        idle = pool._idle[0].process
    finally:
        pool.close()
    assert idle.exitcode == 0 and scratch_dirs(worker_tmp) == []


def test_one_worker_lints_a_batch_in_turn_and_still_answers_after_idling(worker_tmp: Path) -> None:
    """workers=1 means one process, never two; between batches it waits (no alarm left running) and serves again."""
    with LintPool(LintConfig(workers=1)) as pool:
        assert [r.score for r in pool.lint_many([GOOD, BAD, GOOD])] == [10.0, 0.0, 10.0]
        children = multiprocessing.active_children()
        assert len(children) == 1
        time.sleep(1.5)
        assert pool.lint_many([GOOD])[0].score == 10.0
        assert multiprocessing.active_children() == children
        assert pool.restarts == {TIMEOUT: 0, CRASH: 0, "recycled": 0}


def test_a_worker_that_times_itself_out_exits_on_its_own(worker_tmp: Path) -> None:
    """The worker's own alarm: it answers TIMEOUT and returns; the parent lets it finish (exit code 0, scratch
    folder removed) instead of killing it."""
    with LintPool(LintConfig(workers=1, timeout_s=0.01)) as pool:
        for _ in range(10):  # a fresh worker's first snippet may time out too: then another worker is started
            if pool.lint_many(["x = 1\n"])[0].reason is None:
                break
        worker = pool._idle[0]  # up, with its 0.01 s alarm (a worker keeps the timeout it was started with)
        process, before = worker.process, pool.restarts[TIMEOUT]
        assert pool.lint_many([SLOW])[0].reason == TIMEOUT
        assert pool.restarts[TIMEOUT] == before + 1 and not process.is_alive()
        assert process.exitcode == 0
        assert scratch_dirs(worker_tmp) == []


def test_a_stopped_worker_is_killed_at_its_deadline(worker_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that cannot run its own alarm (SIGSTOP here; a C loop in real life) is killed by the parent at
    timeout_s + HARD_KILL_GRACE_S (0.5 s here, so the test is short): TIMEOUT after about 1.5 s, no 5 s wait for a
    polite stop, and the pool goes on with a new worker."""
    monkeypatch.setattr(lint_pool, "HARD_KILL_GRACE_S", 0.5)
    with LintPool(LintConfig(workers=1, timeout_s=1.0)) as pool:
        assert pool.lint_many([GOOD])[0].score == 10.0
        pid = pool._idle[0].process.pid
        os.kill(pid, signal.SIGSTOP)
        out: list = []
        started = time.monotonic()
        thread = threading.Thread(target=lambda: out.append(pool.lint_many([GOOD])), daemon=True)
        thread.start()
        thread.join(8.0)
        if thread.is_alive():  # never hard-killed: end the stopped worker so the pool returns, then fail
            os.kill(pid, signal.SIGKILL)
            thread.join(10.0)
        elapsed = time.monotonic() - started
        assert out and out[0][0].reason == TIMEOUT, out
        assert elapsed < 5.0, elapsed  # a polite stop first would take 1.5 s + 5 s of join
        assert pool.restarts[TIMEOUT] == 1
        assert pool.lint_many([GOOD])[0].score == 10.0


def test_a_process_that_forgets_to_close_its_pool_still_exits(worker_tmp: Path) -> None:
    """Workers are daemons: a parent that never calls close() exits instead of waiting on them forever."""
    script = ("from transforms.code.lint import LintConfig\nfrom transforms.code.lint_pool import LintPool\n"
              "pool = LintPool(LintConfig(workers=1))\nprint(pool.lint_many(['x = 1\\nprint(x)\\n'])[0].score, flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "10.0"
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
