"""The run report in a real browser: headless Chromium (Debian's package) opens report.html from the file system;
the screenshot is a non-blank PNG with the funnel's bars in it, and the funnel read back from the rendered DOM
equals stats.json. One report is made from hand-written stats, one from a real werp run on its built-in sample."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pipelines import report, werp
from tests.browser import dump_dom, funnel_rows, require_chromium, screenshot
from tests.pipelines.test_report import HOSTILE, hand_rejected, hand_stats, parse, write_stats

WIDTH, HEIGHT = 1280, 2000
DOCS_OUT_BAR = (47, 95, 143)  # report_svg.COLORS[1], "#2f5f8f": the funnel chart's docs-out bars
MIN_BAR_PIXELS = 500  # one docs-out bar of the smallest chart is ~100 x 10 px


def stats_funnel(output: Path) -> list[tuple[str, tuple[int, int, int, int]]]:
    """The funnel as stats.json holds it, read with json alone."""
    stages = json.loads((output / "stats.json").read_text(encoding="utf-8"))["stages"]
    return [(name, (s["docs_in"], s["docs_out"], s["chars_in"], s["chars_out"])) for name, s in stages.items()]


def dom_funnel(dom: str) -> list[tuple[str, tuple[int, int, int, int]]]:
    return [(name, tuple(int(c[f]) for f in ("docs_in", "docs_out", "chars_in", "chars_out")))
            for name, c in funnel_rows(dom)]


def assert_non_blank(png: Path) -> None:
    """A decoded PNG of the asked size, not one flat colour, with the funnel chart's dark bars drawn."""
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (WIDTH, HEIGHT)
        colors = im.convert("RGB").getcolors(maxcolors=WIDTH * HEIGHT)
    by_color = {c: n for n, c in colors}
    background = max(by_color.values())
    assert len(colors) > 16 and WIDTH * HEIGHT - background > 0.02 * WIDTH * HEIGHT
    assert by_color.get(DOCS_OUT_BAR, 0) >= MIN_BAR_PIXELS


def check_in_browser(page: Path, output: Path, tmp_path: Path) -> str:
    """The browser checks every report gets; returns the rendered DOM for more."""
    require_chromium()
    dom = dump_dom(page)
    assert dom_funnel(dom) == stats_funnel(output)
    tags = parse(dom).tags
    assert not [t for t, _ in tags if t == "script"]
    assert any(a.get("http-equiv") == "Content-Security-Policy" and "default-src 'none'" in a.get("content", "")
               for t, a in tags if t == "meta")  # scripts cannot run: what Chromium shows is the JavaScript-off page
    assert_non_blank(screenshot(page, tmp_path / "report.png", width=WIDTH, height=HEIGHT))
    return dom


def test_hand_made_report_renders_with_its_funnel_and_hostile_text_inert(tmp_path):
    out = write_stats(tmp_path / "out", hand_stats())
    page = Path(report.write_report(str(out), str(hand_rejected(tmp_path / "rejected")), samples=2))
    dom = check_in_browser(page, out, tmp_path)
    assert HOSTILE in parse(dom, text_class="text").texts  # shown as text after the browser parsed the page


@pytest.mark.slow
def test_real_werp_run_report_in_chromium(tmp_path):
    """werp on its built-in sample with --rejected_output, then the report: each drop reason of stats.json has
    min(N, count) samples, and the browser's funnel is stats.json's."""
    require_chromium()
    out, rejected = tmp_path / "werp", tmp_path / "rejected"
    werp.run(["--runner=FnApiRunner", "--quiet", f"--output={out}", f"--rejected_output={rejected}"])
    page = Path(report.write_report(str(out), str(rejected), samples=2))
    assert page == out / "report.html"
    dom = check_in_browser(page, out, tmp_path)
    rows = pd.concat([pd.read_parquet(f) for f in sorted(rejected.glob("*.parquet"))], ignore_index=True)
    per_reason = rows.groupby(["stage", "reason"]).size().to_dict()
    shown = [(a["data-stage"], a["data-reason"]) for t, a in parse(dom).tags
             if t == "div" and a.get("class") == "sample"]
    assert per_reason and {k: shown.count(k) for k in per_reason} == {k: min(2, n) for k, n in per_reason.items()}
