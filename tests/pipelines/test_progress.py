"""Live progress of local runs (issue 18, item 1): the line's figures by hand, the workers' files summed, the
environment handed to workers only while the run works, a bar on a terminal and a log line otherwise."""
from __future__ import annotations

import io
import json
import logging
import os
import time

from pipelines.progress import (
    ENV, Snapshot, live_progress, progress_bar, progress_line, read_totals, size, snapshot,
)


def test_the_line_shows_bytes_docs_rate_and_time_left_computed_by_hand() -> None:
    # 25 MB of 100 MB in 50 s: 1000 docs / 50 s = 20.0 docs/s; the other 75 MB at 0.5 MB/s take 150 s = 2m30s.
    line = progress_line(Snapshot(bytes_read=25_000_000, docs_read=1000, docs_kept=400), total_bytes=100_000_000,
                         elapsed_s=50)
    assert line == "25.0 MB of 100.0 MB (25%) | 1,000 docs read | 400 kept | 20.0 docs/s | ETA 2m30s | elapsed 0m50s"


def test_sizes_take_the_unit_that_keeps_a_digit_before_the_point() -> None:
    assert [size(n) for n in (0, 999, 1000, 1_250_000, 3_000_000_000)] == ["0 B", "999 B", "1.0 kB", "1.2 MB",
                                                                          "3.0 GB"]


def test_without_a_known_total_there_is_no_share_eta_or_bar() -> None:
    snap = Snapshot(bytes_read=0, docs_read=7, docs_kept=0)
    line = progress_line(snap, total_bytes=0, elapsed_s=3725)  # 1 h 2 min 5 s
    assert line == "7 docs read | 0 kept | 0.0 docs/s | elapsed 1h02m"
    assert progress_bar(snap, total_bytes=0, elapsed_s=3725) == line


def test_the_bar_fills_in_proportion_to_the_bytes_read() -> None:
    bar = progress_bar(Snapshot(bytes_read=50, docs_read=1, docs_kept=1), total_bytes=100, elapsed_s=1)
    assert bar.startswith("[" + "#" * 12 + "." * 12 + "] ")  # half of 24 cells
    done = progress_bar(Snapshot(bytes_read=100, docs_read=2, docs_kept=2), total_bytes=100, elapsed_s=2)
    assert done.startswith("[" + "#" * 24 + "] ") and "ETA" not in done  # nothing left to wait for


def test_worker_files_are_summed_and_a_half_written_one_is_skipped(tmp_path) -> None:
    (tmp_path / "host-1-a.json").write_text(json.dumps({"read|input_bytes": 300, "read|docs_out": 4, "write|docs_out": 1}))
    (tmp_path / "host-2-b.json").write_text(json.dumps({"read|input_bytes": 200, "read|docs_out": 6}))
    (tmp_path / "host-3-c.json").write_text('{"read|input_bytes": 9')  # a writer caught mid-way
    (tmp_path / ".host-4-d.json.tmp").write_text(json.dumps({"read|input_bytes": 1000}))  # not yet renamed
    totals = read_totals(str(tmp_path))
    assert totals["read|input_bytes"] == 500 and totals["read|docs_out"] == 10
    assert snapshot(totals, ["read", "extract", "write"]) == Snapshot(bytes_read=500, docs_read=10, docs_kept=1)
    assert read_totals(str(tmp_path / "gone")) == {}


def test_the_folder_is_named_to_workers_only_while_the_run_works(caplog) -> None:
    assert ENV not in os.environ
    stages: list[str] = []
    stream = io.StringIO()  # not a terminal: log lines, no bar
    with caplog.at_level(logging.INFO, logger="refinery"):
        with live_progress(enabled=True, stages=stages, total_bytes=1000, stream=stream, every_s=0.05) as reporter:
            folder = os.environ[ENV]
            stages += ["read", "write"]  # a job knows its stages once the graph is built
            with open(os.path.join(folder, "w.json"), "w", encoding="utf-8") as fh:
                json.dump({"read|input_bytes": 250, "read|docs_out": 5, "write|docs_out": 2}, fh)
            assert reporter.current() == Snapshot(bytes_read=250, docs_read=5, docs_kept=2)
            time.sleep(0.3)
    assert ENV not in os.environ and not os.path.exists(folder)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress: ")]
    assert lines and lines[-1].startswith("progress: 250 B of 1.0 kB (25%) | ")
    assert "5 docs read | 2 kept" in lines[-1] and stream.getvalue() == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_one_bar_is_redrawn_and_finished_with_a_newline(tmp_path) -> None:
    stream = _Terminal()
    with live_progress(enabled=True, stages=["read", "write"], total_bytes=100, stream=stream):
        with open(os.path.join(os.environ[ENV], "w.json"), "w", encoding="utf-8") as fh:
            json.dump({"read|input_bytes": 100, "read|docs_out": 3, "write|docs_out": 3}, fh)
    out = stream.getvalue()
    assert out.endswith("\n") and out.count("\n") == 1  # one line, redrawn in place with \r
    last = out.rstrip("\n").split("\r\x1b[K")[-1]
    assert last.startswith("[" + "#" * 24 + "] ") and "3 docs read | 3 kept" in last


def test_quiet_runs_set_nothing() -> None:
    with live_progress(enabled=False, stages=[], total_bytes=10) as reporter:
        assert reporter is None and ENV not in os.environ


def test_a_real_local_run_reports_every_input_byte_and_its_document_counts(tmp_path, monkeypatch) -> None:
    """werp on the built-in sample: at the end the workers' files add up to the sample's size in bytes, the pages
    the reader passed on and the documents written, as stats.json counts them."""
    import contextlib

    from pipelines import jobs, werp

    seen: list[Snapshot] = []
    real = jobs.live_progress

    @contextlib.contextmanager
    def observed(**kwargs):
        with real(**kwargs) as reporter:
            yield reporter
            seen.append(reporter.current())  # the last state, before the folder goes

    monkeypatch.setattr(jobs, "live_progress", observed)
    report = werp.run(["--runner=FnApiRunner", f"--output={tmp_path / 'out'}"])
    assert seen == [Snapshot(bytes_read=werp.SAMPLE_PATH.stat().st_size,
                             docs_read=report["stages"]["read"]["docs_out"],
                             docs_kept=report["stages"]["write"]["docs_out"])]
    assert seen[0].docs_kept > 0 and ENV not in os.environ
