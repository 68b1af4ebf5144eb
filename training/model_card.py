"""The model card (README.md) of a Hugging Face export: what the model learnt from, how, how well, by what command.

Hugging Face reads the YAML front matter (library_name, tags, and model-index with the held-out metrics); people
read the body. Everything comes from the run folder (config.yaml, metrics.jsonl, commands.jsonl) and the token
shards its config names (pipelines.tokenize's manifest.json and the shards' own footers), never typed by hand; a
piece that cannot be found is said to be missing rather than guessed.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.config import load_yaml
from core.shards import ShardError
from training.data.splits import resolve_splits
from training.rundir import read_commands

TAGS = ["refinery", "llama", "causal-lm", "pretraining"]


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """What the card reports about one exported checkpoint, gathered from its run folder and data."""

    step: int
    """The exported checkpoint's optimizer step."""
    tokens: int | None
    """Training tokens seen up to that step."""
    seq_len: int
    """The trained sequence length (tokens per row)."""
    params: int
    """Parameters of the exported model."""
    config: dict[str, Any] | None = None
    """The run's resolved config (config.yaml); None when the run folder was not found."""
    held_out: dict[str, Any] | None = None
    """The last evaluation at or before `step` in metrics.jsonl (step, eval_loss, eval_ppl, eval_tokens)."""
    commands: list[dict[str, Any]] = field(default_factory=list)
    """The invocations that made the run (commands.jsonl), oldest first."""
    manifest: dict[str, Any] | None = None
    """pipelines.tokenize's manifest.json of the shards, when there is one."""
    shards: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """split -> (shard file, tokens) for the shards the run read (train, and the held-out ones)."""
    missing: list[str] = field(default_factory=list)
    """What could not be found, one phrase each."""


def run_folder(checkpoint: Path) -> Path | None:
    """The run a checkpoint belongs to: <run>/checkpoints/step-N (or <run>/step-N) with config.yaml or metrics.jsonl."""
    return next((p for p in (checkpoint.parent.parent, checkpoint.parent)
                 if (p / "config.yaml").is_file() or (p / "metrics.jsonl").is_file()), None)


def last_eval(metrics: Path, *, step: int) -> dict[str, Any] | None:
    """The last held-out evaluation at or before `step` in a metrics.jsonl (torn lines skipped); None if none."""
    found = None
    for line in metrics.read_text(encoding="utf-8").splitlines() if metrics.is_file() else []:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "eval_loss" in record and record.get("step", 0) <= step:
            found = {k: record.get(k) for k in ("step", "eval_loss", "eval_ppl", "eval_tokens")}
    return found


def data_record(data: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, list[tuple[str, int]]], list[str]]:
    """(manifest, shards per split, what is missing) for a config's data section, as the run resolved its shards."""
    path = Path(data.get("path", ""))
    manifest, missing = None, []
    for candidate in (path / "manifest.json", path.parent / "manifest.json"):
        if candidate.is_file():
            try:
                manifest = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                missing.append(f"the tokenize manifest {candidate} is unreadable ({err})")
            break
    else:
        missing.append(f"no tokenize manifest.json beside {path}")
    try:
        splits = resolve_splits(path, valid_path=data.get("valid_path"), holdout_shards=data.get("holdout_shards"))
    except (ShardError, ValueError) as err:
        return manifest, {}, [*missing, f"the token shards are not readable now ({err})"]
    shards = {split: [(Path(s.path).name, s.rows * s.meta.seq_len) for s in infos]
              for split, infos in (("train", splits.train), ("held-out", splits.valid))}
    return manifest, shards, missing


def read_run(checkpoint: Path, *, meta: dict[str, Any], seq_len: int, params: int) -> RunRecord:
    """Everything the card says about `checkpoint` (whose verified meta.json is `meta`)."""
    step = int(meta.get("step") or 0)
    run = run_folder(checkpoint)
    if run is None:
        return RunRecord(step=step, tokens=meta.get("tokens"), seq_len=seq_len, params=params,
                         missing=[f"no run folder (config.yaml, metrics.jsonl) above {checkpoint}"])
    config = load_yaml(run / "config.yaml") if (run / "config.yaml").is_file() else None
    manifest, shards, missing = data_record(config.get("data", {})) if config else (None, {}, [f"{run}/config.yaml"])
    return RunRecord(step=step, tokens=meta.get("tokens"), seq_len=seq_len, params=params, config=config,
                     held_out=last_eval(run / "metrics.jsonl", step=step), commands=read_commands(run),
                     manifest=manifest, shards=shards, missing=missing)


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def front_matter(record: RunRecord) -> dict[str, Any]:
    """Hugging Face's model-card metadata: library, tags and, when evaluated, the held-out results (model-index)."""
    config = record.config or {}
    trainer = config.get("trainer")
    front: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "text-generation",
                             "tags": TAGS + ([f"trainer-{trainer}"] if trainer else [])}
    ev = record.held_out
    if ev and finite(ev.get("eval_loss")):
        data = config.get("data", {})
        front["model-index"] = [{"name": config.get("name", "model"), "results": [{
            "task": {"type": "text-generation", "name": "Causal language modeling"},
            "dataset": {"name": "held-out token shards", "type": data.get("valid_path") or f"{data.get('path')}/valid"},
            "metrics": [{"type": "loss", "name": "held-out loss (nats/token)", "value": ev["eval_loss"]},
                        {"type": "perplexity", "name": "held-out perplexity", "value": ev["eval_ppl"]}]}]}]
    return front


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(f"{c:,}" if isinstance(c, int) else str(c) for c in row) + " |" for row in rows)]


