"""The syntax stage at its edges (issue 16 mutation survivors): the 1 MB default cap on both sides, max_bytes
validation, ok=False on every failure, compile() without our module's __future__ flags, the pre-3.11.4 NUL
path, the 200-character message cap, and the frozen/keyword-only/slotted contract of both dataclasses."""
from __future__ import annotations

import dataclasses

import pytest

from transforms.code import syntax
from transforms.code.syntax import (NOT_UTF8, NUL_BYTE, TOO_DEEP, TOO_LARGE, SyntaxConfig, SyntaxResult,
                                    check_syntax, decode_source)

MB = 1_000_000  # the documented default cap, "1 MB" of UTF-8


def comment_file(size: int) -> str:
    """A valid Python file of exactly `size` UTF-8 bytes: one comment line."""
    return "#" + "a" * (size - 2) + "\n"


def test_the_default_cap_is_one_million_bytes_on_both_sides() -> None:
    at, over = comment_file(MB), comment_file(MB + 1)
    assert len(at.encode()) == MB and len(over.encode()) == MB + 1
    assert check_syntax(at).ok
    result = check_syntax(over)
    assert (result.ok, result.reason) == (False, TOO_LARGE)
    assert decode_source(at.encode()) == (at, None)
    text, failed = decode_source(over.encode())
    assert text is None and (failed.ok, failed.reason) == (False, TOO_LARGE)


@pytest.mark.parametrize("cap", [1, 5])
def test_a_snippet_of_exactly_max_bytes_passes_and_one_more_byte_does_not(cap: int) -> None:
    cfg = SyntaxConfig(max_bytes=cap)
    at, over = "\n" * cap, "\n" * (cap + 1)
    assert check_syntax(at, cfg=cfg).ok and decode_source(at.encode(), cfg=cfg) == (at, None)
    assert check_syntax(over, cfg=cfg).reason == TOO_LARGE
    assert decode_source(over.encode(), cfg=cfg)[1].reason == TOO_LARGE


@pytest.mark.parametrize("cap", [0, -1])
def test_a_cap_below_one_byte_is_rejected(cap: int) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        SyntaxConfig(max_bytes=cap)


def test_every_failure_is_not_ok() -> None:
    assert check_syntax("x = 1\n" * 10, cfg=SyntaxConfig(max_bytes=5)).ok is False  # TOO_LARGE
    assert check_syntax("x = 1\x00\n").ok is False  # NUL_BYTE
    assert check_syntax("-" * 500_000 + "1").ok is False  # TOO_DEEP
    assert decode_source(b"x = 1\n", cfg=SyntaxConfig(max_bytes=2))[1].ok is False  # TOO_LARGE
    assert decode_source("s = 'é'\n".encode("latin-1"))[1].ok is False  # NOT_UTF8
    for result in (check_syntax("x = 1\x00\n"), check_syntax("-" * 500_000 + "1")):
        assert result.error is not None


def test_our_future_annotations_flag_does_not_leak_into_the_snippet() -> None:
    """A yield in a nested function's annotation compiles in a plain interpreter (the annotation runs in the outer
    function); under `from __future__ import annotations`, which syntax.py itself has, it is a SyntaxError."""
    code = "def outer():\n    def inner(x: (yield)):\n        pass\n"
    assert check_syntax(code).ok
    with pytest.raises(SyntaxError):
        compile("from __future__ import annotations\n" + code, "<s>", "exec", dont_inherit=True)


def fake_compile(monkeypatch, exc: BaseException) -> None:
    """compile() as syntax.py sees it (a module global shadows the builtin), raising exc; pytest's own compile()
    calls, e.g. ast.parse while it reports a failure, keep the real one."""
    def raiser(*args, **kwargs):
        raise exc
    monkeypatch.setattr(syntax, "compile", raiser, raising=False)


def test_a_nul_byte_value_error_as_older_pythons_raise_it(monkeypatch) -> None:
    fake_compile(monkeypatch, ValueError("source code string cannot contain null bytes"))
    result = check_syntax("x = 1\x00\n")
    assert (result.ok, result.reason, result.error_type) == (False, NUL_BYTE, "ValueError")


@pytest.mark.parametrize("length", [199, 200, 201, 300])
def test_a_too_deep_message_is_cut_at_200_characters(monkeypatch, length: int) -> None:
    fake_compile(monkeypatch, RecursionError("m" * length))
    result = check_syntax("x = 1\n")
    assert (result.ok, result.reason, result.error_type) == (False, TOO_DEEP, "RecursionError")
    assert result.message == "m" * min(length, 200)


def test_not_utf8_names_the_byte() -> None:
    text, failed = decode_source(b"ab\xff\xfecd")
    assert text is None and (failed.ok, failed.reason) == (False, NOT_UTF8)
    assert failed.message.endswith("at byte 2: b'\\xff\\xfecd'")


@pytest.mark.parametrize("cls", [SyntaxConfig, SyntaxResult])
def test_frozen_hashable_keyword_only_and_slotted(cls: type) -> None:
    value = cls() if cls is SyntaxConfig else cls(ok=True)
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, first, getattr(value, first))
    twin = cls() if cls is SyntaxConfig else cls(ok=True)
    assert hash(value) == hash(twin) and {value: 1}[twin] == 1
    with pytest.raises(TypeError, match="positional"):
        cls(getattr(value, first))
    assert not hasattr(value, "__dict__")
    with pytest.raises((AttributeError, TypeError)):
        object.__setattr__(value, "a_misspelt_field", 1)
