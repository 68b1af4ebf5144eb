"""Load frozen config dataclasses from YAML, failing at once on a typo or a wrong type, naming file, key and fix.

One YAML reader for every job (`load_yaml`, `parse_yaml_value`): YAML 1.2's core schema for numbers and
booleans, because PyYAML implements YAML 1.1, where `3e-3` is a string, `no` is False (the "Norway problem")
and `1:30` is 90. Types are checked exactly: a bool is not an int, a string is not a number.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A recipe that cannot be used; the message names the key, the value and the fix."""


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars (ints, floats, bools); strings and null as before."""


_REPLACED_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# YAML 1.2 core schema (spec section 10.3.2), plus `_` digit separators as PyYAML and Python allow (1_000_000).
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
for _tag, _regexp, _first in (("bool", _BOOL, "tTfF"), ("int", _INT, "-+0123456789"),
                              ("float", _FLOAT, "-+0123456789.")):
    _ConfigLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", _regexp, list(_first))


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    if text.startswith(("0o", "0x")):
        return int(text, 0)
    return int(text, 10)  # YAML 1.2: 010 is ten, not eight


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = loader.construct_scalar(node).replace("_", "").lower()
    special = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}
    return special[text] if text in special else float(text)


_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_ConfigLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_ConfigLoader.add_constructor("tag:yaml.org,2002:bool", lambda loader, node: loader.construct_scalar(node).lower() == "true")


def parse_yaml(text: str, *, where: str) -> Any:
    """A YAML document with the config schema; a syntax error names `where` (a file or a flag)."""
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({' '.join(str(exc).split())})") from None


def load_yaml(path: str | Path) -> Any:
    """A config file's contents ({} when empty), read with the config schema."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc})") from None
    data = parse_yaml(text, where=str(path))
    return {} if data is None else data


def parse_yaml_value(text: str) -> Any:
    """A `key=value` flag's value as YAML reads it (numbers, true/false, null, lists); bare words stay strings."""
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506
    except yaml.YAMLError:
        return text


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optim.lr=1e-3' -> (['optim', 'lr'], 0.001); the value is read as the config files are (YAML 1.2 scalars)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or key.strip().startswith("-"):
        raise ConfigError(f"override {text!r} is not key=value (e.g. train.steps=100)")
    return key.strip().split("."), parse_yaml_value(raw)


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """`key=value` texts from a command line set into a copy of `data`, in order (see set_keys)."""
    data = copy.deepcopy(dict(data))
    for text in overrides:
        path, value = parse_override(text)
        _set_path(data, path, value, text)
    return data


