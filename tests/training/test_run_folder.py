"""The run folder: refused before setup when unusable, a fresh start over an earlier run refused unless --overwrite
(which moves the earlier run aside), kept by a refused resume, and the eval lines printed as they come."""
from __future__ import annotations

import dataclasses
import json
import math
import shlex
from pathlib import Path

import pytest
import torch

from core.config import ConfigError, load_yaml
from tests.training.markov import write_markov_shards
from training import checkpoint, rundir
from training.config import load_config
from training.distributed import Dist
from training.metrics import read_metrics
from training.model import Llama, ModelConfig
from training.pretrain import main, train

ONE = Dist(rank=0, world=1, local_rank=0, device=torch.device("cpu"))
TINY = ["model.dim=16", "model.n_layers=1", "model.n_heads=2", "model.ffn_dim=32", "train.micro_batch_size=2",
        "train.threads=1", "train.device=cpu", "log.every=1", "log.progress=false", "eval.every=0", "eval.batches=1"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("markov")
    write_markov_shards(root)
    return root


def run(shards: Path, out: Path, *overrides: str) -> dict:
    return train(load_config("tiny", [f"data.path={shards}", f"output={out}", *TINY, *overrides]), ONE)


def steps_logged(out: Path) -> list[int]:
    return [r["step"] for r in read_metrics(out) if "loss" in r and not r.get("summary")]


@pytest.mark.parametrize("output,why", [
    ("{file}", " is a file, not a folder"),
    ("{file}/run", ": {file} is a file, not a folder"),
    ("/proc/self/run", ": cannot create or write the folder: "),
])
def test_an_unusable_output_is_one_line_and_exit_2_before_anything_starts(tmp_path, capsys, output, why):
    file = tmp_path / "afile"
    file.write_text("")
    output = output.format(file=file)
    assert main(["--config", "tiny", f"output={output}", f"data.path={tmp_path / 'none'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: output={output}{why.format(file=file)}"), err


def test_export_refuses_an_unusable_out_and_tokenizer_in_one_line(tmp_path, capsys):
    from training.export import main as export_main

    checkpoint_run = tmp_path / "run"
    save_one_checkpoint(checkpoint_run / "checkpoints")
    (tmp_path / "afile").write_text("")
    cases = {("--out", str(tmp_path / "afile")): " is a file, not a folder",
             ("--out", "/proc/self/hf"): ": /proc/self is not writable",
             ("--tokenizer", str(tmp_path / "none.json")): ": no such file",
             ("--tokenizer", str(tmp_path / "afile")): ": not a tokenizer.json"}
    for (flag, value), why in cases.items():
        args = {"--run": str(checkpoint_run), "--out": str(tmp_path / "hf"), flag: value}
        assert export_main([x for kv in args.items() for x in kv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"error: {flag} {value}{why}" in err, err
    assert not (tmp_path / "hf").exists()


def save_one_checkpoint(root: Path) -> None:
    model = Llama(ModelConfig(vocab_size=16, dim=8, n_layers=1, n_heads=2, ffn_dim=16, max_seq_len=8))
    optimizer = torch.optim.AdamW(model.parameters())
    checkpoint.save(root, d=ONE, step=1, tokens=1, parts=[model], optimizers=[optimizer], rank_state={},
                    meta={"model": dataclasses.asdict(model.cfg)}, keep=0)


def test_a_fresh_start_moves_the_earlier_run_aside_and_never_mixes_two_runs(shards, tmp_path, capsys):
    """checkpoint.resume=false over a run with step-2 and step-4: the new run's step 3 is not followed by the old
    step 4, its log holds its own steps only, and a later resume continues the new run."""
    run(shards, tmp_path, "train.steps=4", "checkpoint.every=2", "log.tensorboard=true")
    old_log = (tmp_path / "metrics.jsonl").read_text()
    capsys.readouterr()
    run(shards, tmp_path, "train.steps=3", "checkpoint.every=1", "checkpoint.resume=false", "overwrite=true",
        "log.tensorboard=true")
    out = capsys.readouterr().out
    previous = [p for p in tmp_path.iterdir() if p.name.startswith("previous-")]
    assert len(previous) == 1 and ("overwrite=true: starting fresh; the earlier run's checkpoints/, config.yaml, "
                                   f"metrics.jsonl, tensorboard/ moved to {previous[0]}/") in out
    assert [p.name for p in checkpoint.list_checkpoints(previous[0] / "checkpoints")] == ["step-00000002",
                                                                                          "step-00000004"]
    assert (previous[0] / "metrics.jsonl").read_text() == old_log and (previous[0] / "tensorboard").is_dir()
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "checkpoints")] == ["step-00000002",
                                                                                       "step-00000003"]
    assert steps_logged(tmp_path) == [1, 2, 3]
    assert len(list((tmp_path / "tensorboard").iterdir())) == 1  # one event file: the new run's
    run(shards, tmp_path, "train.steps=4", "checkpoint.every=1")
    assert "resumed from" in capsys.readouterr().out and steps_logged(tmp_path) == [1, 2, 3, 4]


def test_move_aside_names_each_fresh_start_apart_and_ignores_a_folder_without_a_run(tmp_path):
    assert rundir.move_aside(tmp_path) is None
    (tmp_path / "config.yaml").write_text("x: 1\n")
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "metrics.jsonl").write_text("")
    assert rundir.move_aside(tmp_path) is None  # a config, an empty log and folder are no run: reused, not moved
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    first = rundir.move_aside(tmp_path, now=0.0)
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    second = rundir.move_aside(tmp_path, now=0.0)
    assert second.name == first.name + "-2" and sorted(p.name for p in first.iterdir()) == ["config.yaml",
                                                                                           "metrics.jsonl",
                                                                                           "tensorboard"]


def test_a_refused_resume_keeps_config_yaml_and_names_only_the_differences(shards, tmp_path, capsys):
    run(shards, tmp_path, "train.steps=2")
    with pytest.raises(checkpoint.CheckpointError) as err:
        run(shards, tmp_path, "train.steps=4", "model.dim=32", "model.n_heads=4")
    message = str(err.value)
    assert "\n" not in message and "does not fit this run: model.dim: checkpoint 16, this run 32; model.n_heads: " \
        "checkpoint 2, this run 4; resume with the settings that wrote it (" + str(tmp_path / "config.yaml") in message
    assert "n_layers" not in message and "checkpoint.resume=false" in message
    assert load_yaml(tmp_path / "config.yaml")["model"]["dim"] == 16
    assert json.loads((tmp_path / "checkpoints" / "step-00000002" / "meta.json").read_text())["model"]["dim"] == 16


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under folder with its bytes (None for a folder): what "nothing was written" is checked against."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def cli(shards: Path, out: Path, *overrides: str) -> list[str]:
    return ["--config", "tiny", f"data.path={shards}", f"output={out}", *TINY, *overrides]


def test_a_fresh_start_over_an_earlier_run_is_refused_before_anything_is_written(shards, tmp_path, capsys):
    """resume=false over a finished run: exit 2, one line that names what is there and the three ways on, and the
    folder byte for byte as it was; with --dry-run too. Without resume=false the same folder resumes as before."""
    run(shards, tmp_path, "train.steps=2", "log.tensorboard=true")
    before = snapshot(tmp_path)
    for extra in ([], ["--dry-run"]):
        capsys.readouterr()
        assert main(cli(shards, tmp_path, "train.steps=3", "checkpoint.resume=false", *extra)) == 2
        err = capsys.readouterr().err
        assert err == (f"error: output={tmp_path} already holds a run (checkpoints/, metrics.jsonl, tensorboard/) and "
                       "checkpoint.resume=false would start another over it; resume it (checkpoint.resume=true), "
                       "choose another output folder, or pass --overwrite (overwrite=true) to move that run into "
                       f"{tmp_path}/previous-<time>/ and start fresh\n")
        assert snapshot(tmp_path) == before
    assert main(cli(shards, tmp_path, "train.steps=3")) == 0
    assert "resumed from" in capsys.readouterr().out and steps_logged(tmp_path) == [1, 2, 3]


def test_the_trainer_refuses_too_when_started_without_the_cli(shards, tmp_path):
    """train() from Python (no CLI check in front) refuses the same way, before its config.yaml or a log is written."""
    run(shards, tmp_path, "train.steps=1")
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match="already holds a run .* pass --overwrite"):
        run(shards, tmp_path, "train.steps=1", "checkpoint.resume=false", "model.dim=32")
    assert snapshot(tmp_path) == before


