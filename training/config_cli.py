"""The command-line side of a config: `key=value` overrides, and `--help` listing every key with its docstring."""
from __future__ import annotations

import ast
import copy
import dataclasses
import inspect
import textwrap
from typing import Any, Mapping

from core.config import ConfigError, parse_yaml_value


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


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optim.lr=1e-3' -> (['optim', 'lr'], 0.001); the value is read as the config files are (YAML 1.2 scalars)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key=value (e.g. train.steps=100)")
    key, raw = text.split("=", 1)
    return key.strip().split("."), parse_yaml_value(raw)


def apply_overrides(data: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in a nested mapping (a copy); unknown keys are caught later by the strict loader."""
    data = copy.deepcopy(dict(data))
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
        node[path[-1]] = value
    return data
