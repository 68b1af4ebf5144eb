"""Byte-level BPE tokenizers: train one offline from our Parquet/JSONL text shards, load it, find its end token.

python -m transforms.tokenizer train --input 'output/werp/documents/*.parquet' --vocab_size 32768 \\
    --output output/tokenizer.json
python -m transforms.tokenizer encode --tokenizer output/tokenizer.json "some text"

Byte-level (GPT-2's scheme): the 256 byte symbols are the initial alphabet, so every text encodes, nothing is
unknown, and decode(encode(x)) == x. `<|endoftext|>` ends each document in a token shard (pipelines.tokenize).
Pure: tokenizers and pyarrow only, no torch, no Beam.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pyarrow.parquet as pq
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from transforms.io.compressed import damage_of, open_decompressed
from transforms.io.inputs import is_visible, parquet_fix, parquet_problem

EOS = "<|endoftext|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = (EOS, PAD)
BATCH_ROWS = 1024  # Parquet rows (and JSONL lines) materialised at a time while streaming
JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst")
MISSING_TEXT, EMPTY, NOT_UNICODE = "missing_text", "empty", "not_unicode"


class TokenizerError(ValueError):
    """A tokenizer or tokenizer input that cannot be used; the message says what to do."""


def train_tokenizer(texts: Iterable[str] | Iterable[list[str]], vocab_size: int, *,
                    special_tokens: Sequence[str] = SPECIAL_TOKENS, min_frequency: int = 2) -> Tokenizer:
    """A byte-level BPE of at most `vocab_size` tokens (fewer if the text has fewer merges), specials first."""
    floor = 256 + len(special_tokens)
    if vocab_size < floor:
        raise TokenizerError(f"vocab_size ({vocab_size}) < 256 byte symbols + {len(special_tokens)} special tokens; "
                             f"use at least {floor}")
    tok = Tokenizer(models.BPE())  # no unk_token: with the full byte alphabet no symbol is unknown
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return tok


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A tokenizer.json from disk; a missing or unreadable file names the command that makes one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TokenizerError(f"tokenizer {path}: cannot read it ({err}); train one with python -m transforms.tokenizer "
                             f"train --input 'DOCS/*.parquet' --output {path}") from None
    return tokenizer_from_json(text, where=str(path))


def tokenizer_from_json(text: str, *, where: str = "tokenizer") -> Tokenizer:
    """A tokenizer from its JSON text (what a Beam driver ships to its workers)."""
    try:
        return Tokenizer.from_str(text)
    except Exception as err:  # pylint: disable=broad-except  # tokenizers raises a bare Exception for any bad JSON
        raise TokenizerError(f"{where}: not a tokenizers JSON file ({err}); train one with python -m training."
                             "tokenizer train") from None


def eos_id(tok: Tokenizer, eos_token: str = EOS) -> int:
    """The id of the end-of-document token."""
    token_id = tok.token_to_id(eos_token)
    if token_id is None:
        raise TokenizerError(f"tokenizer has no {eos_token!r} token; retrain it with python -m transforms.tokenizer "
                             "train (it adds <|endoftext|>) or name the tokenizer's own end token as eos_token")
    return token_id


def tokenizer_sha256(path: str | Path) -> str:
    """The file's SHA-256: token shards record it, so a reader never mixes shards of two tokenizers."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def expand_globs(patterns: Sequence[str]) -> list[str]:
    """Every file matched by the globs, in order; a glob that matches nothing is an error. A folder means every
    file under it, subfolders included, except names starting with '.' or '_' (as pipelines.jobs reads folders)."""
    files = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            under = sorted(p for p in glob.glob(os.path.join(pattern, "**"), recursive=True) if os.path.isfile(p))
            matched = [p for p in under if is_visible(os.path.relpath(p, pattern))]
            print(f"--input {pattern} is a folder: reading all {len(matched)} files under it, subfolders included",
                  file=sys.stderr)
        else:
            matched = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        if not matched:
            raise TokenizerError(f"--input {pattern!r} matched no files; check the path or glob")
        files += matched
    return files