def test_overwrite_moves_the_run_aside_and_an_empty_or_absent_folder_needs_nothing(shards, tmp_path, capsys):
    """--overwrite: the earlier run's files sit unchanged in previous-<time>/, the folder holds one run's log and one
    TensorBoard event file. A folder that does not exist, or exists empty, starts fresh without --overwrite."""
    out = tmp_path / "run"
    assert main(cli(shards, out, "train.steps=2", "checkpoint.resume=false", "log.tensorboard=true")) == 0
    (tmp_path / "empty").mkdir()
    assert main(cli(shards, tmp_path / "empty", "train.steps=1", "checkpoint.resume=false")) == 0
    before = snapshot(out)
    assert main(cli(shards, out, "train.steps=3", "checkpoint.resume=false", "--overwrite", "log.tensorboard=true",
                    "model.dim=32")) == 0
    previous = [p for p in out.iterdir() if p.name.startswith("previous-")]
    assert len(previous) == 1 and snapshot(previous[0]) == before
    assert steps_logged(out) == [1, 2, 3] and len(list((out / "tensorboard").iterdir())) == 1
    assert [p.name for p in checkpoint.list_checkpoints(out / "checkpoints")] == ["step-00000003"]
    assert load_yaml(out / "config.yaml")["model"]["dim"] == 32


