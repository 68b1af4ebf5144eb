#!/usr/bin/env python3
"""Small mutation testing for one product module (issue 16, "Tests that catch what they claim").

Parses --module with `ast`, makes single-point mutants (comparison, arithmetic and boolean operator swaps, int
constants +1/-1, `not` removal, True/False flips; only the mutated token's bytes change) and runs --tests against
each in a git worktree of HEAD, never in the checkout. "killed": pytest fails (rc 1-3); "survived": it passes;
"timeout": past the timeout, when the run's processes, and any left working in the worktree, are ended.
Usage and results: tests/MUTATION.md."""
from __future__ import annotations

import argparse
import ast
import bisect
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"

_CMP_SWAP = {ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">", ast.Eq: "!=", ast.NotEq: "==",
             ast.In: "not in", ast.NotIn: "in", ast.Is: "is not", ast.IsNot: "is"}
_CMP_TOKEN = r"<=|>=|==|!=|<|>|not\s+in\b|\bin\b|\bis\s+not\b|\bis\b"
_BIN_SWAP = {ast.Add: "-", ast.Sub: "+", ast.Mult: "/", ast.Div: "*"}
_BIN_TOKEN = {ast.Add: r"\+", ast.Sub: r"-", ast.Mult: r"\*", ast.Div: r"/"}


@dataclass
class Mutant:
    id: int
    kind: str
    line: int
    start: int  # byte offsets in the original file
    end: int
    original: str
    mutated: str
    status: str = "pending"
    rc: int | None = None
    seconds: float = 0.0