def check_parquet(paths: Sequence[str]) -> None:
    """Every Parquet input has a readable footer (metadata only), so a truncated copy fails before training."""
    for path in paths:
        if path.endswith(".parquet") and (problem := parquet_problem(path)) is not None:
            raise TokenizerError(parquet_fix("--input", path, problem))


def check_train_args(args: argparse.Namespace) -> None:
    """Flag ranges and the output path, before any text is read; errors name the flag."""
    floor = 256 + len(SPECIAL_TOKENS)
    for flag, value, least in (("vocab_size", args.vocab_size, floor), ("min_frequency", args.min_frequency, 0),
                               ("max_documents", args.max_documents, 1), ("max_chars", args.max_chars, 1)):
        if value is not None and value < least:
            raise TokenizerError(f"--{flag} ({value}) must be >= {least}")
    out = Path(args.output)
    if out.is_dir():
        raise TokenizerError(f"--output {out} is a folder; pass the tokenizer's file path, e.g. {out}/tokenizer.json")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".refinery-probe-"):
            pass
    except OSError as err:
        raise TokenizerError(f"--output {out}: cannot write there ({err.strerror or err}: {err.filename or out}); "
                             "pass a path you can write to") from None


def iter_text_batches(paths: Sequence[str], *, text_column: str, skipped: dict[str, int]) -> Iterator[list[str]]:
    """Lists of non-empty texts from Parquet or JSONL files, BATCH_ROWS at a time; skips counted in `skipped`."""
    for path in paths:
        if path.endswith(".parquet"):
            batches = _parquet_batches(path, text_column)
        elif path.endswith(JSONL_SUFFIXES):
            batches = _jsonl_batches(path, text_column)
        else:
            raise TokenizerError(f"{path}: unknown input type; give .parquet or JSONL ({', '.join(JSONL_SUFFIXES)})")
        for values in batches:
            texts = []
            for value in values:
                reason = skip_reason(value)
                if reason:
                    skipped[reason] = skipped.get(reason, 0) + 1
                else:
                    texts.append(value)
            if texts:
                yield texts


def skip_reason(value) -> str | None:
    """Why a record's text cannot be trained on, or None."""
    if not isinstance(value, str):
        return MISSING_TEXT
    if not value.strip():
        return EMPTY
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON "\ud800" escape: tokenizers refuses the whole batch
        return NOT_UNICODE
    return None


def _parquet_batches(path: str, text_column: str) -> Iterator[list]:
    shard = pq.ParquetFile(path)
    if text_column not in shard.schema_arrow.names:
        raise TokenizerError(f"{path} has no column {text_column!r}; its columns: "
                             f"{', '.join(shard.schema_arrow.names)} (pass --text_column)")
    for batch in shard.iter_batches(columns=[text_column], batch_size=BATCH_ROWS):
        yield batch.column(0).to_pylist()


def _jsonl_batches(path: str, text_column: str) -> Iterator[list]:
    """A cut or corrupt .gz/.zst stops training with one line naming the file: a sample that silently lacks
    a shard's tail is worse than no tokenizer (the same rule as check_parquet for a cut Parquet file)."""
    with open(path, "rb") as fh:
        raw = open_decompressed(fh, path)
        text, batch = io.TextIOWrapper(raw, encoding="utf-8", errors="replace"), []
        for line in text:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            batch.append(record.get(text_column) if isinstance(record, dict) else None)
            if len(batch) >= BATCH_ROWS:
                yield batch
                batch = []
        if (damage := damage_of(raw)) is not None:
            raise TokenizerError(f"--input {path}: {damage[0]}: {damage[1]}; it is cut short or corrupt: copy it "
                                 "again, or leave it out of --input")
        if batch:
            yield batch