def test_overwrite_with_resume_on_is_a_contradiction_named_in_one_line(tmp_path, capsys):
    assert main(["--config", "tiny", f"output={tmp_path}", "--overwrite", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "overwrite=true replaces the run in output, checkpoint.resume=true continues it" \
        in err and not any(tmp_path.iterdir())


def test_each_invocation_records_its_command_line(shards, tmp_path):
    """commands.jsonl: the CLI's argv as a shell line and the step each invocation started at, a resume appended."""
    first = cli(shards, tmp_path, "train.steps=2", "checkpoint.every=1")
    second = cli(shards, tmp_path, "train.steps=3", "checkpoint.every=1")
    assert main(first) == 0 and main(second) == 0
    records = [json.loads(line) for line in (tmp_path / "commands.jsonl").read_text().splitlines()]
    assert [(r["command"], r["step"], r["ranks"]) for r in records] == [
        ("python -m training.pretrain " + " ".join(shlex.quote(a) for a in first), 0, 1),
        ("python -m training.pretrain " + " ".join(shlex.quote(a) for a in second), 2, 1)]


def test_eval_results_are_printed_as_they_come(shards, tmp_path, capsys):
    """Each held-out evaluation prints one line right after its step's training line: step, loss, exp(loss), tokens,
    the numbers of metrics.jsonl's eval records."""
    capsys.readouterr()
    assert main(cli(shards, tmp_path, "train.steps=4", "eval.every=2", "eval.batches=2")) == 0
    lines = capsys.readouterr().out.splitlines()
    evals = [r for r in read_metrics(tmp_path) if "eval_loss" in r and not r.get("summary")]
    assert [r["step"] for r in evals] == [2, 4]
    for r in evals:
        line = (f"step {r['step']}/4 held-out loss {r['eval_loss']:.4f} ppl {math.exp(r['eval_loss']):.2f} "
                f"({2 * 2 * 32:,} tokens)")  # eval.batches x micro_batch_size x seq_len
        assert lines.count(line) == 1
        assert lines[lines.index(line) - 1].startswith(f"step {r['step']}/4 loss ")
    assert sum("held-out loss" in line for line in lines) == 3  # two evaluations and the final line
