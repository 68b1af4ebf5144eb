"""werp submitted through Beam's portable Job API to the local job service: the path Flink and Spark use."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

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
    assert report["stages"]["dedup_paragraph"]["dropped"] == {"paragraph.duplicate_document": 3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture
def worker_pool():
    """Beam's SDK worker pool, as a Flink/Spark task manager sidecar runs it (EXTERNAL environment)."""
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                             f"--service_port={port}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:  # ready when its gRPC port accepts connections
        assert proc.poll() is None, "worker pool exited"
        assert time.monotonic() < deadline, "worker pool did not start in 60 s"
        with socket.socket() as s:
            if s.connect_ex(("localhost", port)) == 0:
                break
        time.sleep(0.1)
    try:
        yield f"localhost:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_werp_through_portable_job_api_external_worker_pool(job_service, worker_pool, tmp_path):
    report = werp.run(["--runner=PortableRunner", f"--job_endpoint={job_service}", "--environment_type=EXTERNAL",
                       f"--environment_config={worker_pool}", f"--output={tmp_path}"])
    df = pd.concat([pd.read_parquet(f) for f in (tmp_path / "documents").glob("part-*.parquet")])
    assert len(df) > 10 and report["stages"]["write"]["docs_out"] == len(df)
