"""The run folder: refused before setup when unusable, moved aside by a fresh start, kept by a refused resume."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from core.config import load_yaml
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
    run(shards, tmp_path, "train.steps=3", "checkpoint.every=1", "checkpoint.resume=false", "log.tensorboard=true")
    out = capsys.readouterr().out
    previous = [p for p in tmp_path.iterdir() if p.name.startswith("previous-")]
    assert len(previous) == 1 and (f"the earlier run's checkpoints/, config.yaml, metrics.jsonl, tensorboard/ moved to "
                                   f"{previous[0]}/") in out
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
    assert rundir.move_aside(tmp_path) is None  # a config alone is no run: overwritten, not moved
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    first = rundir.move_aside(tmp_path, now=0.0)
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    second = rundir.move_aside(tmp_path, now=0.0)
    assert second.name == first.name + "-2" and sorted(p.name for p in first.iterdir()) == ["config.yaml",
                                                                                           "metrics.jsonl"]


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
