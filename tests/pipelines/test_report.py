"""The run report's content, checked against stats.json files and rejected Parquet files made here by hand: the
numbers in each fixture are chosen in this file, and every expected value is worked out from them in the test."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import report
from pipelines.report_data import ReportError, read_samples
from tests.browser import funnel_rows

HOSTILE = 'before </textarea><script>alert("x")</script> & <b>after</b>'
ODD_REASON = "gopher.<i>odd</i> & \"quoted\""


def stage(docs_in, docs_out, chars_in, chars_out, **extra) -> dict:
    return {"docs_in": docs_in, "docs_out": docs_out, "chars_in": chars_in, "chars_out": chars_out,
            "dropped": {}, "errors": {}, "edited": {}, "other": {}, **extra}


def hand_stats() -> dict:
    """A werp-like run of 10 documents; every stage balances (in = out + dropped)."""
    return {
        "wall_time_s": 12.5, "recipe": "bluwerp", "config_source": "configs/werp/bluwerp.yaml",
        "inputs": ["crawl/a.warc.gz"], "refinery_version": "0.1.0", "versions": {"apache-beam": "2.77.0"},
        "input_files": [{"path": "crawl/a.warc.gz", "bytes": 60251}], "recipe_resolved": {"name": "bluwerp"},
        "stages": {
            "read": stage(10, 9, 5000, 4800, dropped={"warc.not_html": 1}, errors={"read.UnicodeDecodeError": 2},
                          seconds=0.5),
            "gopher_quality": stage(9, 5, 4800, 2600, dropped={"gopher.too_few_words": 3, ODD_REASON: 1},
                                    seconds=1.5, histograms={
                                        "chars_in": {"edges": [100, 1000, 10000], "counts": [1, 5, 3, 0]},
                                        "chars_out": {"edges": [100, 1000, 10000], "counts": [0, 2, 3, 0]}}),
            "dedup_paragraph": stage(5, 4, 2600, 2000, dropped={"paragraph.duplicate_document": 1},
                                     edited={"paragraphs_removed": 2}, seconds=2.0),
        },
    }


def write_stats(folder: Path, stats: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stats.json").write_text(json.dumps(stats), encoding="utf-8")
    return folder


def write_rejected(path: Path, rows: list[dict], *, evidence: bool = True) -> Path:
    """A --rejected_output file as the jobs write it (evidence columns: issue 18 item 3)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["id", "url", "stage", "reason", "text"]
    columns += ["statistic", "value", "limit", "evidence"] if evidence else []
    table = pa.table({c: [r.get(c) for r in rows] for c in columns})
    pq.write_table(table, path)
    return path


