"""Extractors on literal pages and on the shared extraction benchmarks; the sandbox's limits and restarts."""
from __future__ import annotations

import collections
import gzip
import json
import os
import re
import signal

import pytest

from core.config import ConfigError, from_mapping
from tests.conftest import shared_path
from transforms.extract import (
    ExtractConfig,
    ExtractionTimeout,
    ExtractorCrashed,
    ExtractorFailed,
    PageTooLarge,
    extract_text,
)
from transforms.extract_sandbox import SandboxedExtractor

EXTRACTORS = ("justext", "trafilatura", "resiliparse", "lines")

# jusText keeps a paragraph only when it is longer than 200 chars with enough stopwords, so these are long.
BODY = [
    "The town was founded in the early years of the eighteenth century by a small group of farmers who had "
    "come down the river in search of land that they could work, and over the years they built the houses "
    "that still stand around the square.",
    "Over the following decades the settlement grew into a busy market town, and by the time the railway "
    "arrived it was one of the most important places in the whole of the valley, with a school, two churches "
    "and a weekly market that drew people from all the villages around.",
    "Today the old mill and the stone bridge are all that remain of those early days, but visitors still come "
    "from far away to walk along the river and to see them for themselves, and many of them stay for a night "
    "or two in one of the small hotels by the water.",
]
BOILERPLATE = ["About us", "We use cookies", "Accept all cookies", "All rights reserved"]
PAGE = f"""<html><head><title>River town</title><script>var x = 1;</script></head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/about">About us</a></li><li><a href="/c">Contact</a></li></ul></nav>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience.
<a href="/privacy">Accept all cookies</a></div>
<main><article><h1>The history of the river town</h1>
{''.join(f'<p>{p}</p>' for p in BODY)}
</article></main>
<footer>Copyright 2024 River Town Society. All rights reserved. <a href="/terms">Terms</a></footer>
</body></html>"""


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def recall(gold: str, text: str) -> float:
    """Fraction of the gold's word tokens (as a multiset) present in the text."""
    g, t = collections.Counter(words(gold)), collections.Counter(words(text))
    return sum((g & t).values()) / max(1, sum(g.values()))


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_literal_page_keeps_body_drops_boilerplate(extractor: str) -> None:
    text = extract_text(PAGE, ExtractConfig(extractor=extractor))
    for paragraph in BODY:
        assert paragraph in text.split("\n"), f"{extractor} lost or split a paragraph"
    assert text.split("\n")[0] == "The history of the river town"  # the heading above good text is kept
    for junk in BOILERPLATE:
        assert junk not in text
    assert "var x" not in text


def test_justext_no_headings_drops_the_heading() -> None:
    cfg = from_mapping(ExtractConfig, {"justext": {"no_headings": True}}, where="extract")
    assert "The history of the river town" not in extract_text(PAGE, cfg)


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_output_is_one_paragraph_per_line(extractor: str) -> None:
    text = extract_text(PAGE, ExtractConfig(extractor=extractor))
    lines = text.split("\n")
    assert all(line == line.strip() and line for line in lines)
    assert len(lines) >= len(BODY)


@pytest.mark.parametrize("extractor", EXTRACTORS)
@pytest.mark.parametrize("html", ["", "   ", "<html></html>", "<!-- only a comment -->", "\x00\x01"])
def test_empty_or_junk_pages_give_empty_text(extractor: str, html: str) -> None:
    assert extract_text(html, ExtractConfig(extractor=extractor)).strip("\x01\ufffd") == ""


def test_justext_stoplist_is_a_language_gate() -> None:
    german = "<html><body>" + "".join(
        f"<p>{'Die Stadt wurde im frühen achtzehnten Jahrhundert von einer kleinen Gruppe von Bauern gegründet, die '}"
        f"{'den Fluss hinunter gekommen waren, um Land zu suchen, das sie bearbeiten konnten, und die Häuser bauten.'}"
        "</p>" for _ in range(3)) + "</body></html>"
    assert extract_text(german, ExtractConfig()) == ""
    cfg = from_mapping(ExtractConfig, {"justext": {"stoplist": "German"}}, where="extract")
    assert "Die Stadt wurde" in extract_text(german, cfg)


def test_page_too_large_is_named() -> None:
    cfg = ExtractConfig(max_html_chars=100)
    with pytest.raises(PageTooLarge, match="max_html_chars"):
        extract_text(PAGE, cfg)
    with SandboxedExtractor(ExtractConfig(max_html_chars=100, timeout_s=5)) as sandbox:
        with pytest.raises(PageTooLarge):
            sandbox.extract(PAGE)
        assert sandbox.pid is None  # refused before a child was started


