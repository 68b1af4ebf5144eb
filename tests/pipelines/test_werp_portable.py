"""werp submitted through Beam's portable Job API to the local job service: the path Flink and Spark use."""
from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd
import pytest

from pipelines import werp


@pytest.fixture
def job_service(tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", "--port=0",
         f"--port_file={port_file}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, "job service exited"
            assert time.monotonic() < deadline, "job service did not start in 60 s"
            time.sleep(0.1)
        yield f"localhost:{port_file.read_text().strip()}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_werp_through_portable_job_api_loopback(job_service, tmp_path):
    report = werp.run(["--runner=PortableRunner", f"--job_endpoint={job_service}", "--environment_type=LOOPBACK",
                       f"--output={tmp_path}"])
    files = sorted((tmp_path / "documents").glob("part-*.parquet"))
    df = pd.concat([pd.read_parquet(f) for f in files])
    assert len(df) > 10 and set(df.language) == {"en"}
    assert report["stages"]["write"]["docs_out"] == len(df)
    assert report["stages"]["dedup_exact"]["dropped"] == {"exact.duplicate": 3}
