"""True drop reasons (issue 18, item 5): a page jusText (English stoplist) empties because it is in another
language is a language drop, not `extract.empty`; an English page it empties, and an empty page, stay empty
extractions; an English page it keeps extracts exactly as before. Fixture pages written here, run through the real
web stages (URL filter, extraction, language ID, quality steps) on FnApiRunner.
"""
from __future__ import annotations

import json

import apache_beam as beam
import pandas as pd
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from pipelines.jobs import run_counted
from transforms.beam.web import WebDocuments
from transforms.beam.write import WriteRejected
from transforms.document import Page
from transforms.recipe import load_recipe

GERMAN = """<html><head><title>Wetter</title></head><body><h1>Das Wetter in Berlin</h1>
<p>Am Wochenende wird es in Berlin sonnig und warm. Die Temperaturen steigen auf bis zu fünfundzwanzig Grad, und am
Abend ziehen nur wenige Wolken auf. Viele Menschen nutzen das schöne Wetter für einen Ausflug an die Seen im Umland.</p>
<p>Der Deutsche Wetterdienst rechnet erst in der kommenden Woche wieder mit Regen. Landwirte hoffen dennoch auf
ergiebige Niederschläge, weil die Böden nach dem trockenen Frühjahr sehr ausgetrocknet sind.</p></body></html>"""
JAPANESE = """<html><body><h1>東京の天気</h1><p>週末の東京は晴れて暖かくなる見込みです。最高気温は二十五度まで上がり、
夕方にはわずかに雲が出るでしょう。多くの人がこの良い天気を利用して郊外へ出かける予定です。</p>
<p>気象庁によると、来週には再び雨が降る見込みです。農家の人々は、乾燥した春の後で土が非常に乾いているため、
まとまった雨を期待しています。</p></body></html>"""
ENGLISH_LINKS = """<html><body><ul>
<li><a href="/news">Read the latest news from the city council</a></li>
<li><a href="/weather">Check the weather forecast for the weekend</a></li>
<li><a href="/sport">See the results of the football matches</a></li>
<li><a href="/contact">Contact the editors of the newspaper</a></li></ul></body></html>"""
EMPTY = "<html><body></body></html>"
PARAGRAPHS = [
    "Weather in London",
    "The weekend in London will be sunny and warm. Temperatures will rise to twenty-five degrees, and only a few "
    "clouds are expected in the evening. Many people plan to use the fine weather for a trip to the parks and the "
    "river along the old city walls, where the markets are open all day.",
    "The Met Office does not expect rain until next week. Farmers are still hoping for heavy showers, because the "
    "soil is very dry after the long and warm spring that the whole country has had this year, and the rivers in "
    "the south of England are lower than they have been for many years.",
    "The water companies have asked people to save water where they can, and to report leaks as soon as they see "
    "them. They say that the reservoirs are still fuller than in the dry summer of the last decade.",
]
ENGLISH = (f"<html><body><h1>{PARAGRAPHS[0]}</h1>" + "".join(f"<p>{p}</p>" for p in PARAGRAPHS[1:])
           + "</body></html>")
PAGES = {"de": GERMAN, "ja": JAPANESE, "en-links": ENGLISH_LINKS, "empty": EMPTY, "en": ENGLISH}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The fixture pages through bluwerp's web stages (jusText with its English stoplist, py3langid keeping en)."""
    tmp = tmp_path_factory.mktemp("true-reasons")
    recipe = load_recipe("bluwerp")
    pages = [Page(id=name, url=f"https://example.org/{name}", warc_date="2024-01-01T00:00:00Z", html=html)
             for name, html in PAGES.items()]

    def build(p):
        docs, rejected = p | beam.Create(pages) | WebDocuments(recipe, emit_rejected=True)
        _ = (docs | beam.Map(lambda d: json.dumps({"id": d.id, "text": d.text, "language": d.language}))
             | beam.io.WriteToText(str(tmp / "docs"), shard_name_template=""))
        _ = tuple(rejected) | beam.Flatten() | WriteRejected(str(tmp / "rejected"), codec="snappy")

    counts, _ = run_counted(build, runner=FnApiRunner(), options=PipelineOptions(["--quiet"]), output=str(tmp))
    docs = {d["id"]: d for d in map(json.loads, (tmp / "docs").read_text().splitlines())}
    rejected = pd.concat([pd.read_parquet(f) for f in sorted((tmp / "rejected").glob("part-*.parquet"))])
    return counts, docs, rejected.set_index("id")


def test_pages_in_other_languages_are_language_drops_with_their_score(run):
    counts, _, rejected = run
    for page, language in (("de", "de"), ("ja", "ja")):
        row = rejected.loc[page]
        assert (row.stage, row.reason) == ("langid", "langid.wrong_language")
        assert row.statistic == "langid_score" and row.limit == 0.65 and row.value >= row.limit
        assert row.evidence.startswith(f"language {language} not in ['en']")
    assert counts["langid|dropped|langid.wrong_language"] == 2
    assert counts["extract|other_language_visible_text"] == 2


def test_an_english_page_jusText_empties_and_an_empty_page_stay_empty_extractions(run):
    counts, docs, rejected = run
    for page in ("en-links", "empty"):
        assert (rejected.loc[page].stage, rejected.loc[page].reason) == ("extract", "extract.empty")
        assert page not in docs
    assert counts["extract|dropped|extract.empty"] == 2


def test_an_english_page_extracts_as_before(run):
    counts, docs, _ = run
    assert docs["en"]["text"] == "\n".join(PARAGRAPHS) and docs["en"]["language"] == "en"
    assert counts["extract|docs_in"] == 5 and counts["extract|docs_out"] == 3  # en, and de/ja on to langid
    assert counts["langid|docs_out"] == 1


def test_every_web_stage_reports_its_time(run):
    counts, _, _ = run
    for stage in ("url", "extract", "langid", "gopher_quality"):
        assert counts.get(f"{stage}|time_us", 0) > 0, f"{stage}: its own work was timed"
