"""The arrows point one way. Top-level packages: core at the bottom (imports nothing of ours); transforms (the data
side) and training (the model side) import core and never each other; pipelines (the jobs) import all three. Inside a
package no two modules import each other, even through others. Pure modules import neither Beam nor torch, and the
model imports no distributed code. README "Layout" states the same rules."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


OURS = ("core", "transforms", "training", "pipelines")
MAY_IMPORT = {  # each top-level package -> the packages of ours it may import (besides itself)
    "core": set(),
    "transforms": {"core"},
    "training": {"core"},
    "pipelines": {"core", "transforms", "training"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_imports(path: Path) -> set[str]:
    """Our modules that `path` imports, anywhere in it (a function-level import is an arrow too), relative imports
    resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)  # `from pkg import module`
    return {n for n in names if n.split(".")[0] in OURS}


def product_files() -> list[Path]:
    return sorted(p for top in OURS for p in (REPO / top).rglob("*.py"))


def our_modules(path: Path, modules: set[str]) -> set[str]:
    """Our modules that `path` imports: `from pkg.mod import name` counts as pkg.mod."""
    found = set()
    for m in our_imports(path):
        while m and m not in modules:
            m = m.rpartition(".")[0]
        if m:
            found.add(m)
    return found


@pytest.mark.parametrize("top", OURS)
def test_top_level_packages_import_only_downwards(top):
    modules = {module_name(p) for p in product_files()}
    offenders = [f"{module_name(p)} -> {m}" for p in (REPO / top).rglob("*.py") for m in sorted(our_modules(p, modules))
                 if m.split(".")[0] not in MAY_IMPORT[top] | {top}]
    assert not offenders, f"{top}/ may import only {sorted(MAY_IMPORT[top])} of ours: {offenders}"


def test_no_import_cycles_between_modules():
    modules = {module_name(p): p for p in product_files()}
    edges = {name: {m for m in our_modules(path, set(modules))
                    if m != name and not name.startswith(m + ".")}  # a package's __init__ is not a cycle partner
             for name, path in modules.items()}
    cycles, index, low, stack, on_stack, counter = [], {}, {}, [], set(), [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, f"modules that import each other (directly or through others): {cycles}"


def test_the_model_imports_no_distributed_code():
    """The model is plain torch, as torchtitan's: parallelism is applied from outside (training/parallel)."""
    offenders = [f"{module_name(p)} -> {m}" for p in (REPO / "training" / "model").rglob("*.py")
                 for m in imported_modules(p) | our_imports(p)
                 if m.startswith(("torch.distributed", "training.parallel", "training.trainers"))]
    assert not offenders, offenders


def test_pure_transforms_import_no_beam_or_torch():
    offenders = []
    for path in (REPO / "transforms").rglob("*.py"):
        if "beam" in path.relative_to(REPO / "transforms").parts:
            continue
        bad = {m for m in imported_modules(path) if m.split(".")[0] in ("apache_beam", "torch")}
        if bad:
            offenders.append(f"{path.relative_to(REPO)}: {sorted(bad)}")
    assert not offenders, "pure modules must not import Beam/torch; move the shell to transforms/beam/: " + "; ".join(offenders)


def test_transforms_never_import_pipelines():
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "transforms").rglob("*.py")
        if any(m.split(".")[0] == "pipelines" for m in imported_modules(p))
    ]
    assert not offenders, f"transforms/ must not import pipelines/: {offenders}"


def test_beam_shells_do_not_import_runners():
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "transforms").rglob("*.py")
        if any(m.startswith("apache_beam.runners") for m in imported_modules(p))
    ]
    assert not offenders, f"transforms/ must not import Beam runners: {offenders}"


def test_training_never_imports_beam_or_pipelines():
    offenders = [
        f"{p.relative_to(REPO)}: {sorted(bad)}"
        for p in (REPO / "training").rglob("*.py")
        if (bad := {m for m in imported_modules(p) if m.split(".")[0] in ("apache_beam", "pipelines")})
    ]
    assert not offenders, f"training/ must not import Beam or pipelines: {offenders}"


def test_modules_beam_workers_import_for_tokenizing_do_not_import_torch():
    """pipelines.tokenize runs these on Beam workers, which need not have torch installed."""
    for rel in ("transforms/tokenizer.py", "core/shards.py", "transforms/packing.py", "transforms/beam/packing.py"):
        bad = {m for m in imported_modules(REPO / rel) if m.split(".")[0] == "torch"}
        assert not bad, f"{rel} imports {sorted(bad)}"


def test_no_product_file_is_over_300_lines():
    """Issue 17's rule: small modules named for what they do; a file past 300 lines is split, not grown."""
    long = {str(p.relative_to(REPO)): n for p in product_files()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 300}
    assert not long, f"split these modules (lines): {long}"
    assert len(product_files()) > 50  # the walk finds the packages
