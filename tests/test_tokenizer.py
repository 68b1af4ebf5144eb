"""transforms.tokenizer: byte-level BPE that round-trips any text, honours its vocabulary, and fails clearly."""
from __future__ import annotations

import gzip
import hashlib
import json
import random
import sysconfig
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from transforms.tokenizer import (
    PAD, TokenizerError, eos_id, iter_text_batches, load_tokenizer, main, tokenizer_sha256, train_tokenizer,
)

STDLIB = Path(sysconfig.get_paths()["stdlib"])
UNICODE = ["naïve café — “quotes” ½ ∑ ∫ ≠", "日本語のテキスト、中文文本。한국어 텍스트", "Ελληνικά кириллица עִברִית العربية",
           "emoji 🎉👩‍👩‍👧 flags 🇯🇵 skin 👍🏽", "e\u0301 combining, zero\u200bwidth, bidi \u202eevil\u202c",
           "tabs\tand\r\nCRLF\x00NUL\x7f\x1b[31m", "   leading and trailing   ", "<|endoftext|> literal <|pad|>"]


def stdlib_texts(n: int = 60) -> list[str]:
    """Real text: the first 20 kB of the first n stdlib modules (code, docstrings, comments)."""
    return [p.read_text(encoding="utf-8", errors="replace")[:20_000] for p in sorted(STDLIB.glob("*.py"))[:n]]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(stdlib_texts() + UNICODE * 3, 1000)


