"""The oracle for the in-process linter: a fresh `pylint` process, SwallowCode's way of scoring a snippet."""
from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from transforms.code.lint import PYLINT_OPTIONS

RATED = re.compile(r"rated at (-?[\d.]+)/10")


def pylint_cli(code: str, folder: Path | None = None) -> tuple[float | None, str]:
    """Score and output of one `pylint` process on `code`, written into `folder` (beside the helper modules it
    imports) or into a fresh temporary folder."""
    with contextlib.nullcontext(folder) if folder else tempfile.TemporaryDirectory() as scratch:
        where = Path(scratch)
        path = where / "cli_snippet.py"
        path.write_text(code, encoding="utf-8")
        try:
            out = subprocess.run([sys.executable, "-m", "pylint", *PYLINT_OPTIONS, str(path)], cwd=where,
                                 capture_output=True, text=True).stdout
        finally:
            path.unlink()
    found = RATED.findall(out)
    return (float(found[-1]) if found else None), out