class _Collector(ast.NodeVisitor):
    """Finds mutation points as (kind, line, start byte, end byte, replacement) on the original bytes."""

    def __init__(self, src: bytes) -> None:
        self.src = src
        self.line_starts = [0, *(i + 1 for i, b in enumerate(src) if b == 0x0A)]
        self.points: list[tuple[str, int, int, int, str]] = []

    def _start(self, node: ast.AST) -> int:
        return self.line_starts[node.lineno - 1] + node.col_offset

    def _end(self, node: ast.AST) -> int:
        return self.line_starts[node.end_lineno - 1] + node.end_col_offset

    def _line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset)  # 1-based: line starts <= offset

    def _token_between(self, a: int, b: int, pattern: str) -> tuple[int, int] | None:
        """The first operator token matching pattern in src[a:b] (the gap between two operands)."""
        gap = re.sub(r"#[^\n]*", lambda m: " " * len(m.group(0).encode("utf-8")), self.src[a:b].decode("utf-8"))
        if (m := re.search(pattern, gap)) is None:  # comments in the gap were blanked above
            return None
        lo = a + len(gap[: m.start()].encode("utf-8"))
        return lo, lo + len(m.group(0).encode("utf-8"))

    def _add(self, kind: str, start: int, end: int, replacement: str) -> None:
        self.points.append((kind, self._line_of(start), start, end, replacement))

    def visit_arg(self, node: ast.AST) -> None:
        """Not mutated: annotations (never evaluated, `from __future__ import annotations`), f-strings (messages)."""

    visit_JoinedStr = visit_arg

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.target)
        if node.value is not None:
            self.visit(node.value)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for d in [*node.decorator_list, node.args]:
            self.visit(d)
        self._body(node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for d in [*node.decorator_list, *node.bases]:
            self.visit(d)
        self._body(node.body)

    def visit_Module(self, node: ast.Module) -> None:
        self._body(node.body)

    def _body(self, body: list[ast.stmt]) -> None:
        for i, stmt in enumerate(body):
            if not (i == 0 and isinstance(stmt, ast.Expr) and isinstance(getattr(stmt.value, "value", None), str)):
                self.visit(stmt)  # a docstring is not mutated

    def visit_arguments(self, node: ast.arguments) -> None:
        for d in [*node.defaults, *[d for d in node.kw_defaults if d is not None]]:
            self.visit(d)

    def visit_Compare(self, node: ast.Compare) -> None:
        left = node.left
        for op, right in zip(node.ops, node.comparators):
            if (span := self._token_between(self._end(left), self._start(right), _CMP_TOKEN)) is not None:
                self._add("compare", *span, _CMP_SWAP[type(op)])
            left = right
        self.generic_visit(node)

    def _arith(self, op: ast.operator, a: int, b: int, suffix: str = "") -> None:
        if type(op) in _BIN_SWAP and (span := self._token_between(a, b, _BIN_TOKEN[type(op)] + suffix)) is not None:
            self._add("arith", *span, _BIN_SWAP[type(op)] + suffix)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self._arith(node.op, self._end(node.left), self._start(node.right))
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._arith(node.op, self._end(node.target), self._start(node.value), "=")  # `+=` -> `-=`
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        # One mutant per BoolOp node: every `and` (or `or`) token of the node swapped, as one change.
        word, other = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        spans = [self._token_between(self._end(a), self._start(b), rf"\b{word}\b")
                 for a, b in zip(node.values, node.values[1:])]
        if spans and all(spans):
            lo, hi = spans[0][0], spans[-1][1]  # one span from the first token through the last
            out, pos = [], lo
            for s, e in spans:
                out, pos = [*out, self.src[pos:s].decode("utf-8"), other], e
            out.append(self.src[pos:hi].decode("utf-8"))
            self._add("boolop", lo, hi, "".join(out))
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        start = self._start(node)
        if isinstance(node.op, ast.Not) and (m := re.match(rb"not\s*", self.src[start:self._start(node.operand)])):
            self._add("not_removal", start, start + m.end(), "")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        v = node.value
        if isinstance(v, bool):
            self._add("bool_flip", self._start(node), self._end(node), str(not v))
        elif isinstance(v, int):
            for replacement in (v + 1, v - 1):
                self._add("int_const", self._start(node), self._end(node), str(replacement))


def collect(src: bytes) -> list[Mutant]:
    (col := _Collector(src)).visit(ast.parse(src))
    mutants, seen = [], set()
    for kind, line, start, end, replacement in sorted(col.points, key=lambda p: (p[2], p[3], p[4])):
        new = src[:start] + replacement.encode("utf-8") + src[end:]
        if new == src or new in seen:
            continue
        try:
            ast.parse(new)
        except SyntaxError:
            continue
        seen.add(new)
        mutants.append(Mutant(id=len(mutants), kind=kind, line=line, start=start, end=end,
                              original=src[start:end].decode("utf-8"), mutated=replacement))
    return mutants


def end_leftovers(root: int, wt: Path) -> list[int]:
    """SIGKILL what a test run left: the descendants of `root` (its pytest) and any process working in, or running
    a file of, the worktree (torchrun workers can leave pytest's session). Never this process or its ancestors."""
    table, inside = {}, str(wt.resolve()) + os.sep  # pid -> (parent pid, cwd, command line)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f, open(f"/proc/{pid}/cmdline", "rb") as g:
                ppid, cmd = int(f.read().rsplit(b")", 1)[1].split()[1]), g.read().replace(b"\0", b" ")
            table[int(pid)] = (ppid, os.readlink(f"/proc/{pid}/cwd") + os.sep, cmd.decode("utf-8", "replace"))
        except (OSError, IndexError, ValueError):  # gone meanwhile, or another user's
            continue
    spared, pid = set(), os.getpid()
    while pid > 1 and pid not in spared:
        spared, pid = spared | {pid}, table.get(pid, (0,))[0]
    doomed, todo = set(), [root] if root in table else []
    while todo:  # the pytest tree, while its parent links still hold
        doomed.add(p := todo.pop())
        todo.extend(c for c, (pp, _, _) in table.items() if pp == p and c not in doomed)
    doomed |= {p for p, (_, cwd, cmd) in table.items() if cwd.startswith(inside) or inside in cmd}
    for p in sorted(doomed - spared):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    return sorted(doomed - spared)


def run_tests(wt: Path, tests: list[str], extra: list[str], timeout: float) -> tuple[str, int | None, float, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(PYTHONPATH=str(wt), PYTHONDONTWRITEBYTECODE="1",  # no stale .pyc across same-size mutants
               REFINERY_SHARED_DATA=os.environ.get("REFINERY_SHARED_DATA", str(REPO.parent / "shared" / "data")))
    cmd = [str(PYTHON), "-m", "pytest", "-x", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", *extra, *tests]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=wt, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        status = {0: "survived", 1: "killed", 2: "killed", 3: "killed"}.get(proc.returncode, "error")
    except subprocess.TimeoutExpired:
        end_leftovers(proc.pid, wt)  # pytest, its children, and workers that left its session
        out, status = proc.communicate()[0], "timeout"
    secs = round(time.monotonic() - t0, 2)
    if leftovers := end_leftovers(proc.pid, wt):  # after any run: nothing may outlive it
        print(f"ended {len(leftovers)} leftover process(es) in {wt}: {leftovers}", file=sys.stderr, flush=True)
    return status, None if status == "timeout" else proc.returncode, secs, out.decode("utf-8", "replace")[-2000:]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", required=True, help="product .py file, relative to the repository root")
    ap.add_argument("--tests", nargs="+", required=True, help="test files (or node ids) run per mutant")
    ap.add_argument("--out", required=True, help="JSON results")
    ap.add_argument("--limit", type=int, default=None, help="run at most N mutants, spread over the file")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per test run (default 60)")
    ap.add_argument("--pytest-args", default="", help="extra pytest arguments, one shell-quoted string")
    ap.add_argument("--worktree", default="/tmp/mutwt", help="where the git worktree of HEAD goes (must not exist)")
    ap.add_argument("--ids", default="", help="comma-separated mutant ids to run (e.g. a previous run's survivors)")
    ap.add_argument("--list", action="store_true", help="only list the mutants, run nothing")
    return ap.parse_args()


def run_mutants(args: argparse.Namespace, wt: Path, src: bytes, chosen: list[Mutant], result: dict) -> None:
    """Checks the worktree imports its own copy, runs the baseline (it must pass), then each mutant in turn."""
    module, extra = Path(args.module), shlex.split(args.pytest_args)
    target = wt / module
    if target.read_bytes() != src:
        sys.exit(f"{module} differs between the checkout and HEAD; commit or stash first (mutants are of HEAD)")
    probe = subprocess.run([str(PYTHON), "-c", f"import {module.with_suffix('').as_posix().replace('/', '.')} as m;"
                            " print(m.__file__)"], cwd=wt, env={**os.environ, "PYTHONPATH": str(wt)},
                           capture_output=True, text=True)
    if Path(probe.stdout.strip()).resolve() != target.resolve():
        sys.exit(f"the worktree's module is not the one imported: {probe.stdout.strip()!r} {probe.stderr[-500:]}")
    status, rc, secs, out = run_tests(wt, args.tests, extra, args.timeout)
    result["baseline"] = {"status": status, "rc": rc, "seconds": secs}
    if status != "survived":
        sys.exit(f"{out}\nbaseline run of the tests does not pass (rc={rc}); fix that first")
    timeout = result["mutant_timeout"] = min(args.timeout, max(10.0, 10 * secs))
    print(f"{module}: {result['generated']} mutants, running {len(chosen)}; baseline {secs:.1f}s", flush=True)
    for k, m in enumerate(chosen, 1):
        target.write_bytes(src[:m.start] + m.mutated.encode("utf-8") + src[m.end:])
        try:
            m.status, m.rc, m.seconds, _ = run_tests(wt, args.tests, extra, timeout)
        finally:
            target.write_bytes(src)
        if m.status != "killed":
            print(f"[{k}/{len(chosen)}] {m.status}: {module}:{m.line} {m.original!r} -> {m.mutated!r}", flush=True)


def main() -> int:
    args = parse_args()
    module, wt = Path(args.module), Path(args.worktree)
    src = (REPO / module).read_bytes()
    mutants = collect(src)
    wanted = {int(i) for i in args.ids.split(",")} if args.ids else {m.id for m in mutants}
    chosen = [m for m in mutants if m.id in wanted]
    if args.limit is not None and args.limit < len(chosen):  # spread evenly over the file, not its first lines
        chosen = [chosen[(i * len(chosen)) // args.limit] for i in range(args.limit)]
    if args.list:
        print("\n".join(f"{m.id:4d} {module}:{m.line} {m.kind:12s} {m.original!r} -> {m.mutated!r}" for m in chosen))
        print(f"{len(mutants)} mutants, {len(chosen)} selected")
        return 0
    if wt.exists():
        sys.exit(f"{wt} exists; pass another --worktree (this script never reuses or deletes a folder it did not make)")
    git = ["git", "-C", str(REPO)]
    subprocess.run([*git, "worktree", "add", "--detach", str(wt), "HEAD"], check=True, capture_output=True)
    result: dict = {"module": str(module), "tests": args.tests, "pytest_args": shlex.split(args.pytest_args),
                    "head": subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
                    "generated": len(mutants), "selected": len(chosen), "ids": [m.id for m in chosen]}
    try:
        run_mutants(args, wt, src, chosen, result)
    finally:
        if (wt / module).exists():
            (wt / module).write_bytes(src)
        subprocess.run([*git, "worktree", "remove", "--force", str(wt)], check=False)
        ran = [m for m in chosen if m.status != "pending"]
        counts = {s: sum(m.status == s for m in ran) for s in ("killed", "survived", "timeout", "error")}
        result.update(run=len(ran), **counts)
        result["mutants"] = [{k: v for k, v in asdict(m).items() if k not in ("start", "end")} for m in ran]
        Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        print(f"{module}: generated {len(mutants)}, run {len(ran)},", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
