"""The report is the sum of the counters, grouped by stage in pipeline order."""
from __future__ import annotations

import json

from transforms import stats


def test_report_groups_counters_by_stage_in_order():
    counters = {
        stats.counter_name("extract", stats.DOCS_IN): 10,
        stats.counter_name("extract", stats.DOCS_OUT): 7,
        stats.counter_name("extract", stats.CHARS_OUT): 700,
        stats.counter_name("extract", stats.DROPPED, "extract.empty"): 2,
        stats.counter_name("extract", stats.DROPPED, "extract.timeout"): 1,
        stats.counter_name("read", stats.DOCS_IN): 12,
        stats.counter_name("read", stats.DOCS_OUT): 10,
        stats.counter_name("read", stats.DROPPED, "warc.not_html"): 2,
        stats.counter_name("read", stats.ERRORS, "warc.error.truncated_gzip"): 1,
    }
    report = stats.build_report(counters, stage_order=["read", "extract"], wall_time_s=1.23456)
    assert list(report["stages"]) == ["read", "extract"]
    ext = report["stages"]["extract"]
    assert (ext["docs_in"], ext["docs_out"], ext["chars_out"]) == (10, 7, 700)
    assert ext["dropped"] == {"extract.empty": 2, "extract.timeout": 1}
    assert ext["docs_in"] == ext["docs_out"] + sum(ext["dropped"].values())
    assert report["stages"]["read"]["errors"] == {"warc.error.truncated_gzip": 1}
    assert report["wall_time_s"] == 1.235
    assert json.loads(stats.dump_report(report)) == report
    summary = stats.format_summary(report)
    assert "extract.timeout" in summary and "70.0%" in summary and "warc.error.truncated_gzip" in summary


def test_unlisted_stages_go_last():
    counters = {stats.counter_name("zeta", stats.DOCS_IN): 1, stats.counter_name("read", stats.DOCS_IN): 1}
    report = stats.build_report(counters, stage_order=["read"], wall_time_s=0)
    assert list(report["stages"]) == ["read", "zeta"]