def limited(batches: Iterable[list[str]], *, max_documents: int | None, max_chars: int | None,
            totals: dict[str, int]) -> Iterator[list[str]]:
    """The batches until either limit is reached; documents and chars passed on are tallied in `totals`."""
    for texts in batches:
        if max_documents is not None:
            texts = texts[: max(0, max_documents - totals["documents"])]
        if max_chars is not None:
            kept, chars = [], totals["chars"]
            for t in texts:
                if chars >= max_chars:
                    break
                kept.append(t)
                chars += len(t)
            texts = kept
        if not texts:
            return
        totals["documents"] += len(texts)
        totals["chars"] += sum(map(len, texts))
        yield texts


def train_command(args: argparse.Namespace) -> int:
    check_train_args(args)
    paths = expand_globs([g.strip() for v in args.input for g in v.split(",") if g.strip()])
    check_parquet(paths)
    skipped: dict[str, int] = {}
    totals = {"documents": 0, "chars": 0}
    started = time.monotonic()
    batches = limited(iter_text_batches(paths, text_column=args.text_column, skipped=skipped),
                      max_documents=args.max_documents, max_chars=args.max_chars, totals=totals)
    tok = train_tokenizer(batches, args.vocab_size, min_frequency=args.min_frequency)
    if totals["documents"] == 0:
        raise TokenizerError(f"no text in {len(paths)} file(s) (skipped: {skipped or 'none'}); check --input and "
                             f"--text_column {args.text_column!r}")
    out = Path(args.output)
    tmp = out.with_name(f".{out.name}.tmp")
    tok.save(str(tmp))
    tmp.replace(out)
    print(f"documents: {totals['documents']:,} from {len(paths)} file(s)  skipped: {skipped or 'none'}\n"
          f"chars: {totals['chars']:,}\nvocab size: {tok.get_vocab_size():,} (asked {args.vocab_size:,}); "
          f"{EOS} = {eos_id(tok)}\nseconds: {time.monotonic() - started:.1f}\n"
          f"output: {out}  sha256: {tokenizer_sha256(out)}")
    return 0


def encode_command(args: argparse.Namespace) -> int:
    tok = load_tokenizer(args.tokenizer)
    enc = tok.encode(args.text)
    print(json.dumps({"ids": enc.ids, "tokens": enc.tokens, "count": len(enc.ids),
                      "round_trip": tok.decode(enc.ids, skip_special_tokens=False) == args.text}, ensure_ascii=False))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m transforms.tokenizer", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="Train a byte-level BPE tokenizer from text shards.")
    train.add_argument("--input", action="append", required=True,
                       help="Parquet or JSONL (.jsonl, .jsonl.gz, .jsonl.zst) file glob; repeat the flag or separate "
                       "globs with commas. Any pipeline's output works: <output>/documents/part-*.parquet.")
    train.add_argument("--text_column", default="text", help="Column (Parquet) or key (JSONL) holding the text. "
                       "Default: text (werp, swallowcode and swallowmath all write it).")
    train.add_argument("--vocab_size", type=int, default=32768, help="Largest vocabulary, specials and the 256 byte "
                       "symbols included (default 32768); a small corpus may yield fewer.")
    train.add_argument("--min_frequency", type=int, default=2, help="A pair must occur this often to be merged "
                       "(default 2).")
    train.add_argument("--output", default="output/tokenizer.json", help="Where to write tokenizer.json "
                       "(default output/tokenizer.json, where configs/tokenize/*.yaml look).")
    train.add_argument("--max_documents", type=int, default=None, help="Stop after this many documents "
                       "(default: all). Memory grows with distinct words, not documents, so this bounds time.")
    train.add_argument("--max_chars", type=int, default=None, help="Stop once this many characters are read "
                       "(default: all); e.g. 2000000000 for a 2 GB sample.")
    enc = sub.add_parser("encode", help="Print the ids and tokens of a text (a debugging aid).")
    enc.add_argument("--tokenizer", required=True, help="tokenizer.json path.")
    enc.add_argument("text", help="The text to encode.")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return train_command(args) if args.command == "train" else encode_command(args)
    except TokenizerError as err:
        print(f"transforms.tokenizer: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
