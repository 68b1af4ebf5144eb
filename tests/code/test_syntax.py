"""The syntax stage: every failure is a result with a reason, nothing raises, nothing runs."""
import sys

from transforms.code.syntax import (NOT_UTF8, NUL_BYTE, SYNTAX_ERROR, TOO_DEEP, TOO_LARGE, SyntaxConfig,
                                    check_syntax, decode_source)


def test_valid_code_passes_and_names_the_python():
    result = check_syntax("def f(x):\n    return x + 1\n")
    assert result.ok and result.reason is None
    assert result.python == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_python2_print_statement_is_a_syntax_error():
    result = check_syntax('print "hello"\n')
    assert (result.ok, result.reason, result.error_type, result.line) == (False, SYNTAX_ERROR, "SyntaxError", 1)


def test_indentation_error_reports_its_line():
    result = check_syntax("def f():\nreturn 1\n")
    assert (result.reason, result.error_type, result.line) == (SYNTAX_ERROR, "IndentationError", 2)


def test_code_is_compiled_not_run():
    assert check_syntax("raise SystemExit(3)\n").ok


def test_nul_byte():
    assert check_syntax("x = 1\x00\n").reason == NUL_BYTE


def test_pathological_nesting_is_a_result():
    result = check_syntax("(" * 100_000)
    assert not result.ok and result.reason in (SYNTAX_ERROR, TOO_DEEP)
    assert check_syntax("-" * 500_000 + "1").reason == TOO_DEEP  # MemoryError in the parser
    assert check_syntax("x = " + "+".join(["1"] * 200_000)).reason == TOO_DEEP  # RecursionError in the compiler


def test_huge_file_over_the_cap():
    code = "x = 1\n" * 200_000
    assert check_syntax(code, cfg=SyntaxConfig(max_bytes=1_000_000)).reason == TOO_LARGE
    assert check_syntax(code, cfg=SyntaxConfig(max_bytes=None)).ok
    text, failed = decode_source(code.encode(), cfg=SyntaxConfig(max_bytes=1000))
    assert text is None and failed.reason == TOO_LARGE


def test_decode_utf8_and_non_utf8():
    assert decode_source("s = 'héllo'\n".encode()) == ("s = 'héllo'\n", None)
    text, failed = decode_source("s = 'héllo'\n".encode("latin-1"))
    assert text is None and failed.reason == NOT_UTF8 and "byte 6" in failed.message
