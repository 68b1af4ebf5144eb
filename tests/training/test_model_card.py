"""The model card's reading of a run folder: the right evaluation, and what it cannot find said rather than guessed."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from training.model_card import card, last_eval, read_run


def write_run(run: Path, records: list[str], *, data_path: str) -> Path:
    """A run folder by hand: config.yaml naming the data, metrics.jsonl of the given lines, one checkpoint folder."""
    (run / "checkpoints" / "step-00000003").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"name": "hand", "trainer": "baseline",
                                                     "data": {"path": data_path}}))
    (run / "metrics.jsonl").write_text("".join(line + "\n" for line in records))
    return run / "checkpoints" / "step-00000003"


def split_card(text: str) -> tuple[dict, str]:
    front, body = text[len("---\n"):].split("\n---\n", 1)
    return yaml.safe_load(front), body


def test_last_eval_is_the_newest_at_or_before_the_step_and_torn_lines_are_skipped(tmp_path):
    lines = ['{"step": 1, "loss": 4.0}', '{"step": 2, "eval_loss": 3.5, "eval_ppl": 33.1, "eval_tokens": 64}',
             '{"step": 4, "eval_loss": 3.0, "eval_ppl": 20.1, "eval_tokens": 64}', '{"step": 5, "eval_lo']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
    assert last_eval(tmp_path / "metrics.jsonl", step=3) == {"step": 2, "eval_loss": 3.5, "eval_ppl": 33.1,
                                                             "eval_tokens": 64}
    assert last_eval(tmp_path / "metrics.jsonl", step=9)["step"] == 4
    assert last_eval(tmp_path / "metrics.jsonl", step=1) is None and last_eval(tmp_path / "none", step=9) is None


def test_a_diverged_eval_and_missing_shards_are_said_not_guessed(tmp_path):
    """An eval written as null (non-finite) gives no model-index and says so; the shards gone since the run, and no
    tokenize manifest, each get a line under "Missing"; no command recorded is said too."""
    ckpt = write_run(tmp_path / "run", ['{"step": 2, "eval_loss": 3.5, "eval_ppl": 33.1, "eval_tokens": 64}',
                                        '{"step": 3, "eval_loss": null, "eval_ppl": null, "eval_tokens": 64}'],
                     data_path=str(tmp_path / "gone"))
    record = read_run(ckpt, meta={"step": 3, "tokens": 96}, seq_len=32, params=1000)
    front, body = split_card(card(record, out="hf", tokenizer=False))
    assert "model-index" not in front and front["tags"][-1] == "trainer-baseline"
    assert "No finite held-out evaluation at or before this step in metrics.jsonl." in body
    assert f"- no tokenize manifest.json beside {tmp_path / 'gone'}" in body
    assert f"- the token shards are not readable now ({tmp_path / 'gone'}: no such folder" in body
    assert "No command recorded" in body and "AutoTokenizer.from_pretrained" not in body
    assert "checkpoint of step 3, 96 tokens, sequence length 32" in body


def test_the_card_front_matter_is_the_model_index_hugging_face_reads(tmp_path):
    """model-index: one result, task text-generation, the held-out shards as dataset, loss and perplexity."""
    ckpt = write_run(tmp_path / "run", [json.dumps({"step": 3, "eval_loss": 2.5, "eval_ppl": 12.18, "eval_tokens": 8})],
                     data_path=str(tmp_path / "tokens"))
    front, _ = split_card(card(read_run(ckpt, meta={"step": 3}, seq_len=32, params=1000), out="hf", tokenizer=True))
    assert front["model-index"] == [{"name": "hand", "results": [{
        "task": {"type": "text-generation", "name": "Causal language modeling"},
        "dataset": {"name": "held-out token shards", "type": f"{tmp_path / 'tokens'}/valid"},
        "metrics": [{"type": "loss", "name": "held-out loss (nats/token)", "value": 2.5},
                    {"type": "perplexity", "name": "held-out perplexity", "value": 12.18}]}]}]