def set_keys(data: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a copy of nested mapping `data`; unknown keys are caught by the strict loader after.

    Inside a list, a part is an index (`steps.0.min_words`) or, in a list of one-key mappings such as a recipe's
    steps, the name of an item (`steps.gopher_quality.min_words=40`)."""
    data = copy.deepcopy(dict(data))
    for key, value in values.items():
        _set_path(data, key.split("."), value, f"{key}={value!r}")
    return data


def _set_path(data: dict, path: list[str], value: Any, text: str) -> None:
    node: Any = data
    for part in path[:-1]:
        node = _child(node, part, text)
    _set(node, path[-1], value, text)


def _child(node: Any, part: str, text: str) -> Any:
    """The section or list item `part` names, made empty where the config leaves it out (or null)."""
    if isinstance(node, dict):
        if node.get(part) is None:
            node[part] = {}
        return node[part]
    if isinstance(node, list):
        index = _list_index(node, part, text)
        item = node[index]
        if item == part:  # a step named bare (its defaults) gets settings
            item = node[index] = {part: {}}
        if isinstance(item, dict) and len(item) == 1 and part in item:  # a named step: go into its settings
            if item[part] is None:
                item[part] = {}
            return item[part]
        return item
    raise ConfigError(f"override {text!r}: {part!r} is inside {_describe(node)}, which has no keys")


def _set(node: Any, part: str, value: Any, text: str) -> None:
    if isinstance(node, dict):
        node[part] = value
    elif isinstance(node, list):
        node[_list_index(node, part, text)] = value
    else:
        raise ConfigError(f"override {text!r}: cannot set {part!r} inside {_describe(node)}")


def _list_index(node: list, part: str, text: str) -> int:
    """A list item by position, or a named one ({name: settings}) by its name."""
    if re.fullmatch(r"-?[0-9]+", part):
        index = int(part)
        if not -len(node) <= index < len(node):
            raise ConfigError(f"override {text!r}: index {index} is outside the list of {len(node)}")
        return index
    names = [item if isinstance(item, str) else next(iter(item)) if isinstance(item, dict) and len(item) == 1
             else None for item in node]
    if names.count(part) == 1:
        return names.index(part)
    known = [n for n in names if n is not None]
    if part in known:
        raise ConfigError(f"override {text!r}: {part!r} names {known.count(part)} items of the list; give its "
                          "position instead (0 is the first)")
    guess = difflib.get_close_matches(part, known, n=1)
    raise ConfigError(f"override {text!r}: no item {part!r} in the list{f'; did you mean {guess[0]!r}?' if guess else ''}"
                      f" (items: {', '.join(known) or 'none named'}; or give a position, 0 is the first)")


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, *, where: str, key: str = "") -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclasses.

    `where` is the file (or flags) the values came from and `key` the dotted path to `data` inside it; both
    prefix every error, e.g. `configs/train/tiny.yaml: optim.lr: expected float, got str '3e-3'`."""
    data = {} if data is None else data
    at = f"{where}: {key}" if key else where
    if not isinstance(data, MappingABC):
        raise ConfigError(f"{at}: expected a mapping of keys to values, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        guesses = {k: difflib.get_close_matches(str(k), list(fields), n=1) for k in unknown}
        hint = "; ".join(f"did you mean {g[0]!r} for {k!r}?" for k, g in guesses.items() if g)
        raise ConfigError(f"{at}: unknown key(s) {', '.join(map(repr, unknown))}; {hint + ' ' if hint else ''}valid "
                          f"keys are: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, where=where, key=f"{key}.{name}" if key else name)
              for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{at}: {exc}") from None
    except ValueError as exc:  # __post_init__ validation
        raise ConfigError(f"{at}: {exc}") from None


def _describe(value: Any) -> str:
    """`bool True`, `str '3e-3'`: the YAML value and the type it was read as, for error messages."""
    return f"{type(value).__name__} {value!r}"


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _coerce(hint: Any, value: Any, *, where: str, key: str) -> Any:
    """Check one YAML value against the annotated type exactly, converting only losslessly (int -> float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    fail = ConfigError(f"{where}: {key}: expected {_type_name(hint)}, got {_describe(value)}")
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where=where, key=key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where=where, key=key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else fail
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key}: expected a list, got {_describe(value)}")
        item = args[0] if args else Any
        return origin(_coerce(item, v, where=where, key=f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (dict, MappingABC) or hint in (dict, Mapping):
        if not isinstance(value, MappingABC):
            raise ConfigError(f"{where}: {key}: expected a mapping, got {_describe(value)}")
        return dict(value) if len(args) < 2 else {k: _coerce(args[1], v, where=where, key=f"{key}.{k}")
                                                   for k, v in value.items()}
    if origin is typing.Literal:
        if not any(type(value) is type(a) and value == a for a in args):  # exact: True is not 1
            guess = difflib.get_close_matches(value, [a for a in args if isinstance(a, str)], n=1) \
                if isinstance(value, str) else []
            raise ConfigError(f"{where}: {key}: {value!r} is not one of {', '.join(map(repr, args))}"
                              + (f"; did you mean {guess[0]!r}?" if guess else ""))
        return value
    return _coerce_scalar(hint, value, fail, at=f"{where}: {key}")


def _coerce_scalar(hint: Any, value: Any, fail: ConfigError, *, at: str) -> Any:
    """bool, int, float and str exactly; an int is a float, a float is an int only when it is whole (1e6)."""
    if hint is float:
        if type(value) in (int, float) and math.isfinite(value):
            return float(value)
        if type(value) is float:  # .nan or .inf: no setting means either (0 or null switch things off)
            raise ConfigError(f"{at}: {value} is not a finite number; give a finite value (null switches a setting "
                              "off where it may be off)")
        raise fail
    if hint is int:
        if type(value) is int:
            return value
        if type(value) is float and value.is_integer():  # 1e6 in YAML is a float; 2.5 is not an int
            return int(value)
        raise fail
    if hint in (bool, str):
        if type(value) is not hint:
            raise fail
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise fail
    return value
