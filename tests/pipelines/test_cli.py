"""The jobs' command lines (issue 18, item 6): a flag no one takes is refused with the nearest one (Beam alone
would warn and run with its default), --help lists what the job takes, --help_beam Beam's own flags, and Beam's
INFO messages (job submission, console URL) stay visible on cluster runners."""
from __future__ import annotations

import logging
from importlib import metadata

import pytest

from pipelines import swallowcode, tokenize, werp
from pipelines.jobs import JobError, job_main, quiet_loggers
from pipelines.run_info import input_files, resolved, run_info, versions


def _main(module, argv, capsys) -> tuple[int, str, str]:
    rc = job_main(argv, name=module.__name__.rsplit(".", 1)[1], doc=module.__doc__, option_classes=module.OPTIONS,
                  run=module.run)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("word, near", [("--extracter=trafilatura", "--extractor"),
                                        ("--max_record_byte=5", "--max_record_bytes"),
                                        ("--rejected-output=x", "--rejected_output"),
                                        ("--direct_num_worker=2", "--direct_num_workers")])  # a Beam flag too
def test_a_misspelt_flag_is_refused_with_the_nearest_one(word, near, capsys, tmp_path) -> None:
    rc, out, err = _main(werp, [word, "--runner=FnApiRunner", f"--output={tmp_path}/out"], capsys)
    assert rc == 2 and f"unknown flag: {word} (did you mean {near}?)" in err
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_an_unknown_flag_with_a_separate_value_is_named_once_and_a_stray_word_too(tmp_path) -> None:
    with pytest.raises(JobError) as caught:
        werp.run(["--colour", "blue", "--runner=FnApiRunner", "stray", f"--output={tmp_path}"])
    message = str(caught.value)
    assert message.startswith("unknown flags: --colour; stray.") and "blue" not in message


def test_each_job_takes_only_its_own_flags(tmp_path) -> None:
    with pytest.raises(JobError, match=r"unknown flag: --rejected_output=x\b"):  # tokenize writes no rejections
        tokenize.run(["--rejected_output=x", "--runner=FnApiRunner"])
    with pytest.raises(JobError, match=r"unknown flag: --extractor=trafilatura"):  # werp's, not swallowcode's
        swallowcode.run(["--extractor=trafilatura", "--runner=FnApiRunner"])


def test_help_lists_the_jobs_flags_and_where_beams_are(capsys) -> None:
    rc, out, _ = _main(tokenize, ["--help"], capsys)
    assert rc == 0 and "--tokenizer" in out and "--seq_len" in out and "--quiet" in out
    assert "--rejected_output" not in out and "--num_shards" not in out and "--extractor" not in out
    assert "python -m pipelines.tokenize --help_beam" in out
    assert "https://beam.apache.org/releases/pydoc/current/apache_beam.options.pipeline_options.html" in out
    rc, out, _ = _main(werp, ["--help"], capsys)
    assert rc == 0 and "--rejected_output" in out and "--extractor" in out and "--model" not in out


def test_help_beam_prints_beams_own_flags(capsys) -> None:
    rc, out, _ = _main(werp, ["--help_beam"], capsys)
    assert rc == 0 and out.strip()
    for flag in ("--runner", "--direct_num_workers", "--project", "--flink_master", "--job_endpoint"):
        assert flag in out, flag


@pytest.mark.parametrize("argv, beam_quiet", [([], True), (["--runner=FnApiRunner"], True),
                                              (["--runner", "DaskRunner"], True),
                                              (["--runner=DataflowRunner"], False), (["--runner=FlinkRunner"], False)])
def test_beams_info_lines_stay_on_cluster_runners(argv, beam_quiet) -> None:
    assert ("apache_beam" in quiet_loggers(argv)) is beam_quiet


def test_versions_are_the_installed_ones_and_missing_ones_are_null() -> None:
    found = versions(("apache-beam", "pylint", "no-such-distribution-xyz"))
    assert found == {"apache-beam": metadata.version("apache-beam"), "pylint": metadata.version("pylint"),
                     "no-such-distribution-xyz": None}
    assert {"apache-beam", "trafilatura", "justext", "resiliparse", "pylint", "py3langid",
            "fasttext-numpy2"} <= set(run_info()["versions"])


def test_input_files_are_listed_once_with_their_sizes(tmp_path) -> None:
    a, b = tmp_path / "a.warc.gz", tmp_path / "b.jsonl"
    a.write_bytes(b"x" * 1234)
    b.write_bytes(b"")
    assert input_files([str(a), str(b), str(a)]) == [{"path": str(a), "bytes": 1234}, {"path": str(b), "bytes": 0}]


def test_the_resolved_recipe_holds_every_threshold_in_force(tmp_path) -> None:
    loaded, _, _ = werp.resolve(werp.PipelineOptions(["--config=bluwerp"]), ["steps.gopher_quality.min_words=40"])
    recipe = resolved(loaded.config)
    gopher = next(s for s in recipe["steps"] if s["name"] == "gopher_quality")
    assert gopher["min_words"] == 40 and gopher["max_words"] == 100_000  # the override, and a default in force
    assert gopher["stop_words"] == ["the", "be", "to", "of", "and", "that", "have", "with"]  # Gopher's eight
    assert recipe["langid"]["languages"] == ["en"] and recipe["extract"]["extractor"] == "justext"


def test_a_real_run_records_versions_inputs_and_recipe(tmp_path, caplog) -> None:
    sample = werp.SAMPLE_PATH
    with caplog.at_level(logging.INFO):
        report = werp.run(["--runner=FnApiRunner", f"--output={tmp_path}/out", "--quiet"])
    assert report["input_files"] == [{"path": str(sample), "bytes": sample.stat().st_size}]
    assert report["versions"]["apache-beam"] == metadata.version("apache-beam")
    assert report["recipe_resolved"]["name"] == "bluwerp" and report["refinery_version"] == metadata.version("refinery")
