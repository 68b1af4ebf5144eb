"""Training under hostile conditions: non-finite steps, corrupt checkpoints, bitwise resume of every trainer, SIGINT."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp

from tests.training.markov import write_markov_shards
from tests.training.test_trainer import SMALL, pretrain, pretrain_here
from training import checkpoint, resume
from training.config import load_config
from training.data.loader import open_training_data
from training.distributed import Dist
from training.integrity import meta_problem
from training.metrics import MetricsLog, read_metrics
from training.model import Llama, ModelConfig
from training.pretrain import build_model_config
from training.trainers.baseline import Trainer

HERE = Path(__file__).resolve().parent
ONE = Dist(rank=0, world=1, local_rank=0, device=torch.device("cpu"))
DIVERGES = ["optim.lr=1e20", "checkpoint.every=1", "eval.every=0", "train.steps=6"]  # step 1 fine, step 2 NaN norm


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("markov")
    write_markov_shards(root)
    return root


# -- bitwise resume of every trainer (one launch per rank count checks them all) --------------------------------
DROP = "model.dropout=0.1"  # dropout draws from the global RNG every step, so a restored RNG must be exact
UNTIED = "model.tie_embeddings=false"  # local learning cannot tie the embedding to the last module's head
CASES = {
    "baseline": [DROP, "data.num_workers=1"],
    "streambp": ["trainer=streambp", "streambp.chunk=8"],  # StreamBP refuses dropout: it recomputes forwards
    "local": ["trainer=local", "local.blocks=2", DROP, UNTIED],
    "decoupled": ["trainer=decoupled", "pipeline.microbatches=2", "local.method=man",
                  DROP, UNTIED],
    "skippipe": ["trainer=skippipe", "pipeline.microbatches=2", DROP],
    "1f1b": ["trainer=pipeline", "pipeline.schedule=1f1b", "pipeline.microbatches=2", DROP, "data.num_workers=1"],
    "interleaved1f1b": ["trainer=pipeline", "pipeline.schedule=interleaved1f1b", "pipeline.microbatches=2",
                        "model.n_layers=4", DROP],
}
BLOCKS = {1: "local.blocks=1", 2: "local.blocks=2"}  # the decoupled pipeline runs one module per rank
ON_ONE_RANK = ("baseline", "streambp", "local", "decoupled", "skippipe")  # the pipeline schedules need 2 ranks


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2])
def test_every_trainer_resumes_bitwise_after_a_corrupt_checkpoint(shards, tmp_path, ranks):
    """8 steps in one go == 5 steps, a bit flipped in step 5's checkpoint, and a resume to 8 from step 4: every
    checkpoint entry (weights, optimizer, data position, each rank's torch/numpy/python RNG) bit for bit, and
    metrics.jsonl with each step once."""
    names = [n for n in CASES if ranks == 2 or n in ON_ONE_RANK]
    cases = [{"name": n, "overrides": CASES[n] + ([BLOCKS[ranks]] if n == "decoupled" else [])} for n in names]
    launcher = [] if ranks == 1 else ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
    proc = subprocess.run([sys.executable, *launcher, str(HERE / "resume_check.py"), json.dumps(cases), str(shards),
                           str(tmp_path)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parents[1])})
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"case"')]
    assert [r["case"] for r in results] == names
    for r in results:
        assert r["diffs"] == [], r
        assert r["ranks"] == [f"rank{i}" for i in range(ranks)], r
        assert r["rng"] == sorted(f"rank{i}.rng.{k}" for i in range(ranks) for k in ("numpy", "python", "torch")), r
        assert r["entries"] > 100 and r["same_metrics"] and r["steps_logged"] == list(range(1, 9)), r
        assert r["set_aside"] == ["step-00000005.corrupt"], r


# -- non-finite loss or gradient norm ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("ranks,extra", [
    (1, []),
    (2, ["--trainer=pipeline", "--schedule=1f1b"]),  # only the last stage knows the loss
    (2, ["--trainer=decoupled", "--blocks=2", UNTIED]),  # modules decide on their own numbers
])
def test_a_diverging_run_stops_at_once_and_keeps_its_good_checkpoint(shards, tmp_path, ranks, extra):
    run = tmp_path / "run"
    proc = pretrain("--config", "tiny", f"data.path={shards}", f"output={run}", *SMALL, *DIVERGES, *extra,
                    ranks=ranks, check=False)
    assert proc.returncode != 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000001"]  # keep=2 kept no NaN one
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "step 2: the loss or gradient norm is not finite" in errors[0], proc.stderr[-3000:]
    assert "optim.lr" in errors[0] and str(run / "checkpoints" / "step-00000001") in errors[0]
    if ranks == 1:
        assert proc.returncode == 3 and proc.stderr.strip() == errors[0]
        from training.export import main as export_main

        assert export_main(["--run", str(run), "--out", str(tmp_path / "hf")]) == 0  # the good step 1


class BadBatch(Trainer):
    """The baseline trainer whose step 3 meets a batch that overflows: its gradients come out NaN."""

    def forward_backward(self, micro_batches):
        loss = super().forward_backward(micro_batches)
        if self.step + 1 == 3:
            next(self.model.parameters()).grad.fill_(float("nan"))
        return loss

    def after_step(self):
        self.weights = [*getattr(self, "weights", []), [p.detach().clone() for p in self.model.parameters()]]
        return super().after_step()


def bad_batch_trainer(shards: Path, out: Path, *overrides: str) -> BadBatch:
    cfg = load_config("tiny", [f"data.path={shards}", f"output={out}", *SMALL, "train.steps=5", "eval.every=0",
                               "log.progress=false", *overrides])
    data = open_training_data(cfg.data, micro_batch_size=cfg.train.micro_batch_size, eval_batches=cfg.eval.batches)
    model_cfg = build_model_config(cfg, vocab_size=data.meta.vocab_size, seq_len=data.meta.seq_len)
    return BadBatch(cfg, d=ONE, model_cfg=model_cfg, train_loader=data.train, eval_loader=data.valid,
                    seq_len=data.meta.seq_len, data_meta={"seq_len": data.meta.seq_len})


def test_skip_policy_drops_the_bad_step_and_trains_on(shards, tmp_path):
    trainer = bad_batch_trainer(shards, tmp_path, "train.nonfinite=skip", "checkpoint.every=0")
    summary = trainer.fit()
    assert summary["steps"] == 5 and summary["skipped_steps"] == 1
    w = trainer.weights
    assert all(torch.equal(a, b) for a, b in zip(w[1], w[2]))  # step 3 left the weights as step 2 did
    assert not all(torch.equal(a, b) for a, b in zip(w[2], w[3]))  # step 4 trains again
    adam = trainer.optimizers[0].state
    assert {int(s["step"]) for s in adam.values()} == {4}  # 5 steps, 1 skipped: Adam took 4
    skipped = [r for r in read_metrics(tmp_path) if r.get("skipped")]
    assert [(r["step"], r["skipped_steps"]) for r in skipped] == [(3, 1)]


def test_stop_policy_raises_before_the_update_and_saves_nothing_from_it(shards, tmp_path):
    from training.trainers.guard import NonFiniteError

    trainer = bad_batch_trainer(shards, tmp_path, "checkpoint.every=1", "checkpoint.keep=2")
    with pytest.raises(NonFiniteError, match=r"step 3: .* resume from .*step-00000002") as err:
        trainer.fit()
    assert "\n" not in str(err.value) and "train.nonfinite=skip" in str(err.value)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "checkpoints")] == ["step-00000001", "step-00000002"]
    assert len(trainer.weights) == 2


def test_skip_policy_stops_a_run_that_keeps_diverging(shards, tmp_path):
    proc = pretrain("--config", "tiny", f"data.path={shards}", f"output={tmp_path}", *SMALL, *DIVERGES,
                    "train.nonfinite=skip", "train.max_skipped=2", check=False)
    assert proc.returncode == 3 and "step 4: more than train.max_skipped = 2 steps in a row" in proc.stderr
    assert [(r["step"], r["skipped_steps"]) for r in read_metrics(tmp_path) if r.get("skipped")] == [(2, 1), (3, 2)]


# -- checkpoints: refuse non-finite state, verify files, fall back, write atomically ----------------------------
def tiny_model(seed: int) -> tuple[Llama, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = Llama(ModelConfig(vocab_size=16, dim=8, n_layers=1, n_heads=2, ffn_dim=16, max_seq_len=8))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randint(0, 16, (2, 8))).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    return model, optimizer


def save_steps(root: Path, steps: list[int], *, keep: int = 0) -> dict[int, dict[str, torch.Tensor]]:
    """Checkpoints of a model whose weights change between steps; returns each step's weights."""
    model, optimizer = tiny_model(0)
    weights = {}
    for step in steps:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(step)
        checkpoint.save(root, d=ONE, step=step, tokens=step, parts=[model], optimizers=[optimizer],
                        rank_state={"data": {"batches": step}}, meta={"trainer": "t", "model": dataclasses.asdict(model.cfg)},
                        keep=keep)
        weights[step] = {k: v.clone() for k, v in model.state_dict().items()}
    return weights


def load(root: Path) -> tuple[resume.Resumed | None, Llama]:
    model, optimizer = tiny_model(1)
    resumed = resume.load_latest(root, d=ONE, parts=[model], optimizers=[optimizer], meta={"trainer": "t"},
                                     rank_template={"data": {"batches": 0}})
    return resumed, model


def truncate(folder: Path) -> str:
    shard = folder / "__0_0.distcp"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    return "file __0_0.distcp: "


def flip(folder: Path) -> str:
    shard = folder / "__0_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 1
    shard.write_bytes(bytes(data))
    return "file __0_0.distcp: sha256 mismatch"


def no_metadata(folder: Path) -> str:
    (folder / ".metadata").unlink()
    return "file .metadata: missing"


def bad_meta(folder: Path) -> str:
    (folder / "meta.json").write_text('{"step": 2, "model"')
    return "file meta.json: unreadable (JSONDecodeError"


@pytest.mark.parametrize("corrupt", [truncate, flip, no_metadata, bad_meta])
def test_resume_passes_over_a_corrupt_checkpoint_to_the_newest_good_one(tmp_path, corrupt):
    weights = save_steps(tmp_path, [1, 2])
    why = corrupt(tmp_path / "step-00000002")
    resumed, model = load(tmp_path)
    assert resumed.step == 1 and resumed.rank_state["data"] == {"batches": 1}
    assert len(resumed.passed_over) == 1 and resumed.passed_over[0].startswith(f"step-00000002 ({why}")
    assert all(torch.equal(v, weights[1][k]) for k, v in model.state_dict().items())
    assert (tmp_path / "step-00000002.corrupt").is_dir() and not (tmp_path / "step-00000002").exists()


def test_resume_with_no_loadable_checkpoint_is_one_line_naming_each(tmp_path):
    save_steps(tmp_path, [1, 2])
    truncate(tmp_path / "step-00000002")
    no_metadata(tmp_path / "step-00000001")
    with pytest.raises(checkpoint.CheckpointError) as err:
        load(tmp_path)
    message = str(err.value)
    assert "\n" not in message and "step-00000002: file __0_0.distcp" in message
    assert "step-00000001: file .metadata: missing" in message and "checkpoint.resume=false" in message


def test_a_half_written_checkpoint_is_never_the_latest(tmp_path):
    weights = save_steps(tmp_path, [1])
    (tmp_path / "step-00000002.tmp").mkdir()  # a crash mid-save: DCP's files but no meta.json, no rename
    (tmp_path / "step-00000002.tmp" / "__0_0.distcp").write_bytes(b"partial")
    (tmp_path / "step-00000003").mkdir()  # a folder without meta.json: an interrupted copy, named and set aside
    resumed, model = load(tmp_path)
    assert resumed.step == 1 and resumed.passed_over == ("step-00000003 (no meta.json: an interrupted save or copy)",)
    assert (tmp_path / "step-00000003.corrupt").is_dir() and (tmp_path / "step-00000002.tmp").is_dir()
    assert all(torch.equal(v, weights[1][k]) for k, v in model.state_dict().items())
    meta = json.loads((tmp_path / "step-00000001" / "meta.json").read_text())
    assert sorted(meta["files"]) == sorted(p.name for p in (tmp_path / "step-00000001").iterdir() if p.name != "meta.json")


META_SHAPES = {  # a meta.json that is valid JSON of the wrong shape -> the reason it is passed over
    "files: null": (lambda m: m.update(files=None), "files is None, not an object"),
    "files: a list": (lambda m: m.update(files=["x"]), "files is ['x'], not an object"),
    "files: numbers": (lambda m: m.update(files={k: 5 for k in m["files"]}), "files: .metadata: 5 is not {bytes"),
    "files: a path": (lambda m: m["files"].update({"../x": m["files"][".metadata"]}), "files: '../x' is not a file"),
    "digest: short": (lambda m: m["files"][".metadata"].update(sha256="ab"), "files: .metadata: {'bytes'"),
    "empty": (lambda m: m.clear(), "step is missing"),
    "no world": (lambda m: m.pop("world"), "world is missing"),
    "world: str": (lambda m: m.update(world="1"), "world is '1', not an integer >= 1"),
    "step: other": (lambda m: m.update(step=7), "step is 7 in the folder of step 2"),
    "step: bool": (lambda m: m.update(step=True), "step is True, not an integer >= 0"),
    "model: list": (lambda m: m.update(model=[1]), "model is [1], not a JSON object"),
}


@pytest.mark.parametrize("edit,why", META_SHAPES.values(), ids=META_SHAPES)
def test_meta_json_of_the_wrong_shape_is_damage(tmp_path, edit, why):
    """Every shape check, on a meta.json as save() writes it; the last two through a resume and an export."""
    save_steps(tmp_path, [1, 2])
    path = tmp_path / "step-00000002" / "meta.json"
    meta = json.loads(path.read_text())
    assert meta_problem(meta, step=2) is None
    edit(meta)
    assert why in meta_problem(meta, step=2)


@pytest.mark.parametrize("edit", ["files: null", "no world"])
def test_resume_and_export_pass_over_a_meta_json_of_the_wrong_shape(tmp_path, capsys, edit):
    from training.export import main as export_main

    root = tmp_path / "checkpoints"
    save_steps(root, [1, 2])
    path = root / "step-00000002" / "meta.json"
    meta = json.loads(path.read_text())
    META_SHAPES[edit][0](meta)
    path.write_text(json.dumps(meta))
    assert export_main(["--run", str(tmp_path), "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"step-00000002 is corrupt (file meta.json: {META_SHAPES[edit][1]}" in err
    resumed, _ = load(root)
    why = META_SHAPES[edit][1]
    assert resumed.step == 1 and resumed.passed_over[0].startswith(f"step-00000002 (file meta.json: {why}")
    assert (root / "step-00000002.corrupt").is_dir()


def test_a_checkpoint_that_does_not_fit_is_refused_in_one_line_and_never_set_aside(tmp_path):
    """Another model shape is not damage: the resume stops and the checkpoint keeps its name."""
    save_steps(tmp_path, [1, 2])
    torch.manual_seed(0)
    wider = Llama(ModelConfig(vocab_size=16, dim=16, n_layers=1, n_heads=2, ffn_dim=16, max_seq_len=8))
    optimizer = torch.optim.AdamW(wider.parameters(), lr=1e-2)
    with pytest.raises(checkpoint.CheckpointError) as err:
        resume.load_latest(tmp_path, d=ONE, parts=[wider], optimizers=[optimizer], meta={"trainer": "t"},
                           rank_template={"data": {"batches": 0}})
    message = str(err.value)
    assert "\n" not in message and "step-00000002 does not fit this run" in message
    assert "model.embed.weight is [16, 8] there, [16, 16] here" in message and "checkpoint.resume=false" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001", "step-00000002"]


def test_differences_name_each_field_that_differs():
    saved = {"model": {"dim": 32, "n_layers": 2}, "data": {"seq_len": 32}, "tokens_per_step": 256, "trainer": "b"}
    current = {"model": {"dim": 48, "n_layers": 2}, "data": {"seq_len": 32}, "tokens_per_step": 512, "trainer": "b"}
    assert resume.differences(saved, current) == ["model.dim: checkpoint 32, this run 48",
                                                  "tokens_per_step: checkpoint 256, this run 512"]


def with_cuda_state(monkeypatch, cuda: object) -> None:
    """rng_state() as a rank on a GPU returns it (no GPU is needed: the state is only stored and compared)."""
    real = resume.rng_state

    def fake(device):
        return {**real(device), "cuda": cuda}

    monkeypatch.setattr(checkpoint, "rng_state", fake)
    monkeypatch.setattr(resume, "rng_state", fake)


CUDA_STATE = torch.arange(16, dtype=torch.uint8)  # a Philox seed and offset, as torch.cuda.get_rng_state() gives


@pytest.mark.parametrize("written,read,note", [
    (None, CUDA_STATE, "the checkpoint holds no cuda RNG state for this rank's device (rank 0)"),  # CPU -> GPU
    (CUDA_STATE, None, "the checkpoint's cuda RNG state has no generator here (rank 0)"),  # GPU -> CPU
    (CUDA_STATE[:8], CUDA_STATE, "the checkpoint's cuda RNG state has another shape (rank 0)"),
    ([CUDA_STATE, CUDA_STATE], CUDA_STATE, "the checkpoint holds no cuda RNG state"),  # old format: every GPU
])
def test_a_checkpoint_from_another_device_loads_and_says_the_resume_is_not_bitwise(tmp_path, monkeypatch, written,
                                                                                 read, note):
    if written is not None:
        with_cuda_state(monkeypatch, written)
    weights = save_steps(tmp_path, [1])
    monkeypatch.undo()
    restored = []
    monkeypatch.setattr(resume, "set_rng_state", lambda state, device: restored.append(sorted(state)))
    if read is not None:
        with_cuda_state(monkeypatch, read)
    resumed, model = load(tmp_path)
    assert resumed.step == 1 and resumed.passed_over == () and resumed.not_bitwise[0].startswith(note)
    assert restored == [["numpy", "python", "torch"]]  # the CPU generators still come back exactly
    assert all(torch.equal(v, weights[1][k]) for k, v in model.state_dict().items())
    assert (tmp_path / "step-00000001").is_dir()


def test_rng_state_keeps_only_this_ranks_device():
    from training.rng import rng_state

    assert sorted(rng_state(torch.device("cpu"))) == ["numpy", "python", "torch"]


def test_pruning_keeps_later_steps_and_clears_old_leftovers(tmp_path):
    """A later step-N is another history: never pruned. Older .tmp/.old/.corrupt go, but the newest .corrupt."""
    for name in ("step-00000001.tmp", "step-00000001.old", "step-00000001.corrupt", "step-00000002.corrupt"):
        (tmp_path / name).mkdir()
    save_steps(tmp_path, [9])
    save_steps(tmp_path, [3, 4], keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000002.corrupt", "step-00000004", "step-00000009"]


def test_save_refuses_non_finite_state_and_keeps_the_good_checkpoint(tmp_path):
    save_steps(tmp_path, [1], keep=1)
    model, optimizer = tiny_model(0)
    with torch.no_grad():
        model.layers["0"].mlp.up_proj.weight[0, 0] = float("nan")
    with pytest.raises(checkpoint.CheckpointError, match=r"refusing to save step 2: .*layers.0.mlp.up_proj.weight: 1 NaN"):
        checkpoint.save(tmp_path, d=ONE, step=2, tokens=2, parts=[model], optimizers=[optimizer],
                        rank_state={"data": {"batches": 2}}, meta={"trainer": "t"}, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001"]


def write_raw_checkpoint(folder: Path, model: Llama) -> None:
    """A checkpoint as an older version wrote it (no checksums, no finiteness check)."""
    with checkpoint.quiet_if_single(False):
        dcp.save({"model": model.state_dict()}, checkpoint_id=str(folder))
    (folder / "meta.json").write_text(json.dumps({"model": dataclasses.asdict(model.cfg), "step": 7, "world": 1}))


def test_export_refuses_non_finite_weights(tmp_path, capsys):
    from training.export import main as export_main

    model, _ = tiny_model(0)
    with torch.no_grad():
        model.head.weight[3] = float("inf")
    write_raw_checkpoint(tmp_path / "ckpt", model)
    assert export_main(["--run", str(tmp_path / "ckpt"), "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "weights are not finite (head.weight: 0 NaN, 8 inf" in err
    assert not (tmp_path / "hf").exists()


def test_export_names_the_corrupt_file(tmp_path, capsys):
    from training.export import main as export_main

    save_steps(tmp_path / "checkpoints", [1, 2])
    flip(tmp_path / "checkpoints" / "step-00000002")
    assert export_main(["--run", str(tmp_path), "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "step-00000002 is corrupt (file __0_0.distcp: sha256 mismatch" in err
    assert "step-00000001" in err


@pytest.mark.slow
def test_cli_falls_back_past_a_truncated_checkpoint_and_fails_in_one_line_when_none_loads(shards, tmp_path, capsys):
    common = ["--config", "tiny", f"data.path={shards}", f"output={tmp_path}", *SMALL, "eval.every=0",
              "checkpoint.every=1", "checkpoint.keep=0"]
    pretrain(*common, "train.steps=2")
    truncate(tmp_path / "checkpoints" / "step-00000002")
    proc = pretrain(*common, "train.steps=3")
    assert "passing over step-00000002 (file __0_0.distcp: " in proc.stdout
    assert "resuming from step-00000001 instead" in proc.stdout and "at step 1" in proc.stdout
    assert [r["step"] for r in read_metrics(tmp_path) if "loss" in r and not r.get("summary")] == [1, 2, 3]
    for folder in checkpoint.list_checkpoints(tmp_path / "checkpoints"):
        (folder / "meta.json").write_text("")
    status, err = pretrain_here(capsys, *common, "train.steps=4")  # refused before training: no launch needed
    assert status == 2 and err.count("\n") == 1 and "no checkpoint in" in err
    assert "step-00000003: file meta.json: unreadable" in err


# -- the metrics log reads as one run ---------------------------------------------------------------------------
def test_resuming_drops_the_logged_steps_after_the_checkpoint(tmp_path):
    lines = [json.dumps({"step": s, "loss": float(s)}) for s in range(1, 7)] + ['{"step": 7, "lo']  # torn by a crash
    lines.insert(4, json.dumps({"step": 4, "summary": True, "loss": 4.0}))  # an earlier invocation stopped at 4
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
    log = MetricsLog(tmp_path, enabled=True, tensorboard=False)
    log.start(4)
    log.log(5, {"loss": 50.0, "grad_norm": float("nan"), "lr": float("inf")})
    log.close()
    assert [(r["step"], r["loss"]) for r in read_metrics(tmp_path)] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0),
                                                                       (5, 50.0)]
    last = (tmp_path / "metrics.jsonl").read_text().splitlines()[-1]
    assert json.loads(last, parse_constant=pytest.fail) == {**json.loads(last), "grad_norm": None, "lr": None}


# -- SIGINT, SIGTERM and SIGUSR1 (preemption across ranks: test_preemption.py) ---------------------------------
def test_signals_ask_for_a_stop_and_only_a_later_second_sigint_exits_at_once():
    from training.trainers.guard import StopSignals

    with StopSignals(announce=False, repeat_s=3600.0) as stops:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # torchrun passing on the same Ctrl-C
        assert stops.signum == signal.SIGTERM
    with StopSignals(announce=False, repeat_s=0.0) as stops:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
        assert stops.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


@pytest.mark.slow
@pytest.mark.parametrize("ranks,signals,to_group", [
    (1, [signal.SIGINT], True),  # Ctrl-C in a terminal: every process of the group gets it (loader workers too)
    # Slurm's warning (--signal=USR1@<s>), then its SIGTERM: every process of the job step, loader workers too
    (1, [signal.SIGUSR1, signal.SIGTERM], True),
    (2, [signal.SIGINT], True),  # the same under torchrun: it reaches torchrun and its ranks alike
    (2, [signal.SIGTERM], False),  # a scheduler stopping the job: only torchrun gets it, and forwards it
])
def test_a_signal_saves_a_complete_checkpoint_at_the_next_step_and_the_run_resumes_there(shards, tmp_path, ranks,
                                                                                        signals, to_group):
    signum = signals[0]
    args = ["--config", "tiny", f"data.path={shards}", f"output={tmp_path}", *SMALL, "train.steps=100000",
            "eval.every=0", "checkpoint.every=0", "data.num_workers=1", DROP]
    launcher = ["-m", "training.pretrain"] if ranks == 1 else [
        "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}", "-m", "training.pretrain"]
    proc = subprocess.Popen([sys.executable, *launcher, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    metrics = tmp_path / "metrics.jsonl"
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 2):  # training is under way
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    for sig in signals:
        os.killpg(proc.pid, sig) if to_group else os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=300)
    # One process exits 130 after Ctrl-C and 0 when preempted; torchrun exits 1 with its own traceback
    # (SignalException) after a signal it handles, whatever its workers did, so there the checkpoint and the
    # workers' last line are the evidence (scripts/slurm/pretrain.sbatch keeps torchrun out of it: exit 0).
    assert proc.returncode == ((130 if signum == signal.SIGINT else 0) if ranks == 1 else 1), err[-3000:]
    saved = checkpoint.list_checkpoints(tmp_path / "checkpoints")
    assert len(saved) == 1
    meta, problem = checkpoint.verify(saved[0], ONE)
    assert problem is None and meta["world"] == ranks and len(meta["files"]) == ranks + 1  # .metadata + a shard each
    step = int(saved[0].name.split("-")[1])
    name = signal.Signals(signum).name
    assert f"interrupted by {name} at step {step}/100000, checkpoint saved" in out
    assert ("torchrun --shutdown-timeout" in err) == (ranks > 1)
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records if "loss" in r and not r.get("summary")] == list(range(1, step + 1))
    assert records[-1]["summary"] and records[-1]["signal"] == signum
    if signum == signal.SIGINT:  # resuming does not depend on the signal: once per launcher is enough
        again = pretrain(*args, "train.stop_after=1", ranks=ranks)
        assert f"resumed from {saved[0]} at step {step}" in again.stdout
        assert f"stopped at {step + 1}/100000" in again.stdout


def test_nonfinite_entries_counts_exactly_even_when_a_finite_sum_overflows():
    """The fast path (a finite sum) must never hide a NaN, and an overflowing sum of finite values is no alarm."""
    from training.integrity import nonfinite_entries

    big = torch.full((4,), 3e38)  # finite, but its float32 sum is inf
    half = torch.tensor([60000.0, 60000.0], dtype=torch.float16)  # finite, the float16 sum would overflow
    bad = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 2.0])
    assert nonfinite_entries({"big": big, "half": half, "ok": torch.ones(3, dtype=torch.float64)}) == []
    assert nonfinite_entries({"m": {"w": bad}, "f": float("nan")}) == ["m.w: 1 NaN, 2 inf of 5", "f: nan"]
