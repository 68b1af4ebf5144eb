#!/usr/bin/env python3
"""Small mutation testing for one product module (issue 16, "Tests that catch what they claim").

Parses --module with `ast`, makes single-point mutants (comparison, arithmetic and boolean operator swaps,
int constants +1/-1, `not` removal, True/False flips), and runs --tests against each one in a git worktree
of HEAD, never in the checkout itself. Each mutant rewrites only the bytes of the mutated operator, constant
or keyword, so the rest of the file keeps its formatting. A mutant is "killed" when pytest fails (exit
status 1, 2 or 3), "survived" when it passes, "timeout" past --timeout seconds.

    .venv/bin/python scripts/mutate.py --module transforms/filters/gopher.py \
        --tests tests/filters/test_gopher.py tests/filters/test_gopher_boundaries.py --out /tmp/mut-gopher.json

Extra pytest arguments (e.g. a -k filter) go in --pytest-args, as one shell-quoted string.
"""
from __future__ import annotations

import argparse
import ast
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
        self.line_starts = [0]
        for i, b in enumerate(src):
            if b == 0x0A:
                self.line_starts.append(i + 1)
        self.points: list[tuple[str, int, int, int, str]] = []

    def _start(self, node: ast.AST) -> int:
        return self.line_starts[node.lineno - 1] + node.col_offset

    def _end(self, node: ast.AST) -> int:
        return self.line_starts[node.end_lineno - 1] + node.end_col_offset

    def _line_of(self, offset: int) -> int:
        lo, hi = 0, len(self.line_starts) - 1
        while lo < hi:  # last line start <= offset
            mid = (lo + hi + 1) // 2
            if self.line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    def _token_between(self, a: int, b: int, pattern: str) -> tuple[int, int] | None:
        """The first operator token matching pattern in src[a:b] (the gap between two operands)."""
        gap = self.src[a:b].decode("utf-8")
        gap = re.sub(r"#[^\n]*", lambda m: " " * len(m.group(0).encode("utf-8")), gap)  # comments in the gap
        m = re.search(pattern, gap)
        if m is None:
            return None
        lo = a + len(gap[: m.start()].encode("utf-8"))
        return lo, lo + len(m.group(0).encode("utf-8"))

    def _add(self, kind: str, start: int, end: int, replacement: str) -> None:
        self.points.append((kind, self._line_of(start), start, end, replacement))

    # Annotations are never evaluated here (`from __future__ import annotations`); leave them alone.
    def visit_arg(self, node: ast.arg) -> None:
        pass

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.target)
        if node.value is not None:
            self.visit(node.value)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        self.visit(node.args)
        self._body(node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        for b in node.bases:
            self.visit(b)
        self._body(node.body)

    def visit_Module(self, node: ast.Module) -> None:
        self._body(node.body)

    def _body(self, body: list[ast.stmt]) -> None:
        for i, stmt in enumerate(body):
            if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
                    and isinstance(stmt.value.value, str):
                continue  # docstring
            self.visit(stmt)

    def visit_arguments(self, node: ast.arguments) -> None:
        for d in [*node.defaults, *[d for d in node.kw_defaults if d is not None]]:
            self.visit(d)

    def visit_Compare(self, node: ast.Compare) -> None:
        left = node.left
        for op, right in zip(node.ops, node.comparators):
            span = self._token_between(self._end(left), self._start(right), _CMP_TOKEN)
            if span is not None:
                self._add("compare", *span, _CMP_SWAP[type(op)])
            left = right
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if type(node.op) in _BIN_SWAP:
            span = self._token_between(self._end(node.left), self._start(node.right), _BIN_TOKEN[type(node.op)])
            if span is not None:
                self._add("arith", *span, _BIN_SWAP[type(node.op)])
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if type(node.op) in _BIN_SWAP:
            span = self._token_between(self._end(node.target), self._start(node.value),
                                       _BIN_TOKEN[type(node.op)] + "=")
            if span is not None:
                self._add("arith", *span, _BIN_SWAP[type(node.op)] + "=")
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        # One mutant per BoolOp node: every `and` (or `or`) token of the node swapped, as one change.
        word, other = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        spans = [self._token_between(self._end(a), self._start(b), rf"\b{word}\b")
                 for a, b in zip(node.values, node.values[1:])]
        if spans and all(spans):
            # One span from the first token through the last, every token in it swapped.
            lo, hi = spans[0][0], spans[-1][1]
            out, pos = [], lo
            for s, e in spans:
                out.append(self.src[pos:s].decode("utf-8"))
                out.append(other)
                pos = e
            out.append(self.src[pos:hi].decode("utf-8"))
            self._add("boolop", lo, hi, "".join(out))
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            start = self._start(node)
            m = re.match(rb"not\s*", self.src[start:self._start(node.operand)])
            if m is not None:
                self._add("not_removal", start, start + m.end(), "")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        v = node.value
        if isinstance(v, bool):
            self._add("bool_flip", self._start(node), self._end(node), str(not v))
        elif isinstance(v, int):
            self._add("int_const", self._start(node), self._end(node), str(v + 1))
            self._add("int_const", self._start(node), self._end(node), str(v - 1))

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        pass  # f-strings: error messages and keys; their expressions hold no rule logic here


def collect(src: bytes) -> list[Mutant]:
    tree = ast.parse(src)
    col = _Collector(src)
    col.visit(tree)
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


def apply(src: bytes, m: Mutant) -> bytes:
    return src[:m.start] + m.mutated.encode("utf-8") + src[m.end:]


def run_tests(wt: Path, tests: list[str], extra: list[str], timeout: float) -> tuple[str, int | None, float, str]:
    env = dict(os.environ)
    env.pop("CI", None)
    env.update(PYTHONPATH=str(wt), PYTHONDONTWRITEBYTECODE="1",  # no stale .pyc across same-size mutants
               REFINERY_SHARED_DATA=os.environ.get("REFINERY_SHARED_DATA", str(REPO.parent / "shared" / "data")))
    cmd = [str(PYTHON), "-m", "pytest", "-x", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", *extra, *tests]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=wt, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the pytest process group this function started
        proc.communicate()
        return "timeout", None, time.monotonic() - t0, ""
    secs = time.monotonic() - t0
    rc = proc.returncode
    status = {0: "survived", 1: "killed", 2: "killed", 3: "killed"}.get(rc, "error")
    return status, rc, secs, out.decode("utf-8", "replace")[-2000:]


def select(mutants: list[Mutant], limit: int | None) -> list[Mutant]:
    """Up to `limit` mutants spread evenly over the file (not just its first lines)."""
    if limit is None or limit >= len(mutants):
        return mutants
    return [mutants[(i * len(mutants)) // limit] for i in range(limit)]


def main() -> int:
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
    args = ap.parse_args()

    module = Path(args.module)
    src = (REPO / module).read_bytes()
    mutants = collect(src)
    if args.ids:
        wanted = {int(i) for i in args.ids.split(",")}
        mutants = [m for m in mutants if m.id in wanted]
    chosen = select(mutants, args.limit)
    if args.list:
        for m in chosen:
            print(f"{m.id:4d} {module}:{m.line} {m.kind:12s} {m.original!r} -> {m.mutated!r}")
        print(f"{len(mutants)} mutants, {len(chosen)} selected")
        return 0

    wt = Path(args.worktree)
    if wt.exists():
        sys.exit(f"{wt} exists; pass another --worktree (this script never reuses or deletes a folder it did not make)")
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(wt), "HEAD"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    extra = shlex.split(args.pytest_args)
    result: dict = {"module": str(module), "tests": args.tests, "pytest_args": extra,
                    "head": subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                           text=True).stdout.strip(),
                    "generated": len(mutants), "selected": len(chosen)}
    target = wt / module
    try:
        head_src = target.read_bytes()
        if head_src != src:
            sys.exit(f"{module} differs between the checkout and HEAD; commit or stash first (mutants are of HEAD)")
        probe = subprocess.run([str(PYTHON), "-c", f"import {module.with_suffix('').as_posix().replace('/', '.')} as m;"
                                " print(m.__file__)"], cwd=wt, env={**os.environ, "PYTHONPATH": str(wt)},
                               capture_output=True, text=True)
        if Path(probe.stdout.strip()).resolve() != target.resolve():
            sys.exit(f"the worktree's module is not the one imported: {probe.stdout.strip()!r} {probe.stderr[-500:]}")
        status, rc, secs, out = run_tests(wt, args.tests, extra, args.timeout)
        result["baseline"] = {"status": status, "rc": rc, "seconds": round(secs, 2)}
        if status != "survived":
            print(out, file=sys.stderr)
            sys.exit(f"baseline run of the tests does not pass (rc={rc}); fix that first")
        timeout = min(args.timeout, max(10.0, 10 * secs))
        result["mutant_timeout"] = timeout
        print(f"{module}: {len(mutants)} mutants, running {len(chosen)}; baseline {secs:.1f}s", flush=True)
        for k, m in enumerate(chosen, 1):
            target.write_bytes(apply(src, m))
            try:
                m.status, m.rc, m.seconds, _ = run_tests(wt, args.tests, extra, timeout)
            finally:
                target.write_bytes(src)
            m.seconds = round(m.seconds, 2)
            if m.status != "killed":
                print(f"[{k}/{len(chosen)}] {m.status}: {module}:{m.line} {m.original!r} -> {m.mutated!r}", flush=True)
    finally:
        if target.exists():
            target.write_bytes(src)
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(wt)], check=False)
        ran = [m for m in chosen if m.status != "pending"]
        counts = {s: sum(m.status == s for m in ran) for s in ("killed", "survived", "timeout", "error")}
        result.update(run=len(ran), **counts)
        result["mutants"] = [{k: v for k, v in asdict(m).items() if k not in ("start", "end")} for m in ran]
        Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        print(f"{module}: generated {len(mutants)}, run {len(ran)}, " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
