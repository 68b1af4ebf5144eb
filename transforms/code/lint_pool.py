"""pylint in-process on a pool of worker processes: SwallowCode's scores without a subprocess per snippet."""
from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Sequence

from transforms.code.astroid_cache import (
    clear_inference_caches, conflicts, drop, install_tracking_cache, remove_foreign,
)
from transforms.code.lint import CRASH, PYLINT_OPTIONS, TIMEOUT, TOO_LARGE, LintConfig

HARD_KILL_GRACE_S = 10.0  # past timeout_s + this, the parent kills a worker that ignored its own alarm


@dataclass(frozen=True, kw_only=True, slots=True)
class LintResult:
    """pylint's score as the CLI prints it (2 decimals; None when it prints none), its messages, or why not."""

    score: float | None
    messages: tuple[str, ...] = ()  # "line:col: msg_id: text (symbol)"
    reason: str | None = None  # TIMEOUT, CRASH or TOO_LARGE when pylint gave no answer


class _SnippetTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so pylint's `except Exception` around each checker cannot eat it."""


class SnippetLinter:
    """One reusable PyLinter (set up once, ~0.3 s) that lints snippets one at a time, each as a fresh module."""

    def __init__(self, scratch_dir: str) -> None:
        from pylint.lint import Run  # heavy: imported in the worker, never at module import (STYLE rule 8)
        from pylint.reporters import CollectingReporter

        self.scratch_dir, self.count = scratch_dir, 0
        self.cache = install_tracking_cache()
        self.evictions = 0  # modules dropped from astroid's cache, snippets included (bench figure)
        warmup = self._write("", "snippet_warmup")
        self.linter = Run([*PYLINT_OPTIONS, warmup], reporter=CollectingReporter(), exit=False).linter
        os.remove(warmup)
        self._forget("snippet_warmup", set())

    def lint(self, code: str, *, module_name: str | None = None) -> LintResult:
        """Lint `code` as the CLI would lint it alone; the module name is unique unless one is given."""
        from astroid import MANAGER
        from pylint.reporters import CollectingReporter
        from pylint.utils import LinterStats

        self.count += 1
        name = module_name or f"snippet_{os.getpid()}_{self.count}"
        path = self._write(code, name)
        before = set(MANAGER.astroid_cache)
        self.cache.touching = True
        reporter = CollectingReporter()
        self.linter.set_reporter(reporter)
        self.linter.stats = LinterStats()
        try:
            self.linter.check([path])
            note = self.linter.generate_reports()
        finally:
            os.remove(path)
            self._forget(name, set(MANAGER.astroid_cache) - before)
        messages = tuple(f"{m.line}:{m.column}: {m.msg_id}: {m.msg} ({m.symbol})" for m in reporter.messages)
        return LintResult(score=None if note is None else float(f"{note:.2f}"), messages=messages)

    def _write(self, code: str, name: str) -> str:
        path = os.path.join(self.scratch_dir, f"{name}.py")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(code)
        return path

    def _forget(self, name: str, new_modules: set[str]) -> None:
        """Evict this snippet's module, and undo what modules built during it wrote into other cached modules.

        astroid's delayed_assattr adds `x.attr = v` to the locals of whatever x infers to, also a cached
        stdlib module or class (`json.foo = 1` hides a later snippet's no-member on json.foo). We remove
        those foreign entries; a full MANAGER.clear_cache() would be exact too, but costs ~0.6 s per
        snippet (bench/data/pylint_speed.py), as much as the subprocess we replace.

        A writer (functools, contextlib, abc, enum, warnings...: most snippets import one) used to be
        evicted too and rebuilt by the next snippet that imports it: ~60% of all module builds, half the
        time per snippet. Now it stays cached, "dormant": its foreign writes undone and recorded, and the
        first cache hit on it in a later snippet re-applies them (TrackingCache._touch), where a fresh
        process would build it and write them, after waking what its build read or built; the end of that
        snippet undoes them again. A writer is evicted as before when what it read or wrote into is, or
        when a writer it would wake writes the same attribute of the same table (write order could differ)."""
        from astroid import MANAGER, nodes
        from astroid.exceptions import AstroidError

        cache = self.cache
        cache.touching = False  # the inference below must not re-apply dormant writes
        writes: dict[str, list[tuple[dict, str, Any, str]]] = {}
        preexisting = set(cache) - new_modules
        checked: set[str] = set()
        while pending := [n for n in new_modules - checked if n in cache]:
            for new in pending:
                checked.add(new)
                module = dict.__getitem__(cache, new)
                for node in module.nodes_of_class(nodes.AssignAttr):
                    try:
                        targets = list(node.expr.infer())
                    except (AstroidError, RecursionError):
                        continue
                    for target in targets:
                        for table, root in remove_foreign(node, target, module):
                            writes.setdefault(new, []).append((table, node.attrname, node, root))
            new_modules |= set(cache) - preexisting  # modules built by the inference above
        undone = bool(writes) or bool(cache.active)
        for writer in cache.active:  # dormant writers this snippet woke: back to sleep
            for table, attrname, node, _ in cache.dormant[writer]:
                drop(table, attrname, node)
        cache.active.clear()
        cache.touched.clear()
        keep = {w for w in writes if w != name}
        evicted = {name, *writes} - keep
        while True:  # a dormant writer must only have read, and written into, modules that stay cached
            sleepers = {w: ws for w, ws in cache.dormant.items() if w not in evicted}
            sleepers.update({w: writes[w] for w in keep if w not in evicted})
            bad = {w for w, ws in sleepers.items()
                   if any(r in evicted or r not in cache for r in cache.reads.get(w, ()))
                   or any(root in evicted for *_, root in ws) or conflicts(w, sleepers, cache.reads)}
            if not bad:
                break
            evicted |= bad
        for gone in evicted:
            if dict.pop(cache, gone, None) is not None:
                self.evictions += 1
            cache.dormant.pop(gone, None)
        cache.dormant.update({w: writes[w] for w in keep if w not in evicted})
        for gone in evicted:
            cache.reads.pop(gone, None)
        if undone:
            clear_inference_caches()


