"""Every fix an error message suggests must work: a suggested `--flag` exists, a suggested `key=value` is a key.

Issue 14 found "no validation shards ... set holdout_shards=N" where the loader then rejected that key. The
oracle here is independent of the messages' code: the flags are the ones the parsers define (read from the
source of every `add_argument` call), the keys are the fields of the run config dataclasses.
"""
from __future__ import annotations

import ast
import dataclasses
import re
import typing
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "transforms", "training")
FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9_-]*)")
# A training override: `optim.lr=...` anywhere, or a bare `name=...` right after "set", "e.g.", "use" or "pass".
COMMAND = re.compile(r"`((?:hf|huggingface-cli|torchrun) [^`]*)`")  # another tool's command quoted in a message
KEY = re.compile(r"(?<![\w./:-])([a-z_]+(?:\.[a-z_]+)+)=|(?:\bset|e\.g\.|\buse|\bpass) \(?([a-z_]+)=")


def _strings_in_messages() -> list[tuple[str, str]]:
    """(file, text) of every string constant inside a raise, or a log/print call, in the product's source."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                is_message = isinstance(node, ast.Raise) or (
                    isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
                    in ("error", "warning", "info", "print"))
                if is_message:
                    found += [(str(path.relative_to(REPO)), text) for text in _texts(node)]
    return found


def _texts(node: ast.AST) -> list[str]:
    """The strings under a node; an f-string as one text with `{}` where its values go."""
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    return [t for child in ast.iter_child_nodes(node) for t in _texts(child)]


def _defined_flags() -> set[str]:
    """Flags the CLIs define: `add_argument("--x")` or a flag table anywhere, and Beam's own options."""
    flags = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                    names = node.args
                elif isinstance(node, ast.Dict):  # a table of flags -> add_argument keywords
                    names = [k for k in node.keys if k is not None]
                flags |= {a.value[2:] for a in names if isinstance(a, ast.Constant)
                          and isinstance(a.value, str) and a.value.startswith("--")}
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.betr_steps import build_parser  # builds some flags from a table of names

    flags |= {o[2:] for a in build_parser()._actions for o in a.option_strings}  # pylint: disable=protected-access
    return flags | set(PipelineOptions().get_all_options(retain_unknown_options=False)) | {"help"}


def _is_config_key(dotted: str) -> bool:
    """Whether `a.b` names a field of the training run config (training.config.RunConfig)."""
    from training.config import RunConfig

    cls: typing.Any = RunConfig
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(cls):
            return False
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return False
        cls = hints[part]
    return True


MESSAGES = _strings_in_messages()


def test_messages_were_found():
    assert len(MESSAGES) > 200  # the scan itself works: the product raises hundreds of messages


def test_every_suggested_flag_exists():
    defined = _defined_flags()
    missing = sorted({(where, flag) for where, text in MESSAGES for flag in FLAG.findall(COMMAND.sub("", text))
                      if flag.replace("-", "_") not in defined and flag not in defined})
    assert not missing, f"messages suggest flags no parser defines: {missing}"


def test_every_quoted_command_of_another_tool_exists_with_its_flags():
    """`hf download gpt2 --local-dir ...`: the executable is installed beside this Python and takes those flags
    (the first message said `huggingface-cli`, which huggingface_hub 1.x no longer installs)."""
    import shlex
    import shutil
    import subprocess
    import sys

    quoted = {cmd for _, text in MESSAGES for cmd in COMMAND.findall(text)}
    assert quoted, "the scan found no quoted command"
    bin_dir = Path(sys.executable).parent
    for cmd in quoted:
        words = shlex.split(cmd.replace("{}", "x"))
        exe = shutil.which(words[0], path=str(bin_dir)) or shutil.which(words[0])
        assert exe, f"{cmd!r}: {words[0]} is not installed"
        sub = [w for w in words[1:2] if not w.startswith("-")]
        usage = subprocess.run([exe, *sub, "--help"], capture_output=True, text=True, timeout=60).stdout
        for flag in (w.split("=")[0] for w in words if w.startswith("--")):
            assert flag in usage, f"{cmd!r}: {flag} is not a flag of `{' '.join([words[0], *sub])}`"


def test_every_suggested_training_key_exists():
    suggested = {(where, dotted or bare) for where, text in MESSAGES for dotted, bare in KEY.findall(text)
                 if where.startswith("training")}
    assert suggested, "the scan found no key=value suggestion at all"
    missing = sorted((where, key) for where, key in suggested if not _is_config_key(key))
    assert not missing, f"messages suggest keys the run config does not have: {missing}"


@pytest.mark.parametrize("text", ["e.g. tie_embeddings=False", "set holdout_shards=N to evaluate"])
def test_bare_field_names_are_not_suggested_as_overrides(text):
    """The old messages: a bare field name is not a run-config key (the section is missing)."""
    keys = [dotted or bare for dotted, bare in KEY.findall(text)]
    assert keys and not any(_is_config_key(k) for k in keys)


def test_following_the_no_validation_shards_advice_trains(tmp_path):
    """The message's own suggestion, copied out of stderr and passed back, must make the run work."""
    import shutil
    import subprocess
    import sys

    from tests.training.markov import write_markov_shards

    write_markov_shards(tmp_path / "tokens")
    shutil.rmtree(tmp_path / "tokens" / "valid")
    base = [sys.executable, "-m", "training.pretrain", "--config", "tiny", f"data.path={tmp_path / 'tokens'}",
            f"output={tmp_path / 'run'}", "model.dim=32", "model.n_layers=1", "model.n_heads=2", "model.n_kv_heads=1",
            "model.ffn_dim=64", "train.steps=2", "train.micro_batch_size=2", "eval.batches=2",
            "log.tensorboard=false", "checkpoint.every=0"]
    first = subprocess.run(base, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert first.returncode == 2 and "no validation shards" in first.stderr
    advice = re.search(r"set (\S+=)N\b", first.stderr)
    assert advice, first.stderr
    second = subprocess.run([*base, f"{advice.group(1)}1"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert second.returncode == 0, second.stderr
    assert "held-out loss" in second.stdout
