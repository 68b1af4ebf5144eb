"""SwallowCode stage 1: compile() a snippet without running it, turning every failure into a result."""
from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

# Reasons, `<family>.<rule>` (STYLE.md rule 4).
SYNTAX_ERROR = "syntax.error"  # SyntaxError, IndentationError, TabError
NUL_BYTE = "syntax.nul_byte"  # compile() raises ValueError (before 3.11.4) or SyntaxError on "\x00"
TOO_DEEP = "syntax.too_deep"  # RecursionError / MemoryError from the parser on pathological nesting
NOT_UTF8 = "syntax.not_utf8"
TOO_LARGE = "syntax.too_large"


@dataclass(frozen=True, kw_only=True, slots=True)
class SyntaxConfig:
    """Limits for the syntax stage; SwallowCode had none, a cap keeps one huge file from stalling a worker."""

    max_bytes: int | None = 1_000_000  # UTF-8 bytes; None = no cap. The Stack v2 smol files are far below 1 MB.

    def __post_init__(self) -> None:
        if self.max_bytes is not None and self.max_bytes <= 0:
            raise ValueError(f"max_bytes ({self.max_bytes}) must be > 0; use None for no cap")


@dataclass(frozen=True, kw_only=True, slots=True)
class SyntaxResult:
    """Whether the snippet compiles, why not, and with which Python (compile() changes between versions)."""

    ok: bool
    reason: str | None = None  # one of the constants above, None when ok
    error_type: str | None = None  # exception class name, e.g. "SyntaxError"
    message: str | None = None
    line: int | None = None  # 1-based line of the error when the parser reports one
    python: str = f"{sys.version_info.major}.{sys.version_info.minor}"

    @property
    def error(self) -> str | None:
        """"Type: message" for the output column, None when the code compiles."""
        return None if self.ok else f"{self.error_type}: {self.message}"


def check_syntax(code: str, *, cfg: SyntaxConfig | None = None) -> SyntaxResult:
    """compile() like SwallowCode's filtering.py (dont_inherit so our __future__ flags never leak in)."""
    cfg = cfg or SyntaxConfig()
    if cfg.max_bytes is not None:
        size = len(code.encode("utf-8", errors="surrogatepass"))
        if size > cfg.max_bytes:
            return SyntaxResult(ok=False, reason=TOO_LARGE, error_type="TooLarge",
                                message=f"{size} bytes > max_bytes ({cfg.max_bytes})")
    try:
        with warnings.catch_warnings():  # SyntaxWarnings ("is" with a literal) neither spam logs nor turn fatal
            warnings.simplefilter("ignore")
            compile(code, "<string>", "exec", dont_inherit=True)
    except SyntaxError as exc:  # includes IndentationError and TabError
        if "\x00" in code:  # 3.11.4+ and 3.12 raise SyntaxError for NUL bytes, older ones ValueError
            return SyntaxResult(ok=False, reason=NUL_BYTE, error_type=type(exc).__name__, message=exc.msg)
        return SyntaxResult(ok=False, reason=SYNTAX_ERROR, error_type=type(exc).__name__,
                            message=exc.msg, line=exc.lineno)
    except ValueError as exc:  # "source code string cannot contain null bytes"
        return SyntaxResult(ok=False, reason=NUL_BYTE, error_type="ValueError", message=str(exc))
    except (RecursionError, MemoryError) as exc:
        return SyntaxResult(ok=False, reason=TOO_DEEP, error_type=type(exc).__name__, message=str(exc)[:200])
    return SyntaxResult(ok=True)


def decode_source(data: bytes, *, cfg: SyntaxConfig | None = None) -> tuple[str | None, SyntaxResult | None]:
    """Bytes -> (text, None), or (None, failed result) for an over-cap or non-UTF-8 file (The Stack is UTF-8)."""
    cfg = cfg or SyntaxConfig()
    if cfg.max_bytes is not None and len(data) > cfg.max_bytes:
        return None, SyntaxResult(ok=False, reason=TOO_LARGE, error_type="TooLarge",
                                  message=f"{len(data)} bytes > max_bytes ({cfg.max_bytes})")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, SyntaxResult(ok=False, reason=NOT_UTF8, error_type="UnicodeDecodeError",
                                  message=f"{exc.reason} at byte {exc.start}: {data[exc.start:exc.start + 4]!r}")
