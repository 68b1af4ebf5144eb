"""Every job, given hostile input: one-line error (exit 2) before anything starts, and the previous complete
output byte for byte where it was, whether the run is refused up front or fails halfway."""
from __future__ import annotations

import gzip
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator

from core.config import ConfigError
from pipelines import betr, swallowmath, werp
from pipelines.jobs import JobError, expand_inputs, job_main
from pipelines.sample_warc import SAMPLE_PATH
from tests.conftest import REPO
from transforms import tokenizer as train_tok
from transforms.tokenizer import train_tokenizer

LOCAL = ["--runner=FnApiRunner"]
UNWRITABLE = "/proc/refinery-test/out"  # mkdir under /proc fails even for root
HF_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under `folder`, hidden ones included."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def truncated_parquet(path: Path) -> Path:
    """A real Parquet file cut in half, as an interrupted copy leaves it."""
    pq.write_table(pa.table({"id": [str(i) for i in range(200)], "text": [f"text {i} " * 20 for i in range(200)]}),
                   path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture()
def env(tmp_path, tiny_model):
    """A previous complete output (shards, stats, rejected records, model files) and the hostile inputs."""
    prev, rej = tmp_path / "prev", tmp_path / "prev-rejected"
    (prev / "documents").mkdir(parents=True)
    rej.mkdir()
    pq.write_table(pa.table({"id": ["a"], "text": ["an earlier run's document"]}),
                   prev / "documents" / "part-00000-of-00001.parquet")
    (prev / "stats.json").write_text('{"stages": {}}\n')
    pq.write_table(pa.table({"id": ["r"], "reason": ["x"]}), rej / "part-00000-of-00001.parquet")
    (prev / "model.bin").write_bytes(b"an earlier model")
    (prev / "tokenizer.json").write_text("an earlier tokenizer")
    (tmp_path / "a-file").write_text("not a folder")
    questions = [{"id": str(i), "text": f"What is {i} + {i}? It is {2 * i}."} for i in range(8)]
    (tmp_path / "in.jsonl").write_text("\n".join(map(json.dumps, questions)) + "\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "no-model").mkdir()
    (tmp_path / "no-model" / "README.md").write_text("weights go here")
    train_tokenizer([f"word{i} and more words" for i in range(50)], 300).save(str(tmp_path / "tok.json"))
    truncated_parquet(tmp_path / "cut.parquet")
    return {"tmp": tmp_path, "prev": prev, "rej": rej, "model": tiny_model}


def call(job: str, argv: list[str]) -> int:
    """The job's command line, in process: job_main for the Beam jobs, the module's own main for the others."""
    if job == "betr":
        return betr.main(argv)
    if job == "transforms.tokenizer":
        return train_tok.main(["train", *argv])
    module = importlib.import_module(f"pipelines.{job}")
    return job_main([*LOCAL, *argv], name=job, doc="", option_classes=(), run=module.run)


def error_line(err: str, job: str) -> str:
    """The one error line; no traceback anywhere."""
    lines = [line for line in err.splitlines() if line.startswith(f"{job}: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


CASES = [  # (job, argv, phrases the error line must hold); {prev}, {rej}, {tmp} are filled in
    ("werp", ["--output={tmp}/a-file"], ["--output", "is an existing file"]),
    ("werp", ["--output={prev}", f"--rejected_output={UNWRITABLE}"], ["--rejected_output", "cannot write there"]),
    ("werp", ["--output={prev}", "--rejected_output={tmp}/a-file/rejected"], ["--rejected_output", "cannot write"]),
    ("werp", ["--output={prev}", "--max_record_bytes=0"], ["--max_record_bytes=0", "must be > 0"]),
    ("werp", ["--output={prev}", "--rejected_output={rej}", "--num_shards=-3"], ["--num_shards=-3", "must be >= 0"]),
    ("werp", ["--output={prev}", "--input={tmp}/empty/"], ["empty/' matched no files"]),
    ("werp", ["--output={prev}", "--classifier_model={tmp}/in.jsonl"], ["not a fastText model", "pipelines.betr"]),
    ("werp", ["--output={prev}", "--rejected_output={prev}/documents"], ["overlap", "--rejected_output={prev}-rejected"]),
    ("swallowcode", ["--input={tmp}/in.jsonl", "--output={rej}/sub", "--config=filter", "--rejected_output={rej}"],
     ["overlap"]),
    ("swallowcode", ["--input={tmp}/cut.parquet", "--output={prev}", "--config=filter"],
     ["cut.parquet: not a readable Parquet file", "copy it again"]),
    ("swallowcode", ["--input={tmp}/in.jsonl", "--output={prev}", "--model=gpt2"],
     ["--model gpt2: not a local model folder", "hf download gpt2 --local-dir models/gpt2"]),
    ("swallowcode", ["--input={tmp}/in.jsonl", "--output={prev}", "--config=filter", "--num_shards=-3"],
     ["--num_shards=-3", "must be >= 0"]),
    ("swallowcode", ["--input={tmp}/in.jsonl", "--output={tmp}/a-file", "--config=filter"], ["is an existing file"]),
    ("swallowcode", ["--input={tmp}/in.jsonl", "--output={prev}", "--config=filter", f"--rejected_output={UNWRITABLE}"],
     ["--rejected_output", "cannot write there"]),
    ("swallowmath", ["--input={tmp}/cut.parquet", "--output={prev}", "--model={tmp}/no-model"],
     ["--model", "no-model: the folder has no config.json"]),
    ("swallowmath", ["--input={tmp}/cut.parquet", "--output={prev}", "--model={model}"],
     ["cut.parquet: not a readable Parquet file"]),
    ("swallowmath", ["--input={tmp}/in.jsonl", "--output={prev}", "--model=gpt2"], ["--model gpt2: not a local model"]),
    ("swallowmath", ["--input={tmp}/in.jsonl", "--output={prev}", "--model={model}", "--max_tokens=0"],
     ["max_tokens (0) must be >= 1"]),
    ("swallowmath", ["--input={tmp}/in.jsonl", "--output={prev}", "--model={model}", "--batch_size=0"],
     ["batch_size (0) must be >= 1"]),
    ("swallowmath", ["--input={tmp}/in.jsonl", "--output={prev}", "--model={model}", "--num_shards=-3"],
     ["--num_shards=-3"]),
    ("swallowmath", ["--input={tmp}/in.jsonl", "--output={tmp}/a-file", "--model={model}"], ["is an existing file"]),
    ("tokenize", ["--input={tmp}/cut.parquet", "--tokenizer={tmp}/tok.json", "--output={prev}"],
     ["cut.parquet: not a readable Parquet file"]),
    ("tokenize", ["--input={tmp}/in.jsonl", "--tokenizer={tmp}/tok.json", "--output={tmp}/a-file"],
     ["is an existing file"]),
    ("tokenize", ["--input={tmp}/in.jsonl", "--tokenizer={tmp}/tok.json", f"--output={UNWRITABLE}"],
     ["--output", "cannot write there"]),
    ("tokenize", ["--input={tmp}/in.jsonl", "--tokenizer={tmp}/tok.json", "--output={prev}", "--seq_len=0"],
     ["seq_len (0) must be >= 1"]),
    ("betr", ["--positives={tmp}/in.jsonl", "--negatives={tmp}/cut.parquet", "--output={prev}/model.bin"],
     ["--negatives", "cut.parquet: not a readable Parquet file"]),
    ("betr", ["--positives={tmp}/in.jsonl", "--negatives={tmp}/in.jsonl", "--output={prev}"],
     ["--output", "is a folder"]),
    ("betr", ["--positives={tmp}/in.jsonl", "--negatives={tmp}/in.jsonl", f"--output={UNWRITABLE}/m.bin"],
     ["--output", "cannot write there"]),
    ("betr", ["--benchmarks={tmp}/in.jsonl", "--pool={tmp}/in.jsonl", "--batch_size=0", "--output={prev}/model.bin"],
     ["--batch_size=0", "betr: batch_size (0) must be >= 1"]),
    ("transforms.tokenizer", ["--input={tmp}/in.jsonl", "--input={tmp}/cut.parquet", "--output={prev}/tokenizer.json"],
     ["cut.parquet: not a readable Parquet file"]),
    ("transforms.tokenizer", ["--input={tmp}/in.jsonl", "--output={prev}"], ["--output", "is a folder"]),
    ("transforms.tokenizer", ["--input={tmp}/in.jsonl", f"--output={UNWRITABLE}/tokenizer.json"], ["cannot write there"]),
    ("transforms.tokenizer", ["--input={tmp}/in.jsonl", "--max_documents=0", "--output={prev}/tokenizer.json"],
     ["--max_documents (0) must be >= 1"]),
]


@pytest.mark.parametrize("job, argv, phrases", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_hostile_input_is_one_line_and_leaves_the_previous_output(env, capsys, job, argv, phrases):
    before = tree(env["tmp"])
    code = call(job, [a.format(**env) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    line = error_line(err, job)
    assert all(p.format(**env) in line for p in phrases), line
    assert tree(env["tmp"]) == before, "nothing was deleted, created or left behind"


def test_a_run_that_fails_halfway_keeps_the_previous_output(env, capsys):
    """A model folder that passes the checks but cannot load: the pipeline fails on the worker, after it started."""
    (env["tmp"] / "no-model" / "config.json").write_text("{}")
    before = tree(env["tmp"])
    with pytest.raises(Exception) as failed:
        swallowmath.run([*LOCAL, f"--input={env['tmp']}/in.jsonl", f"--output={env['prev']}",
                         f"--rejected_output={env['rej']}", f"--model={env['tmp']}/no-model", "--max_tokens=4"])
    assert not isinstance(failed.value, (JobError, ConfigError)), "it failed inside the pipeline, not in the checks"
    after = tree(env["tmp"])
    assert {k: v for k, v in after.items() if "_generations" not in k} == before, "old shards kept, no beam-temp"


def test_a_folder_input_reads_every_file_under_it_and_replaces_the_old_shards(env, tmp_path):
    crawl = tmp_path / "crawl"
    (crawl / "2024" / "05").mkdir(parents=True)
    (crawl / "2024" / "05" / "sample.warc.gz").write_bytes(SAMPLE_PATH.read_bytes())
    for hidden in (".partial.warc.gz", "_SUCCESS", "_tmp/x.warc.gz"):  # garbage that would count as read errors
        (crawl / hidden).parent.mkdir(exist_ok=True)
        (crawl / hidden).write_bytes(b"not a warc")
    (env["prev"] / "documents" / "part-00001-of-00002.parquet").write_bytes(b"a stale shard of an older run")
    report = werp.run([*LOCAL, f"--input={crawl}/", f"--output={env['prev']}"])
    with gzip.open(SAMPLE_PATH) as fh:  # the oracle: every record of the one real WARC, nothing of the garbage
        records = sum(1 for _ in ArchiveIterator(fh))
    assert report["stages"]["read"]["docs_in"] == records and not report["stages"]["read"]["errors"]
    texts = [t for s in sorted((env["prev"] / "documents").iterdir()) for t in pq.read_table(s)["text"].to_pylist()]
    assert len(texts) == report["stages"]["write"]["docs_out"] > 0
    assert "an earlier run's document" not in texts, "the previous run's shards are replaced, not mixed in"
    assert json.loads((env["prev"] / "stats.json").read_text())["stages"] == report["stages"]
    assert sorted(p.name for p in env["prev"].iterdir()) == ["documents", "model.bin", "report.html", "stats.json",
                                                           "tokenizer.json"]


def test_globs_skip_hidden_names_below_their_wildcard_but_read_named_files(tmp_path):
    """A `**` over an output folder must not read a stale .incomplete-* staging folder of a killed run."""
    good, stale = tmp_path / "out" / "documents" / "part-0.jsonl", tmp_path / "out" / ".incomplete-1" / "part-0.jsonl"
    named, above = tmp_path / "_special" / "_one.jsonl", tmp_path / "_special" / "two.jsonl"
    marker, dot = tmp_path / "_special" / "_SUCCESS", tmp_path / "_special" / ".two.jsonl.crc"
    for path in (good, stale, named, above, marker, dot):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    inputs = expand_inputs([f"{tmp_path}/out/**"])
    assert inputs.files == [str(good)] and inputs.patterns == [str(good)]
    assert expand_inputs([str(named)]).files == [str(named)], "a file named in full is read whatever its name"
    assert expand_inputs([f"{tmp_path}/_special/*.jsonl"]).files == [str(named), str(above)], "a hidden folder named "\
        "above the wildcard is read; a _-name is data (Python's __init__.py), only markers and dot-files are not"
    assert expand_inputs([f"{tmp_path}/_special/*"]).files == [str(named), str(above)]
    assert expand_inputs([f"{tmp_path}/_special/"]).files == [str(named), str(above)]
    assert expand_inputs([f"{tmp_path}/out/*/part-0.jsonl"]).files == [str(good)]
    with pytest.raises(JobError, match=r"matched no files \(1 hidden or marker files skipped\)"):
        expand_inputs([f"{tmp_path}/out/.incomplete-*/*.jsonl"])


def test_ctrl_c_is_one_line_and_exit_130(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    assert job_main([], name="werp", doc="", option_classes=(), run=interrupted) == 130
    assert capsys.readouterr().err.strip() == "werp: interrupted; the previous output, if any, is unchanged"


def test_expand_inputs_recurses_into_folders_and_skips_hidden_names(tmp_path):
    wanted = [tmp_path / "a.jsonl", tmp_path / "sub" / "b.jsonl", tmp_path / "sub" / "deeper" / "c.parquet"]
    skipped = [tmp_path / ".hidden.jsonl", tmp_path / "_SUCCESS", tmp_path / "_spill" / "x.parquet",
               tmp_path / ".incomplete-1" / "documents" / "part-0.parquet"]
    for path in wanted + skipped:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    pq.write_table(pa.table({"text": ["x"]}), wanted[-1])  # the Parquet footer is checked too
    for spelled in (str(tmp_path), f"{tmp_path}/"):
        assert expand_inputs([spelled]).files == sorted(map(str, wanted))
    assert expand_inputs([f"{tmp_path}/sub/*.jsonl"]).patterns == [f"{tmp_path}/sub/*.jsonl"], "a glob that reaches "\
        "no hidden name is passed on as is"
    assert expand_inputs([f"{tmp_path}/*.jsonl"]).patterns == [str(tmp_path / "a.jsonl")], "else its visible files"


def clean_env() -> dict[str, str]:
    """This machine's environment without the offline switches conftest sets: enforcement must not rely on them."""
    return {k: v for k, v in os.environ.items() if k not in HF_ENV}


@pytest.mark.slow
def test_a_hub_model_name_is_refused_without_offline_variables(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"text": "What is 1 + 1?"}\n')
    proc = subprocess.run([sys.executable, "-m", "pipelines.swallowmath", "--runner=DirectRunner", "--model=gpt2",
                           f"--input={tmp_path}/in.jsonl", f"--output={tmp_path}/out"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=clean_env())
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc.stderr, "swallowmath")
    assert line.startswith("swallowmath: error: --model gpt2: not a local model folder"), line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_worker_loads_only_local_folders_with_the_hub_switched_off(tiny_model):
    script = (
        "import huggingface_hub.constants as c\n"
        "from transforms.llm.handlers import GenerationConfig, ModelNotLocal, build_handler\n"
        "assert not c.is_offline_mode()\n"
        "try:\n"
        "    build_handler(GenerationConfig(model_path='gpt2')).load()\n"
        "except ModelNotLocal as exc:\n"
        "    print('refused:', exc)\n"
        f"build_handler(GenerationConfig(model_path={str(tiny_model)!r}, max_tokens=2)).load()\n"
        "print('offline:', c.is_offline_mode())\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=clean_env())
    assert proc.returncode == 0, proc.stderr
    assert "refused: --model gpt2: not a local model folder" in proc.stdout
    assert "offline: True" in proc.stdout