@pytest.mark.parametrize("bad, match", [
    ({"extractor": "boilerpipe"}, "not one of"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"max_docs_per_child": 0}, "max_docs_per_child"),
    ({"justext": {"stoplist": "Englsh"}}, "not a jusText stoplist"),
    ({"justext": {"length_low": 300}}, "length_low"),
    ({"justext": {"stopwords_low": 0.5}}, "stopwords_low"),
    ({"trafilatura": {"favour_precision": True}}, "valid keys are"),
])
def test_config_errors_name_the_value(bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_mapping(ExtractConfig, bad, where="extract")


# --- real pages ------------------------------------------------------------------------------------------

def scrapinghub_pages(n: int) -> list[tuple[str, str]]:
    root = shared_path("extraction", "scrapinghub-aeb")
    truth = json.loads((root / "ground-truth.json").read_text())
    keys = sorted(truth)[:n]
    return [(gzip.open(root / "html" / f"{k}.html.gz").read().decode("utf-8", "replace"), truth[k]["articleBody"])
            for k in keys]


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_real_news_pages_keep_the_article(extractor: str) -> None:
    pages = scrapinghub_pages(6)
    cfg = ExtractConfig(extractor=extractor)
    recalls = [recall(gold, extract_text(html, cfg)) for html, gold in pages]
    assert sum(recalls) / len(recalls) > 0.8, recalls
    html, _ = pages[0]
    assert len(extract_text(html, cfg)) < len(html) / 10  # markup and boilerplate are gone


# --- sandbox ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_sandbox_gives_the_in_process_text(extractor: str) -> None:
    cfg = ExtractConfig(extractor=extractor, timeout_s=60)
    with SandboxedExtractor(cfg) as sandbox:
        assert sandbox.extract(PAGE) == extract_text(PAGE, cfg)


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_sandbox_gives_the_in_process_text_of_real_pages(extractor: str) -> None:
    cfg = ExtractConfig(extractor=extractor, timeout_s=60)
    with SandboxedExtractor(cfg) as sandbox:
        for html, _ in scrapinghub_pages(3):
            assert sandbox.extract(html) == extract_text(html, cfg)


def test_no_timeout_runs_in_process() -> None:
    sandbox = SandboxedExtractor(ExtractConfig())
    assert sandbox.extract(PAGE) == extract_text(PAGE, ExtractConfig())
    assert sandbox.pid is None


@pytest.mark.parametrize("extractor", ["resiliparse", "lines"])  # lines walks the page with Resiliparse
def test_deeply_nested_page_times_out_and_next_page_works(extractor: str) -> None:
    # Resiliparse is quadratic in nesting depth: 5,000 nested <div>s take about a second (30 s at 20,000).
    deep = "<html><body>" + "<div>" * 5000 + "deep" + "</div>" * 5000 + "</body></html>"
    with SandboxedExtractor(ExtractConfig(extractor=extractor, timeout_s=0.1)) as sandbox:
        assert BODY[0] in sandbox.extract(PAGE)
        first = sandbox.pid
        with pytest.raises(ExtractionTimeout, match="timeout_s"):
            sandbox.extract(deep)
        assert BODY[0] in sandbox.extract(PAGE)
        assert sandbox.pid != first  # the stuck child was killed and replaced


@pytest.mark.parametrize("extractor", ["justext", "trafilatura", "lines"])
def test_tiny_limit_on_a_big_page_times_out(extractor: str) -> None:
    big = PAGE.replace("</article>", "".join(f"<p>{BODY[i % 3]} {i}</p>" for i in range(3000)) + "</article>")
    with SandboxedExtractor(ExtractConfig(extractor=extractor, timeout_s=0.001)) as sandbox:
        with pytest.raises(ExtractionTimeout):
            sandbox.extract(big)
    with SandboxedExtractor(ExtractConfig(extractor=extractor, timeout_s=30)) as sandbox:
        assert BODY[0] in sandbox.extract(big)


def test_child_is_recycled_every_n_documents() -> None:
    with SandboxedExtractor(ExtractConfig(extractor="resiliparse", timeout_s=10, max_docs_per_child=2)) as sandbox:
        pids = []
        for _ in range(5):
            assert BODY[0] in sandbox.extract(PAGE)
            pids.append(sandbox.pid)
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]


def test_killed_child_raises_crashed_then_recovers() -> None:
    with SandboxedExtractor(ExtractConfig(extractor="resiliparse", timeout_s=10)) as sandbox:
        sandbox.extract(PAGE)
        os.kill(sandbox.pid, signal.SIGKILL)
        with pytest.raises(ExtractorCrashed, match="died"):
            sandbox.extract(PAGE)
        assert BODY[0] in sandbox.extract(PAGE)


def test_extractor_error_in_child_is_forwarded_by_type() -> None:
    surrogate = "<html><body><p>\ud800 broken</p></body></html>"  # resiliparse cannot encode a lone surrogate
    cfg = ExtractConfig(extractor="resiliparse", timeout_s=10)
    with pytest.raises(UnicodeEncodeError):
        extract_text(surrogate, cfg)
    with SandboxedExtractor(cfg) as sandbox:
        with pytest.raises(ExtractorFailed, match="^UnicodeEncodeError"):
            sandbox.extract(surrogate)
        assert BODY[0] in sandbox.extract(PAGE)


def test_one_extractor_registry_feeds_the_recipe_and_werps_flag():
    """transforms.extract.EXTRACTORS is the one list: a recipe accepts exactly its names, werp's --extractor offers
    them, and they are the three this file tests (EXTRACTORS above, written out)."""
    import argparse

    from pipelines.werp import WerpOptions
    from transforms.extract import EXTRACTORS as REGISTRY
    from transforms.recipe import load_recipe

    assert tuple(REGISTRY) == EXTRACTORS
    for name in REGISTRY:
        assert load_recipe("bluwerp", [f"extract.extractor={name}"]).extract.extractor == name
    with pytest.raises(ConfigError, match="did you mean 'resiliparse'"):
        load_recipe("bluwerp", ["extract.extractor=resiliparser"])
    parser = argparse.ArgumentParser()
    WerpOptions._add_argparse_args(parser)  # pylint: disable=protected-access
    flag = next(a for a in parser._actions if "--extractor" in a.option_strings)  # pylint: disable=protected-access
    assert tuple(flag.choices) == EXTRACTORS