def data_lines(record: RunRecord) -> list[str]:
    """The data section: the tokenize manifest (sources and mixture, splits) and the shards the run read."""
    lines, m = ["## Training data", ""], record.manifest
    if m:
        lines += [f"Token shards from `pipelines.tokenize` (recipe `{m.get('config')}`, tokenizer sha256 "
                  f"`{m.get('tokenizer_sha256')}`, vocabulary {m.get('vocab_size')}, {m.get('seq_len')} tokens per "
                  "row).", ""]
        sources = m.get("sources") or {}
        if sources:
            lines += ["Mixture (tokens per source, target and realised weights):", ""]
            lines += table(["source", "documents", "tokens taken", "target weight", "realised weight", "repeats"],
                           [[n, s.get("documents"), s.get("tokens_taken"), s.get("target_weight"),
                             s.get("realised_weight"), s.get("realised_repeats")] for n, s in sources.items()]) + [""]
        splits = m.get("splits") or {}
        if splits:
            lines += table(["split", "shards", "documents", "tokens"],
                           [[n, s.get("shards"), s.get("documents"), s.get("tokens")] for n, s in splits.items()])
            lines.append("")
    for split, shards in record.shards.items():
        lines += [f"{split.capitalize()} shards the run read ({sum(t for _, t in shards):,} tokens):", ""]
        lines += table(["shard", "tokens"], [[name, tokens] for name, tokens in shards]) + [""]
    return lines


def command_lines(record: RunRecord) -> list[str]:
    """How the run was made: each recorded invocation, in order."""
    if not record.commands:
        return ["## How it was made", "", "No command recorded in the run's commands.jsonl (a run started from Python, "
                "or before training.pretrain recorded its commands).", ""]
    lines = ["## How it was made", ""]
    for i, c in enumerate(record.commands):
        how = "started" if i == 0 else f"resumed at step {c.get('step')}"
        ranks = c.get("ranks") or 1
        lines += [f"{how.capitalize()}{f' on {ranks} ranks (torchrun)' if ranks > 1 else ''}:", "",
                  "```bash", c["command"], "```", ""]
    return lines


def card(record: RunRecord, *, out: str, tokenizer: bool) -> str:
    """README.md: the YAML front matter, then what the model is, its held-out score, data, config and command."""
    config, ev = record.config or {}, record.held_out
    tokens = f"{record.tokens:,} tokens" if record.tokens is not None else "an unrecorded number of tokens"
    lines = [f"# {config.get('name', 'model')}", "",
             f"A {record.params / 1e6:.2f}M-parameter Llama-style decoder (`LlamaForCausalLM`) pretrained from scratch "
             f"with Refinery's `{config.get('trainer', 'unknown')}` trainer: checkpoint of step {record.step}, "
             f"{tokens}, sequence length {record.seq_len}.", "", "## Evaluation", ""]
    if ev and finite(ev.get("eval_loss")):
        lines += [f"Held-out loss {ev['eval_loss']:.4f} nats/token, perplexity {ev['eval_ppl']:.2f}, at step "
                  f"{ev['step']} over {ev.get('eval_tokens') or 0:,} held-out tokens.", ""]
    else:
        lines += ["No finite held-out evaluation at or before this step in metrics.jsonl." if ev is not None else
                  "No held-out evaluation at or before this step in metrics.jsonl.", ""]
    lines += data_lines(record)
    lines += ["## Training config", "", "As resolved (config.yaml of the run):", "", "```yaml",
              yaml.safe_dump(config, sort_keys=False).rstrip() if config else "# not found", "```", ""]
    lines += command_lines(record)
    lines += ["## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
              f"model = AutoModelForCausalLM.from_pretrained({out!r})",
              f"tokenizer = AutoTokenizer.from_pretrained({out!r})" if tokenizer else
              "# no tokenizer was exported: pass training.export --tokenizer the one the shards were made with",
              "```", ""]
    if record.missing:
        lines += ["## Missing from this card", "", *(f"- {m}" for m in record.missing), ""]
    front = yaml.safe_dump(front_matter(record), sort_keys=False)
    return f"---\n{front}---\n\n" + "\n".join(lines)
