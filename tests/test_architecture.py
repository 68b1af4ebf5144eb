"""The arrows point one way: pure modules import neither Beam nor torch; transforms never import pipelines."""
from __future__ import annotations

import ast
from pathlib import Path

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
    for rel in ("training/tokenizer.py", "training/data/format.py", "transforms/packing.py", "transforms/beam/packing.py"):
        bad = {m for m in imported_modules(REPO / rel) if m.split(".")[0] == "torch"}
        assert not bad, f"{rel} imports {sorted(bad)}"