def random_text(rng: random.Random) -> str:
    """Code points from every plane (no surrogates: not encodable text), or random bytes decoded with replacement."""
    if rng.random() < 0.3:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200))).decode("utf-8", errors="replace")
    ranges = [(0, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    out = []
    for _ in range(rng.randint(0, 80)):
        lo, hi = rng.choice(ranges)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def test_round_trips_any_text_exactly(tok):
    rng = random.Random(0)
    texts = UNICODE + [random_text(rng) for _ in range(300)] + ["", " ", "\n\n", "a" * 5000]
    for text in texts:
        ids = tok.encode(text).ids
        assert tok.decode(ids, skip_special_tokens=False) == text, repr(text)
    assert None not in {tok.id_to_token(i) for t in texts for i in tok.encode(t).ids}  # nothing unknown


def test_vocab_size_is_honoured_and_specials_come_first(tok):
    assert tok.get_vocab_size() == 1000
    assert eos_id(tok) == 0 and tok.token_to_id(PAD) == 1
    small = train_tokenizer(["tiny corpus"] * 3, 5000)
    assert 258 <= small.get_vocab_size() < 5000  # every byte and both specials, and no more merges than exist
    with pytest.raises(TokenizerError, match="use at least 258"):
        train_tokenizer(["x"], 100)


def test_training_is_deterministic():
    texts = stdlib_texts(10)
    assert train_tokenizer(texts, 600).to_str() == train_tokenizer(texts, 600).to_str()


def test_eos_missing_names_the_fix_and_an_override_works(tok):
    other = train_tokenizer(["some text here"] * 3, 300, special_tokens=("<eos>",))
    with pytest.raises(TokenizerError, match="python -m transforms.tokenizer train.*eos_token"):
        eos_id(other)
    assert eos_id(other, "<eos>") == 0
    assert eos_id(tok, PAD) == 1


def test_save_load_and_sha256(tok, tmp_path):
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    again = load_tokenizer(path)
    assert again.to_str() == tok.to_str() and again.encode(UNICODE[1]).ids == tok.encode(UNICODE[1]).ids
    assert tokenizer_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_or_unreadable_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(TokenizerError, match="cannot read it.*python -m transforms.tokenizer train"):
        load_tokenizer(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="not a tokenizers JSON file"):
        load_tokenizer(tmp_path / "bad.json")


def write_inputs(folder: Path) -> list[str]:
    """A Parquet shard, a JSONL file and a gzipped JSONL file, with skips planted (empty, whitespace, non-string)."""
    texts = stdlib_texts(30)
    pq.write_table(pa.table({"id": list(range(20)), "text": texts[:20]}), folder / "a.parquet", row_group_size=7)
    lines = [json.dumps({"text": t}) for t in texts[20:25]] + [json.dumps({"text": "  "}), json.dumps({"text": 5}),
                                                                "{broken", "", '{"text": "lone \\ud800"}']
    (folder / "b.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with gzip.open(folder / "c.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps({"text": t}) for t in texts[25:30]) + "\n")
    return texts


def test_text_batches_stream_every_text_and_count_skips(tmp_path):
    texts = write_inputs(tmp_path)
    skipped: dict[str, int] = {}
    paths = [str(tmp_path / n) for n in ("a.parquet", "b.jsonl", "c.jsonl.gz")]
    got = [t for batch in iter_text_batches(paths, text_column="text", skipped=skipped) for t in batch]
    assert got == texts and skipped == {"empty": 1, "missing_text": 2, "not_unicode": 1}


def test_cli_trains_from_parquet_and_jsonl(tmp_path, capsys):
    write_inputs(tmp_path)
    out = tmp_path / "tok" / "tokenizer.json"
    code = main(["train", "--input", str(tmp_path / "*.parquet"), "--input", f"{tmp_path}/b.jsonl,{tmp_path}/*.gz",
                 "--vocab_size", "700", "--max_documents", "27", "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "documents: 27 from 3 file(s)" in printed and f"output: {out}" in printed
    assert "vocab size: 700" in printed and "seconds:" in printed and "chars:" in printed
    assert load_tokenizer(out).get_vocab_size() == 700
    assert main(["encode", "--tokenizer", str(out), "héllo"]) == 0
    assert json.loads(capsys.readouterr().out)["round_trip"] is True


def test_cli_errors_are_one_line_with_exit_2(tmp_path, capsys):
    write_inputs(tmp_path)
    assert main(["train", "--input", str(tmp_path / "*.parquet"), "--text_column", "body",
                 "--output", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert "has no column 'body'; its columns: id, text (pass --text_column)" in err
    assert main(["train", "--input", str(tmp_path / "none-*.parquet"), "--output", str(tmp_path / "t.json")]) == 2
    assert "matched no files" in capsys.readouterr().err
    assert main(["train", "--input", str(tmp_path / "b.jsonl"), "--text_column", "body",
                 "--output", str(tmp_path / "t.json")]) == 2
    assert "no text in 1 file(s)" in capsys.readouterr().err and not (tmp_path / "t.json").exists()


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for flag in ("--input", "--text_column", "--vocab_size", "--min_frequency", "--output", "--max_documents",
                 "--max_chars"):
        assert flag in printed


def test_cli_reads_a_folder_with_its_subfolders_and_skips_hidden_names(tmp_path, capsys):
    folder = tmp_path / "shards"
    (folder / "2024" / "05").mkdir(parents=True)
    texts = write_inputs(folder / "2024" / "05")
    (folder / ".partial.jsonl").write_text('{"text": "a half-copied file"}\n{"te', encoding="utf-8")
    (folder / "_tmp").mkdir()
    (folder / "_tmp" / "x.parquet").write_bytes(b"not parquet")  # would fail the footer check if it were read
    code = main(["train", "--input", f"{folder}/", "--vocab_size", "400", "--output", str(tmp_path / "t.json")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"documents: {len(texts)} from 3 file(s)" in captured.out
    assert "is a folder: reading all 3 files under it, subfolders included" in captured.err


def test_a_cut_or_corrupt_compressed_input_is_a_one_line_error_naming_the_file(tmp_path, capsys):
    data = "".join(json.dumps({"text": t}) + "\n" for t in stdlib_texts(20)).encode()
    gz = gzip.compress(data, mtime=0)
    zst = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    crc = bytearray(gz)
    crc[-8] ^= 1  # the CRC-32 fails (RFC 1952 section 2.3.1)
    for name, content, reason in (("cut.jsonl.gz", gz[:len(gz) // 2], "truncated_gzip"),
                                  ("crc.jsonl.gz", bytes(crc), "corrupt_gzip"),
                                  ("cut.jsonl.zst", zst[:-3], "truncated_zstd")):
        (tmp_path / name).write_bytes(content)
        code = main(["train", "--input", str(tmp_path / name), "--vocab_size", "400",
                     "--output", str(tmp_path / "t.json")])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"error: --input {tmp_path / name}: {reason}: " in err and "copy it again" in err
        assert not (tmp_path / "t.json").exists()
