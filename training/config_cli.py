"""`--help` for a config: every key with its default and the docstring under its field."""
from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field (torchtitan's habit), read from the source of cls and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def describe_keys(root: type) -> str:
    """Every key of config class `root` (one level of sections) with its default and its docstring, for --help."""
    lines = []
    for f in dataclasses.fields(root):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if not dataclasses.is_dataclass(default):
            lines.append(f"  {f.name}={default!r}  {field_docs(root).get(f.name, '')}".rstrip())
            continue
        lines.append(f"  {f.name}:  {(type(default).__doc__ or '').strip()}")
        docs = field_docs(type(default))
        for g in dataclasses.fields(default):
            lines.append(f"    {f.name}.{g.name}={getattr(default, g.name)!r}  {docs.get(g.name, '')}".rstrip())
    return "\n".join(lines)
