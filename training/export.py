"""Export a checkpoint as a Hugging Face `LlamaForCausalLM` folder (config, safetensors, tokenizer, model card).

python -m training.export --run output/train/tiny --out output/hf/tiny
python -m training.export --run output/train/tiny/checkpoints/step-00000300 --tokenizer tok.json --out hf/

The layout maps one to one (our RoPE is Hugging Face's rotate-half form), so export is a renaming; the
logits of the exported model match ours (tests/training/test_export.py). README.md is the model card
(training/model_card.py): the data, the resolved config, the held-out loss and perplexity of the run's last
evaluation up to the checkpoint, and the command that made the run. The tokenizer's model_max_length is the trained
sequence length.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from core.config import ConfigError, load_yaml
from training.checkpoint import CheckpointError, load_model_weights, resolve, verified_meta
from training.model import Llama, ModelConfig, param_count
from training.model_card import card, read_run
from training.rundir import check_output

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def hf_name(name: str) -> str:
    """Our parameter name -> the Hugging Face Llama name."""
    if name == "embed.weight":
        return "model.embed_tokens.weight"
    if name == "norm.weight":
        return "model.norm.weight"
    if name == "head.weight":
        return "lm_head.weight"
    parts = name.split(".")  # layers.<i>.<module>...
    if parts[0] != "layers":
        raise KeyError(f"no Hugging Face name for parameter {name!r}")
    rest = ".".join(parts[2:])
    rest = (rest.replace("attn_norm.", "input_layernorm.").replace("mlp_norm.", "post_attention_layernorm.")
            .replace("attn.", "self_attn."))
    return f"model.layers.{parts[1]}.{rest}"


def hf_config(cfg: ModelConfig, *, eos_id: int | None, pad_id: int | None, dtype: torch.dtype) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.hidden_dim,
                       num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                       num_key_value_heads=cfg.kv_heads, head_dim=cfg.head_dim, hidden_act="silu",
                       max_position_embeddings=cfg.max_seq_len, rms_norm_eps=cfg.norm_eps,
                       rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
                       tie_word_embeddings=cfg.tie_embeddings, attention_bias=False, mlp_bias=False,
                       bos_token_id=None, eos_token_id=eos_id, pad_token_id=pad_id,
                       initializer_range=cfg.init_std, dtype=dtype, architectures=["LlamaForCausalLM"])


def to_hf(model: Llama, *, eos_id: int | None = None, pad_id: int | None = None,
          dtype: torch.dtype = torch.float32) -> Any:
    """A transformers LlamaForCausalLM holding our weights."""
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM(hf_config(model.cfg, eos_id=eos_id, pad_id=pad_id, dtype=dtype))
    ours = {hf_name(k): v for k, v in model.state_dict().items()
            if not (model.cfg.tie_embeddings and k == "head.weight")}
    missing, unexpected = hf.load_state_dict(ours, strict=False)
    missing = [k for k in missing if not (model.cfg.tie_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"weight names do not line up with LlamaForCausalLM: missing {missing}, "
                           f"unexpected {unexpected}")
    if model.cfg.tie_embeddings:
        hf.tie_weights()
    return hf.to(dtype)


def hf_tokenizer(path: str | Path, *, source: str = "--tokenizer") -> Any:
    """Our tokenizer.json wrapped as a transformers fast tokenizer with its special tokens named; a ConfigError
    naming `source` (where the path came from) if it is not one."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if not Path(path).is_file():
        raise ConfigError(f"{source} {path}: no such file; pass the tokenizer.json the shards were made with")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as err:  # noqa: BLE001 - tokenizers raises a plain Exception for every parse error
        raise ConfigError(f"{source} {path}: not a tokenizer.json ({err}); pass the one the shards were made "
                          "with") from None
    vocab = tok.get_vocab()
    specials = {k: v for k, v in (("eos_token", EOS_TOKEN), ("pad_token", PAD_TOKEN)) if v in vocab}
    return PreTrainedTokenizerFast(tokenizer_object=tok, **specials)


def find_tokenizer(run: Path) -> str | None:
    """The tokenizer a run trained with: its config's data.path -> the tokenize manifest's tokenizer."""
    for folder in (run, *run.parents):
        config = folder / "config.yaml"
        if config.is_file():
            data_path = Path(load_yaml(config).get("data", {}).get("path", ""))
            for manifest in (data_path / "manifest.json", data_path.parent / "manifest.json"):
                if manifest.is_file():
                    try:
                        return json.loads(manifest.read_text(encoding="utf-8")).get("tokenizer")
                    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as err:
                        raise ConfigError(f"{manifest}: unreadable ({err}); pass --tokenizer") from None
            return None
    return None


def export(run: str | Path, out: str | Path, *, tokenizer: str | None = None, dtype: str = "float32") -> Path:
    """Write the Hugging Face folder for the run's newest checkpoint (or the given checkpoint folder); refuses a
    checkpoint whose files do not match their recorded checksums or whose weights are not finite."""
    ckpt = resolve(run)
    meta = verified_meta(ckpt)
    try:
        cfg = ModelConfig(**meta["model"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{ckpt}: meta.json does not describe a model ({err}); pass another checkpoint") from None
    source = "--tokenizer" if tokenizer else "the tokenizer named by the run's tokenize manifest,"
    tokenizer = tokenizer or find_tokenizer(ckpt)
    tok = hf_tokenizer(tokenizer, source=source) if tokenizer else None
    out = check_output(str(out), flag="--out ", create=False)
    model = Llama(cfg)
    load_model_weights(ckpt, model, verified=meta)
    if tok is not None and len(tok) > cfg.vocab_size:
        raise CheckpointError(f"tokenizer {tokenizer} has {len(tok)} tokens but the model only {cfg.vocab_size}; "
                              "pass the tokenizer the shards were made with")
    seq_len = int(meta.get("data", {}).get("seq_len") or cfg.max_seq_len)  # the rows trained on, not RoPE's reach
    if tok is not None:
        tok.model_max_length = seq_len
    readme = card(read_run(ckpt, meta=meta, seq_len=seq_len, params=param_count(cfg)), out=str(out),
                  tokenizer=tok is not None)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    hf = to_hf(model, eos_id=tok.eos_token_id if tok is not None else None,
               pad_id=tok.pad_token_id if tok is not None else None, dtype=torch_dtype)
    try:
        hf.save_pretrained(out, safe_serialization=True)
        if tok is not None:
            tok.save_pretrained(out)
        (out / "README.md").write_text(readme, encoding="utf-8")
        (out / "refinery.json").write_text(json.dumps({"checkpoint": str(ckpt), "step": meta.get("step"),
                                                       "tokens": meta.get("tokens"), "tokenizer": tokenizer,
                                                       "seq_len": seq_len}, indent=2))
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot write the model there ({err.strerror or err}); choose a folder you "
                          "can write to") from None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True,
                        help="a run folder (its newest checkpoint is exported) or one checkpoints/step-N folder")
    parser.add_argument("--out", required=True, help="folder to write the Hugging Face model into")
    parser.add_argument("--tokenizer", default=None,
                        help="tokenizer.json to ship with the model (default: the one named in the tokenize "
                             "manifest of the run's data.path; none if that cannot be found)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="dtype of the saved weights (default float32, exactly what was trained)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        out = export(args.run, args.out, tokenizer=args.tokenizer, dtype=args.dtype)
    except (CheckpointError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote a LlamaForCausalLM folder to {out}; load it with "
          f"AutoModelForCausalLM.from_pretrained({str(out)!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
