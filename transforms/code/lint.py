"""SwallowCode stage 2, the pure part: pylint options, the comment-token penalty and the keep rule."""
from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass

# SwallowCode src/code/pretrain_dataset/filtering.py, check_code_quality(): `pylint --persistent=n
# --disable=<these> file.py`, everything else at pylint's defaults (data-seeds 2.1).
DISABLED_CHECKS = ("E0401", "C0114", "C0301", "C0103", "C0116", "C0411", "R0903", "W0511", "C0412")
PYLINT_OPTIONS = ("--persistent=n", "--disable=" + ",".join(DISABLED_CHECKS))

# Reasons, `<family>.<rule>`.
LOW_SCORE = "lint.low_score"
NO_SCORE = "lint.no_score"  # pylint printed no "rated at" line (no statements, syntax error): a fail
TIMEOUT = "lint.timeout"
CRASH = "lint.crash"  # the worker process died (segfault, C-stack overflow, OOM kill)
TOO_LARGE = "lint.too_large"


@dataclass(frozen=True, kw_only=True, slots=True)
class LintConfig:
    """How stage 2 runs and what it keeps; loaded with core.config.from_mapping."""

    min_score: float = 7.0  # keep final score >= this, 0-10 (SwallowCode, data-seeds 2.1)
    timeout_s: float = 30.0  # per snippet; a snippet past it gets TIMEOUT and its worker is replaced
    max_bytes: int | None = 200_000  # UTF-8 bytes; bigger snippets get TOO_LARGE without linting; None = no cap
    workers: int = 2  # processes; this machine has 2 cores
    batch_size: int = 64  # snippets sent to the pool per call from the Beam DoFn
    max_snippets_per_worker: int = 500  # recycle a worker after this many, bounding astroid's module cache

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 10.0:
            raise ValueError(f"min_score ({self.min_score}) must be within 0..10, pylint's scale")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s ({self.timeout_s}) must be > 0")
        if self.max_bytes is not None and self.max_bytes <= 0:
            raise ValueError(f"max_bytes ({self.max_bytes}) must be > 0; use None for no cap")
        for name in ("workers", "batch_size", "max_snippets_per_worker"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} ({getattr(self, name)}) must be >= 1")


def comment_penalty(code: str) -> float:
    """COMMENT tokens / all tokens from tokenize, as SwallowCode's check_comment_ratio (it counts tokens,
    not lines); tokenize errors and empty code give 0, i.e. no penalty."""
    total = comments = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            total += 1
            comments += tok.type == tokenize.COMMENT
    except (tokenize.TokenError, SyntaxError):  # IndentationError is a SyntaxError
        return 0.0
    return comments / total if total else 0.0


def final_score(pylint_score: float | None, ratio: float) -> float | None:
    """SwallowCode's apply_comment_penalty: ratio 1 -> 0, else score * (1 - ratio); None stays None."""
    if pylint_score is None:
        return None
    if ratio == 1.0:
        return 0.0
    return pylint_score * (1.0 - ratio) if ratio > 0 else pylint_score


def keep(score: float | None, *, cfg: LintConfig) -> tuple[bool, str | None]:
    """The stage-2 decision on a final score: (True, None) or (False, reason)."""
    if score is None:
        return False, NO_SCORE
    return (True, None) if score >= cfg.min_score else (False, LOW_SCORE)