def _on_alarm(signum: int, frame: Any) -> None:
    raise _SnippetTimeout


def _worker_main(conn: Connection, timeout_s: float) -> None:
    """Serve (index, code) requests until told to stop or a snippet times out (its state is then suspect)."""
    with tempfile.TemporaryDirectory(prefix="refinery-lint-") as scratch:
        os.chdir(scratch)  # pylint looks for pylintrc / pyproject.toml in the cwd: find none
        linter = SnippetLinter(scratch)
        signal.signal(signal.SIGALRM, _on_alarm)
        while (request := conn.recv()) is not None:
            index, code = request
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            try:
                result = linter.lint(code)
            except _SnippetTimeout:
                conn.send((index, LintResult(score=None, reason=TIMEOUT)))
                return
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            conn.send((index, result))


class _Worker:
    """One worker process, its pipe, and how many snippets it has linted."""

    def __init__(self, ctx: Any, timeout_s: float) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, timeout_s), daemon=True)
        self.process.start()
        child.close()
        self.count, self.index, self.deadline = 0, -1, 0.0

    def stop(self, *, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class LintPool:
    """`cfg.workers` processes linting batches; a hung or crashed snippet is counted and its worker replaced."""

    def __init__(self, cfg: LintConfig | None = None) -> None:
        self.cfg = cfg or LintConfig()
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a threaded Beam worker
        self._idle: list[_Worker] = []
        self._busy: dict[Connection, _Worker] = {}
        self.restarts = {TIMEOUT: 0, CRASH: 0, "recycled": 0}

    def __enter__(self) -> "LintPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for worker in [*self._idle, *self._busy.values()]:
            worker.stop(kill=worker in self._busy.values())
        self._idle, self._busy = [], {}

    def lint_many(self, codes: Sequence[str]) -> list[LintResult]:
        """Results in input order; snippets over max_bytes are not linted."""
        results: list[LintResult | None] = [None] * len(codes)
        pending = deque()
        for i, code in enumerate(codes):
            too_big = self.cfg.max_bytes is not None and len(code.encode("utf-8", "surrogatepass")) > self.cfg.max_bytes
            if too_big:
                results[i] = LintResult(score=None, reason=TOO_LARGE)
            else:
                pending.append(i)
        while pending or self._busy:
            while pending and len(self._busy) < self.cfg.workers:
                worker = self._idle.pop() if self._idle else _Worker(self._ctx, self.cfg.timeout_s)
                worker.index = pending.popleft()
                worker.deadline = time.monotonic() + self.cfg.timeout_s + HARD_KILL_GRACE_S
                worker.conn.send((worker.index, codes[worker.index]))
                self._busy[worker.conn] = worker
            next_deadline = min(w.deadline for w in self._busy.values())
            for conn in wait(list(self._busy), timeout=max(0.0, next_deadline - time.monotonic())):
                self._collect(self._busy.pop(conn), results)
            for conn, worker in list(self._busy.items()):
                if time.monotonic() > worker.deadline:
                    del self._busy[conn]
                    results[worker.index] = LintResult(score=None, reason=TIMEOUT)
                    self._retire(worker, TIMEOUT, kill=True)
        return results  # type: ignore[return-value]

    def _collect(self, worker: _Worker, results: list[LintResult | None]) -> None:
        """Take one answer, or count a crash; retire the worker when it timed out, died or is due."""
        try:
            index, result = worker.conn.recv()
        except (EOFError, OSError):
            results[worker.index] = LintResult(score=None, reason=CRASH)
            self._retire(worker, CRASH, kill=True)
            return
        results[index] = result
        worker.count += 1
        if result.reason == TIMEOUT:
            self._retire(worker, TIMEOUT, kill=False)
        elif worker.count >= self.cfg.max_snippets_per_worker:
            self._retire(worker, "recycled", kill=False)
        else:
            self._idle.append(worker)

    def _retire(self, worker: _Worker, why: str, *, kill: bool) -> None:
        self.restarts[why] += 1
        worker.stop(kill=kill)
