"""Headless Chromium for tests (Debian's `chromium` package, never a browser download): load a page from the file
system, dump the DOM it rendered, take a screenshot; and read a run report's funnel table back out of HTML."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

INSTALL = "apt-get install -y chromium"  # as root; run apt-get update first on a fresh machine
MISSING = (f"browser test: chromium is not installed; install Debian's package with `{INSTALL}` "
           "(.ci/run does this before make test)")
NAMES = ("chromium", "chromium-browser")
TIMEOUT_S = 120  # a cold start on a busy 2-core machine; a hung browser fails the test instead of the suite


def require_chromium() -> str:
    """The chromium executable. Missing: under CI=true the test fails; elsewhere it is not run, with one line
    (pytest -ra) that names the install command, so a fresh clone's `make test` stays green and says why."""
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(MISSING)
    pytest.skip(MISSING)


def _run(args: list[str], page: Path) -> subprocess.CompletedProcess:
    """One headless Chromium process with a throwaway profile (parallel tests never share one), no network."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [require_chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
               "--disable-background-networking", "--disable-extensions", "--hide-scrollbars",
               f"--user-data-dir={profile}", *args, page.resolve().as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
                              env={**os.environ, "HOME": profile})
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done


def dump_dom(page: Path) -> str:
    """The DOM as Chromium rendered it (after parsing and any script), serialised as HTML."""
    dom = _run(["--dump-dom"], page).stdout
    assert dom.strip(), "chromium dumped an empty DOM"
    return dom


def screenshot(page: Path, png: Path, *, width: int, height: int) -> Path:
    """A PNG of the page's first width x height pixels."""
    _run([f"--screenshot={png}", f"--window-size={width},{height}"], page)
    assert png.is_file(), f"chromium wrote no screenshot at {png}"
    return png


class FunnelParser(HTMLParser):
    """Rows `<tr class="funnel-row" data-stage=...>` with their `<td data-field=...>` texts, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, dict[str, str]]] = []
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "funnel-row" in (a.get("class") or "").split():
            self.rows.append((a.get("data-stage") or "", {}))
        elif tag == "td" and self.rows and a.get("data-field"):
            self._field = a["data-field"]
            self.rows[-1][1][self._field] = ""

    def handle_data(self, data: str) -> None:
        if self._field is not None:
            self.rows[-1][1][self._field] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._field = None


def funnel_rows(html: str) -> list[tuple[str, dict[str, str]]]:
    """(stage, {field: cell text}) for each funnel row of a report, in the order shown."""
    parser = FunnelParser()
    parser.feed(html)
    return parser.rows