def hand_rejected(folder: Path) -> Path:
    """The hand run's dropped documents: 3 too_few_words (one hostile, one long), the odd reason, one duplicate."""
    rows = [
        {"id": "d1", "url": "https://a.example/1", "stage": "gopher_quality", "reason": "gopher.too_few_words",
         "text": HOSTILE, "statistic": "gopher_word_count", "value": "12", "limit": "50"},
        {"id": "d2", "url": "https://a.example/2", "stage": "gopher_quality", "reason": "gopher.too_few_words",
         "text": "x" * 4000, "evidence": "gopher_word_count = 1 < 50"},
        {"id": "d3", "url": "https://a.example/3", "stage": "gopher_quality", "reason": "gopher.too_few_words",
         "text": "third"},
        {"id": "d4", "url": "https://a.example/<4>", "stage": "gopher_quality", "reason": ODD_REASON, "text": "odd"},
        {"id": "d5", "url": "https://a.example/5", "stage": "dedup_paragraph",
         "reason": "paragraph.duplicate_document", "text": "dup"},
    ]
    return write_rejected(folder / "part-00000-of-00001.parquet", rows).parent


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside elements of one class (as the browser reads it)."""

    def __init__(self, text_class: str = "") -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.texts: list[str] = []
        self._class, self._depth = text_class, 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if self._depth:
            self._depth += 1
        elif self._class and self._class in (a.get("class") or "").split():
            self._depth = 1
            self.texts.append("")

    def handle_endtag(self, tag):
        if self._depth:
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.texts[-1] += data


def parse(html: str, text_class: str = "") -> Elements:
    parser = Elements(text_class)
    parser.feed(html)
    return parser


@pytest.fixture
def made(tmp_path) -> tuple[Path, str]:
    out = write_stats(tmp_path / "out", hand_stats())
    path = report.write_report(str(out), str(hand_rejected(tmp_path / "rejected")), samples=2)
    return out, Path(path).read_text(encoding="utf-8")


def test_funnel_table_holds_each_stage_counts_in_run_order(made):
    _, html = made
    rows = funnel_rows(html)
    assert [name for name, _ in rows] == ["read", "gopher_quality", "dedup_paragraph"]
    want = {"read": (10, 9, 5000, 4800), "gopher_quality": (9, 5, 4800, 2600), "dedup_paragraph": (5, 4, 2600, 2000)}
    for name, cells in rows:
        assert tuple(int(cells[f]) for f in ("docs_in", "docs_out", "chars_in", "chars_out")) == want[name]
    # kept = docs_out / docs_in to one decimal: 9/10, 5/9 = 0.5555.., 4/5; dropped = the sum of the reasons
    assert [cells["kept_pct"] for _, cells in rows] == ["90.0%", "55.6%", "80.0%"]
    assert [int(cells["dropped"]) for _, cells in rows] == [1, 4, 1]


def test_a_stage_without_input_shows_no_percentage(tmp_path):
    out = write_stats(tmp_path, {"wall_time_s": 1, "stages": {"read": stage(0, 0, 0, 0)}})
    html = Path(report.write_report(str(out))).read_text(encoding="utf-8")
    assert funnel_rows(html)[0][1]["kept_pct"] == "\u2013"


def test_document_text_and_names_are_escaped(made):
    _, html = made
    assert "<script" not in html.lower() and "</textarea>" not in html.lower()
    doc = parse(html, text_class="text")
    assert HOSTILE in doc.texts  # the browser's reading of the escaped text is the document, character for character
    assert not [t for t, _ in doc.tags if t in ("script", "textarea", "i")]
    drop_rows = [a for t, a in doc.tags if t == "tr" and "drop-row" in (a.get("class") or "")]
    assert ODD_REASON in [a["data-reason"] for a in drop_rows]  # the attribute value survives quoting intact


def test_report_loads_nothing_and_runs_nothing(made):
    _, html = made
    tags = parse(html).tags
    assert not [t for t, _ in tags if t in ("script", "link", "img", "iframe", "object")]
    fetches = [(t, k, v) for t, a in tags for k, v in a.items() if k in ("src", "href") and not v.startswith("#")]
    assert fetches == []
    csp = [a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]


def bars(html: str, title: str) -> dict[str, list[tuple[float, float]]]:
    """The (height, bottom) of each bar of the histogram titled `title`, by series, in bin order."""
    svg = re.search(r'<svg class="chart histogram"[^>]*aria-label="' + re.escape(title) + r'".*?</svg>', html, re.S)
    assert svg, f"no histogram {title!r}"
    out: dict[str, list] = {}
    for tag, a in parse(svg.group(0)).tags:
        if tag == "rect" and a.get("class") == "bar":
            out.setdefault(a["data-series"], []).append(
                (int(a["data-bin"]), float(a["height"]), float(a["y"]) + float(a["height"])))
    return {s: [(h, bottom) for _, h, bottom in sorted(v)] for s, v in out.items()}


def test_histogram_bar_heights_follow_the_counts(made):
    """Counts in [1, 5, 3, 0] and out [0, 2, 3, 0]: the tallest bar (5) is the plot height, every other bar is
    count / 5 of it, an empty bin has no height, all bars stand on one baseline; the last bin, empty in both
    series, is not drawn."""
    _, html = made
    found = bars(html, "gopher_quality: chars before and after")
    assert set(found) == {"chars_in", "chars_out"}
    tallest = max(h for series in found.values() for h, _ in series)
    assert tallest > 0
    assert [h / tallest for h, _ in found["chars_in"]] == pytest.approx([1 / 5, 5 / 5, 3 / 5], abs=1e-3)
    assert [h / tallest for h, _ in found["chars_out"]] == pytest.approx([0, 2 / 5, 3 / 5], abs=1e-3)
    assert len({round(b, 2) for series in found.values() for _, b in series}) == 1


def test_only_the_filled_span_of_a_log_scale_histogram_is_drawn(tmp_path):
    """Edges 1, 2, 5, 10, 20 (6 bins); 4 values in [2, 5) and 2 in [5, 10): only those two bins are drawn, the
    second half as tall as the first; an all-empty histogram is noted, not drawn."""
    hists = {"chars_in": {"edges": [1, 2, 5, 10, 20], "counts": [0, 0, 4, 2, 0, 0]},
             "words_in": {"edges": [1, 2, 5, 10, 20], "counts": [0, 0, 0, 0, 0, 0]}}
    out = write_stats(tmp_path, {"wall_time_s": 1, "stages": {"read": stage(6, 6, 60, 60, histograms=hists)}})
    html = Path(report.write_report(str(out))).read_text(encoding="utf-8")
    svg = re.search(r'<svg class="chart histogram".*?</svg>', html, re.S).group(0)
    drawn = [(int(a["data-bin"]), float(a["height"])) for t, a in parse(svg).tags if t == "rect" and "data-bin" in a]
    assert [b for b, _ in drawn] == [2, 3] and drawn[1][1] == pytest.approx(drawn[0][1] / 2)
    assert html.count('<svg class="chart histogram"') == 1 and "read words_in: no values" in html


def test_samples_per_reason_are_capped_at_n_and_text_cut(tmp_path):
    stats = {"wall_time_s": 1, "stages": {"s": stage(9, 0, 9, 0, dropped={"a": 7, "b": 2})}}
    out = write_stats(tmp_path / "out", stats)
    rows = [{"id": f"a{i}", "url": "", "stage": "s", "reason": "a", "text": "y" * (1000 * i)} for i in range(7)]
    rows += [{"id": f"b{i}", "url": "", "stage": "s", "reason": "b", "text": "z"} for i in range(2)]
    rejected = write_rejected(tmp_path / "rej" / "part-00000-of-00001.parquet", rows, evidence=False).parent
    html = Path(report.write_report(str(out), str(rejected), samples=3)).read_text(encoding="utf-8")
    shown = [a for t, a in parse(html).tags if t == "div" and a.get("class") == "sample"]
    assert [a["data-reason"] for a in shown] == ["a", "a", "a", "b", "b"]  # the first 3 of 7, both of 2
    assert "(3 of 7 dropped)" in html and "(2 of 2 dropped)" in html
    texts = parse(html, text_class="text").texts
    assert [len(t) for t in texts] == [1000, 1500, 1, 1]  # a0 (0 chars) has no text block; a2's 2,000 are cut
    assert "2,000 characters, the first 1,500 shown" in html


def test_failing_value_is_shown_beside_the_text(made):
    _, html = made
    block = re.search(r'<div class="sample"[^>]*>.*?</pre></div>', html, re.S).group(0)
    assert "gopher_word_count = 12" in block and "limit: 50" in block
    assert block.index("gopher_word_count = 12") < block.index('<pre class="text">')
    assert "<b data-field=\"evidence\">gopher_word_count = 1 &lt; 50</b>" in html  # the job's sentence, escaped


def test_reading_stops_once_every_reason_has_its_samples(tmp_path):
    first = [{"id": str(i), "url": "", "stage": "s", "reason": "a", "text": "t"} for i in range(4)]
    write_rejected(tmp_path / "part-00000-of-00002.parquet", first, evidence=False)
    write_rejected(tmp_path / "part-00001-of-00002.parquet", first * 5, evidence=False)
    found = read_samples(str(tmp_path), per_reason=2, wanted=[("s", "a")])
    assert found.rows_read == 4 and len(found.files) == 2  # the second file (20 rows) is never opened
    assert [s.id for s in found.by_reason[("s", "a")]] == ["0", "1"]


def test_stats_from_before_issue_18_still_render(tmp_path):
    """A stats.json as written before the new keys (no seconds, histograms, versions, input files), and one even
    older without errors or edited: both render their funnel and simply leave the new sections out."""
    old = {"wall_time_s": 2.8, "recipe": "bluwerp", "inputs": ["sample.warc.gz"],
           "stages": {"read": stage(41, 39, 0, 113013, dropped={"warc.not_html": 1, "warc.not_response": 1}),
                      "write": {"docs_in": 39, "docs_out": 39, "chars_in": 113013, "chars_out": 113013,
                                "dropped": {}}}}
    html = Path(report.write_report(str(write_stats(tmp_path, old)))).read_text(encoding="utf-8")
    assert [(n, int(c["docs_in"]), int(c["chars_out"])) for n, c in funnel_rows(html)] == [
        ("read", 41, 113013), ("write", 39, 113013)]
    ids = {a.get("id") for _, a in parse(html).tags}
    assert "funnel" in ids and "drops" in ids
    assert not ids & {"time", "histograms", "mixture", "pylint", "samples", "errors-edits"}


def test_time_errors_and_edits_per_stage(made):
    """Seconds 0.5, 1.5 and 2.0 make 4.0 s in all: shares 12.5%, 37.5%, 50.0%."""
    _, html = made
    times = re.findall(r'<tr class="time-row" data-stage="([^"]+)">.*?data-field="seconds">([^<]+)</td>'
                       r'<td class="num">([^<]+)</td>', html)
    assert times == [("read", "0.500", "12.5%"), ("gopher_quality", "1.500", "37.5%"),
                     ("dedup_paragraph", "2.000", "50.0%")]
    assert "(4.0 s in all). The run's wall time was 12.5 s." in html
    cells = re.findall(r'<tr class="(errors|edited)-row"[^>]*><td>([^<]+)</td><td>[^<]+</td><td>([^<]+)</td>'
                       r'<td class="num">(\d+)</td>', html)
    assert cells == [("errors", "read", "read.UnicodeDecodeError", "2"),
                     ("edited", "dedup_paragraph", "paragraphs_removed", "2")]


def test_a_malformed_histogram_is_noted_not_fatal(tmp_path):
    bad = {"chars_in": {"edges": [10, 20], "counts": [1, 2]}}  # 2 edges need 3 counts
    out = write_stats(tmp_path, {"wall_time_s": 1, "stages": {"read": stage(3, 3, 30, 30, histograms=bad)}})
    html = Path(report.write_report(str(out))).read_text(encoding="utf-8")
    assert "read chars_in: 2 edges need 3 counts, it has 2" in html
    assert '<svg class="chart histogram"' not in html


def test_tokenize_mixture_target_and_realised(tmp_path):
    stats = {"wall_time_s": 3, "recipe": "mixture", "stages": {}, "unigram_entropy": {"nats_per_token": 5.25},
             "mixture": {"web": {"target_weight": 0.7, "realised_weight": 0.65, "tokens_available": 1000,
                                 "tokens_taken": 650},
                         "code": {"target_weight": 0.3, "realised_weight": 0.35, "tokens_available": 350,
                                  "tokens_taken": 350}},
             "splits": {"train": {"rows": 9, "tokens": 900, "shards": 1, "tail_tokens_dropped": 100}}}
    html = Path(report.write_report(str(write_stats(tmp_path, stats)))).read_text(encoding="utf-8")
    assert "<h1>tokenize run report</h1>" in html  # no config_source: the mixture names the job
    assert re.search(r'data-source="web">.*?data-field="realised_weight">0.65<', html)
    assert re.search(r'data-source="code">.*?data-field="tokens_taken">350<', html)
    assert "5.2500 nats/token" in html and "No stages recorded." in html


def test_swallowcode_pylint_scores_before_and_after_the_rewrite(tmp_path):
    edges = [2.0, 4.0, 6.0, 8.0]
    stats = {"wall_time_s": 3, "config_source": "configs/swallowcode/default.yaml", "stages": {
        "lint": stage(6, 4, 600, 400, histograms={"pylint_score": {"edges": edges, "counts": [1, 0, 1, 2, 2]}}),
        "final_lint": stage(4, 4, 400, 380, histograms={"pylint_score": {"edges": edges, "counts": [0, 0, 0, 1, 3]}}),
    }}
    html = Path(report.write_report(str(write_stats(tmp_path, stats)))).read_text(encoding="utf-8")
    found = bars(html, "pylint score before and after the rewrite")
    assert list(found) == ["before: lint pylint_score", "after: final_lint pylint_score"]
    tallest = max(h for s in found.values() for h, _ in s)  # the largest count is 3
    # bins 0..4; bin 0 holds a "before" score, so no bin is trimmed
    assert [h / tallest for h, _ in found["after: final_lint pylint_score"]] == pytest.approx([0, 0, 0, 1 / 3, 1])
    assert "<h1>swallowcode run report</h1>" in html


def test_pylint_scored_once_says_there_was_no_rewrite(tmp_path):
    one = {"pylint_score": {"edges": [5.0, 7.0], "counts": [1, 1, 2]}}
    stats = {"wall_time_s": 1, "stages": {"lint": stage(4, 3, 40, 30, histograms=one)}}
    html = Path(report.write_report(str(write_stats(tmp_path, stats)))).read_text(encoding="utf-8")
    assert "pylint scores (one stage scored: no rewrite in this run)" in html
    assert "<li>lint: 3 of 4 kept (75.0%)</li>" in html


def test_cli_writes_where_asked_and_missing_stats_is_one_line(tmp_path, capsys):
    out = write_stats(tmp_path / "run", hand_stats())
    assert report.main([str(out), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert capsys.readouterr().out.strip() == f"report: {tmp_path / 'r.html'}"
    assert report.main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"report: error: no stats.json at {tmp_path / 'nowhere'}/stats.json")


def test_a_file_that_is_not_rejected_output_is_refused(tmp_path):
    pq.write_table(pa.table({"id": ["1"], "text": ["t"]}), tmp_path / "part-0.parquet")
    with pytest.raises(ReportError, match="has no column stage, reason"):
        read_samples(str(tmp_path), per_reason=1)
