"""pipelines.tokenize end to end on FnApiRunner: shards decode back to the documents, the mixture meets its
target, splits are disjoint, the tail and the entropy are accounted for, and output does not depend on workers."""
from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
import sysconfig
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from core.config import ConfigError
from core.shards import inspect_shard, read_rows
from pipelines import tokenize, werp
from pipelines.jobs import JobError
from tests.conftest import REPO
from transforms.packing import (
    TokenizeConfig, SourceConfig, copies, load_tokenize_config, placement, plan_mixture, split_of, unigram_entropy,
)
from transforms.tokenizer import load_tokenizer, tokenizer_sha256, train_tokenizer

LOCAL = ["--runner=FnApiRunner"]
TWO_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
STDLIB = Path(sysconfig.get_paths()["stdlib"])
PLANTED_EOS = "A document that quotes the end token <|endoftext|> in its text must stay one document."


def assert_balanced(report: dict) -> None:
    """Nothing is lost silently: every stage's input is its output plus its counted drops. (Defined here, not
    imported from test_werp, which imports this module through tests/pipelines/runs.py.)"""
    for name, stage in report["stages"].items():
        assert stage["docs_in"] == stage["docs_out"] + sum(stage["dropped"].values()), name


def real_docs() -> list[str]:
    """~130 distinct real documents: stdlib module heads (code, prose in docstrings) and non-Latin scripts."""
    docs = [f"doc {i}: " + p.read_text(encoding="utf-8", errors="replace")[:1500]
            for i, p in enumerate(sorted(STDLIB.glob("*.py"))[:120])]
    return docs + [PLANTED_EOS, "日本語の文書。句読点と、ひらがな。", "Ελληνικά και emoji 🎉 mixed\twith tabs\r\n",
                   "e\u0301 combining marks and \u200b zero width"]


def planted_docs(tag: str, n: int, seed: int) -> list[str]:
    """n distinct short documents of stdlib words, tagged with their source."""
    words = (STDLIB / "argparse.py").read_text(encoding="utf-8").split()
    rng = random.Random(seed)
    return [f"{tag} {i} " + " ".join(rng.choices(words, k=rng.randint(10, 60))) for i in range(n)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Source files and a tokenizer trained on all of them."""
    root = tmp_path_factory.mktemp("tokenize")
    docs = real_docs()
    pq.write_table(pa.table({"text": docs[:60]}), root / "web-0.parquet", row_group_size=16)
    pq.write_table(pa.table({"text": docs[60:100], "id": list(range(40))}), root / "web-1.parquet")
    (root / "web-2.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in docs[100:]) + "\n", encoding="utf-8")
    mixture = {"web": planted_docs("WEB", 400, 1), "code": planted_docs("CODE", 150, 2),
               "math": planted_docs("MATH", 60, 3)}
    for name, texts in mixture.items():
        pq.write_table(pa.table({"body": texts}), root / f"{name}.parquet")
    tok = train_tokenizer(docs + [t for texts in mixture.values() for t in texts], 800)
    tok.save(str(root / "tokenizer.json"))
    return {"root": root, "docs": docs, "mixture": mixture, "tokenizer": str(root / "tokenizer.json")}


def write_config(path: Path, **fields) -> str:
    path.write_text(yaml.safe_dump(fields), encoding="utf-8")
    return str(path)


def single_config(corpus, path: Path, **over) -> str:
    root = corpus["root"]
    fields = dict(tokenizer=corpus["tokenizer"], seq_len=64, valid_fraction=0.2, row_group_rows=8,
                  sources=[{"name": "web", "paths": [str(root / "web-*.parquet"), str(root / "web-*.jsonl")]}])
    return write_config(path, **{**fields, **over})


def mixture_config(corpus, path: Path, **over) -> str:
    root = corpus["root"]
    sources = [{"name": n, "paths": [str(root / f"{n}.parquet")], "weight": w, "text_column": "body"}
               for n, w in (("web", 0.7), ("code", 0.2), ("math", 0.1))]
    fields = dict(tokenizer=corpus["tokenizer"], seq_len=32, valid_fraction=0.05, tokens_per_shard=4000,
                  max_repeats=3.0, seed=7, sources=sources)
    return write_config(path, **{**fields, **over})


def shard_rows(path: Path) -> np.ndarray:
    info = inspect_shard(path)
    groups = [read_rows(info, g) for g in range(len(info.row_group_rows))]
    return np.concatenate(groups) if groups else np.empty((0, info.meta.seq_len + 1), np.int32)


def read_output(out: Path) -> dict[str, np.ndarray]:
    """Every shard's rows by relative path."""
    return {f"{p.parent.name}/{p.name}": shard_rows(p) for p in sorted(out.glob("*/part-*.parquet"))}


def stream_of(rows: np.ndarray) -> np.ndarray:
    """The packed stream back from overlapping rows: row 0, then each next row without its first token."""
    return np.concatenate([rows[0], *(r[1:] for r in rows[1:])]) if len(rows) else np.empty(0, np.int32)


def complete_documents(stream: np.ndarray, eos: int) -> list[np.ndarray]:
    """Segments that end in eos; what follows the last eos is a document cut by the dropped tail."""
    ends = np.flatnonzero(stream == eos)
    return [stream[start:end] for start, end in zip(np.r_[0, ends[:-1] + 1], ends)]


@pytest.fixture(scope="module")
def single(corpus, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    out = tmp / "out"
    report = tokenize.run([*LOCAL, f"--config={single_config(corpus, tmp / 'c.yaml')}", f"--output={out}"])
    return out, report, json.loads((out / "manifest.json").read_text())


def test_rows_decode_back_to_the_documents_joined_by_eos(corpus, single):
    out, report, manifest = single
    tok = load_tokenizer(corpus["tokenizer"])
    tok.encode_special_tokens = True
    found, partial = [], 0
    for rows in read_output(out).values():
        stream = stream_of(rows)
        docs = complete_documents(stream, manifest["eos_id"])
        for d in docs:  # each document's tokens lie contiguously, exactly as the tokenizer encodes it alone
            found.append(tok.decode(d.tolist(), skip_special_tokens=False))
            assert d.tolist() == tok.encode(found[-1]).ids
        partial += len(stream) - sum(len(d) + 1 for d in docs)
    assert len(found) == len(set(found)) and set(found) <= set(corpus["docs"])
    missing = set(corpus["docs"]) - set(found)  # cut by a shard's end: partly in its last row, the rest dropped
    assert sum(len(tok.encode(d).ids) + 1 for d in missing) == partial + manifest["tail_tokens_dropped"]
    assert len(missing) <= 4 and PLANTED_EOS in found  # a literal "<|endoftext|>" is text, not a boundary
    assert report["stages"]["tokenize"]["docs_out"] == len(corpus["docs"])
    assert_balanced(report)


def test_every_token_is_in_a_row_or_counted_as_tail(corpus, single):
    out, report, manifest = single
    tok = load_tokenizer(corpus["tokenizer"])
    tok.encode_special_tokens = True
    expected = sum(len(tok.encode(d).ids) + 1 for d in corpus["docs"])
    shards = read_output(out)
    streamed = sum(len(stream_of(rows)) for rows in shards.values())
    tail = manifest["tail_tokens_dropped"]
    assert streamed + tail == expected and tail > 0
    pack = report["stages"]["pack"]["other"]
    assert pack["tail_tokens_dropped.train"] + pack.get("tail_tokens_dropped.valid", 0) == tail
    assert manifest["splits"]["train"]["rows"] == len(shards["train/part-00000-of-00001.parquet"])
    assert manifest["splits"]["train"]["tokens"] == manifest["splits"]["train"]["rows"] * 64


def test_valid_and_train_hold_different_documents(corpus, single):
    out, _, manifest = single
    tok = load_tokenizer(corpus["tokenizer"])
    by_split = {}
    for name, rows in read_output(out).items():
        docs = complete_documents(stream_of(rows), manifest["eos_id"])
        by_split.setdefault(name.split("/")[0], set()).update(tok.decode(d.tolist()) for d in docs)
    assert by_split["train"] and by_split["valid"] and not by_split["train"] & by_split["valid"]
    assert 0.08 < manifest["splits"]["valid"]["documents"] / len(corpus["docs"]) < 0.35  # valid_fraction 0.2


def test_manifest_describes_the_shards(corpus, single):
    out, report, manifest = single
    tok = load_tokenizer(corpus["tokenizer"])
    assert manifest["tokenizer_sha256"] == tokenizer_sha256(corpus["tokenizer"]) and manifest["seq_len"] == 64
    assert manifest["vocab_size"] == tok.get_vocab_size() == 800 and manifest["eos_id"] == 0
    for path in out.glob("*/part-*.parquet"):
        info = inspect_shard(path)
        assert info.meta.split == path.parent.name and info.meta.tokenizer_sha256 == manifest["tokenizer_sha256"]
        assert all(n <= 8 for n in info.row_group_rows)  # row_group_rows
    web = manifest["sources"]["web"]
    assert web["documents"] == len(corpus["docs"]) and web["tokens_taken"] == web["tokens_available"]
    assert web["repeats"] == 1.0 and web["target_weight"] == 1.0 == web["realised_weight"]
    assert report["mixture"]["web"]["realised_weight"] == 1.0
    assert json.loads((out / "stats.json").read_text())["stages"] == report["stages"]


def test_unigram_entropy_matches_numpy_on_the_train_shards(single):
    out, _, manifest = single
    shards = read_output(out)
    targets = np.concatenate([rows[:, 1:].ravel() for name, rows in shards.items() if name.startswith("train")])
    p = np.bincount(targets) / targets.size
    p = p[p > 0]
    nats = float(-(p * np.log(p)).sum())
    assert manifest["unigram_entropy"]["nats_per_token"] == pytest.approx(nats, rel=1e-12)
    assert manifest["unigram_entropy"]["bits_per_token"] == pytest.approx(nats / np.log(2), rel=1e-12)
    assert manifest["unigram_entropy"]["tokens_counted"] == targets.size


@pytest.fixture(scope="module")
def mixed(corpus, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mixed")
    config = mixture_config(corpus, tmp / "c.yaml")
    tokenize.run([*LOCAL, f"--config={config}", f"--output={tmp / 'out'}"])
    return tmp, config


def test_mixture_meets_its_target_weights(corpus, mixed):
    tmp, _ = mixed
    manifest = json.loads((tmp / "out" / "manifest.json").read_text())
    tok = load_tokenizer(corpus["tokenizer"])
    tokens = {"web": 0, "code": 0, "math": 0}
    for rows in read_output(tmp / "out").values():  # measured from the shards, not taken from the manifest
        for d in complete_documents(stream_of(rows), manifest["eos_id"]):
            tokens[tok.decode(d.tolist()).split(" ", 1)[0].lower()] += len(d) + 1
    total = sum(tokens.values())
    for name, target in (("web", 0.7), ("code", 0.2), ("math", 0.1)):
        assert tokens[name] / total == pytest.approx(target, abs=0.03), tokens
        assert manifest["sources"][name]["realised_weight"] == pytest.approx(tokens[name] / total, abs=0.01)
        assert manifest["sources"][name]["target_weight"] == pytest.approx(target)
    assert max(s["repeats"] for s in manifest["sources"].values()) == 3.0  # the scarcest source sets the total
    assert all(s["realised_repeats"] <= 3.0 for s in manifest["sources"].values())
    shards = sorted(p.name for p in (tmp / "out" / "train").glob("*.parquet"))
    n = manifest["splits"]["train"]["shards"]
    assert n > 1 and shards == [f"part-{i:05d}-of-{n:05d}.parquet" for i in range(n)]


def test_output_is_identical_across_runs_and_workers(mixed):
    tmp, config = mixed
    first = read_output(tmp / "out")
    first_manifest = json.loads((tmp / "out" / "manifest.json").read_text())
    tokenize.run([*LOCAL, f"--config={config}", f"--output={tmp / 'again'}"])
    tokenize.run([*LOCAL, *TWO_WORKERS, f"--config={config}", f"--output={tmp / 'two'}"])
    for other in ("again", "two"):
        shards = read_output(tmp / other)
        assert shards.keys() == first.keys()
        for name, rows in first.items():
            assert np.array_equal(shards[name], rows), (other, name)
        assert json.loads((tmp / other / "manifest.json").read_text()) == first_manifest


def test_more_repeats_than_allowed_is_a_clear_error_and_keeps_the_previous_output(corpus, tmp_path):
    out = tmp_path / "out"
    tokenize.run([*LOCAL, f"--config={mixture_config(corpus, tmp_path / 'ok.yaml')}", f"--output={out}"])
    before = {str(p.relative_to(out)): p.read_bytes() if p.is_file() else None for p in sorted(out.rglob("*"))}
    assert "manifest.json" in before and any(k.startswith("train/part-") for k in before)
    config = mixture_config(corpus, tmp_path / "c.yaml", total_tokens=200_000)
    with pytest.raises(JobError, match=r"source 'web' needs 3.44 epochs \(140,000 tokens = weight 0.700 x total_tokens "
                                       r"200,000, .* but max_repeats is 3.0; raise max_repeats, lower total_tokens"):
        tokenize.run([*LOCAL, f"--config={config}", f"--output={out}"])
    after = {str(p.relative_to(out)): p.read_bytes() if p.is_file() else None for p in sorted(out.rglob("*"))}
    assert after == before, "the failed run published nothing and left no staging folder behind"
    with pytest.raises(JobError):
        tokenize.run([*LOCAL, f"--config={config}", f"--output={tmp_path / 'new'}"])
    assert not (tmp_path / "new").exists(), "an output folder the failed run created is removed again"


def test_bad_records_are_counted_not_fatal(corpus, tmp_path):
    good = corpus["docs"][:20]
    pq.write_table(pa.table({"text": good}), tmp_path / "a-good.parquet")
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "b-empty.parquet")
    (tmp_path / "c-empty.jsonl").write_bytes(b"")
    lines = ['{"text": "   "}', '{"text": 5}', '{"body": "no text key"}', "{broken",
             '{"text": "lone \\ud800 surrogate"}']
    (tmp_path / "d-bad.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pq.write_table(pa.table({"body": ["wrong column"]}), tmp_path / "z-nocolumn.parquet")
    config = write_config(tmp_path / "c.yaml", tokenizer=corpus["tokenizer"], seq_len=16, sources=[
        {"name": "web", "paths": [str(tmp_path / "*.parquet"), str(tmp_path / "*.jsonl")]}])
    report = tokenize.run([*LOCAL, f"--config={config}", f"--output={tmp_path / 'out'}"])
    read, tok = report["stages"]["read"], report["stages"]["tokenize"]
    assert read["dropped"] == {"input.missing_text": 2, "input.bad_json": 1, "input.empty": 1}
    assert read["errors"] == {"input.bad_file": 1}
    assert tok["dropped"] == {"tokenize.not_unicode": 1} and tok["docs_out"] == 20
    assert_balanced(report)


def test_user_errors_name_the_fix(corpus, tmp_path):
    bad_column = mixture_config(corpus, tmp_path / "a.yaml")
    data = yaml.safe_load(Path(bad_column).read_text())
    data["sources"][0]["text_column"] = "text"
    with pytest.raises(JobError, match="source 'web': .*web.parquet has no column 'text'; its columns: body"):
        tokenize.run([*LOCAL, f"--config={write_config(tmp_path / 'b.yaml', **data)}", f"--output={tmp_path}/o"])
    with pytest.raises(JobError, match="cannot read it.*python -m transforms.tokenizer train"):
        tokenize.run([*LOCAL, f"--config={bad_column}", f"--tokenizer={tmp_path}/missing.json", f"--output={tmp_path}"])
    no_tokenizer = single_config(corpus, tmp_path / "c.yaml", tokenizer=None)
    with pytest.raises(JobError, match="no tokenizer; pass --tokenizer.*python -m transforms.tokenizer train"):
        tokenize.run([*LOCAL, f"--config={no_tokenizer}", f"--output={tmp_path}"])
    with pytest.raises(ConfigError, match="unknown key\\(s\\) 'seq_length'; did you mean 'seq_len'"):
        tokenize.run([*LOCAL, f"--config={single_config(corpus, tmp_path / 'd.yaml', seq_length=8)}"])
    with pytest.raises(ConfigError, match="with overrides seq_lenn=8: unknown key\\(s\\) 'seq_lenn'; did you mean "
                                          "'seq_len'"):  # the same from the command line, naming the override
        tokenize.run([*LOCAL, f"--config={single_config(corpus, tmp_path / 'f.yaml')}", "seq_lenn=8"])
    with pytest.raises(JobError, match="source 'input': '.*x\\*.parquet' matched no files; fix its paths"):
        tokenize.run([*LOCAL, f"--config={single_config(corpus, tmp_path / 'e.yaml')}",
                      f"--input={tmp_path}/x*.parquet"])


def test_command_line_errors_are_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipelines.tokenize", "--config=default", f"--output={tmp_path}",
                           f"--input={REPO}/pipelines/__init__.py", f"--tokenizer={tmp_path}/none.json"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("tokenize: error: tokenizer ")
    help_text = subprocess.run([sys.executable, "-m", "pipelines.tokenize", "--help"], cwd=REPO, capture_output=True,
                               text=True, timeout=120).stdout
    assert "--tokenizer" in help_text and "--seq_len" in help_text and "--config" in help_text


def test_shipped_configs_read_the_pipelines_default_outputs():
    default, mixture = load_tokenize_config("default").config, load_tokenize_config("mixture").config
    assert default.sources[0].paths == (f"{werp.DEFAULT_OUTPUT.removeprefix('./')}/documents/*.parquet",)
    assert mixture.weights == pytest.approx({"web": 0.7, "code": 0.2, "math": 0.1})
    assert default.tokenizer == mixture.tokenizer == "output/tokenizer.json"  # transforms.tokenizer's default --output


def test_plan_gives_each_source_its_weight_within_max_repeats():
    cfg = TokenizeConfig(sources=(SourceConfig(name="a", paths=("x",), weight=3), SourceConfig(name="b", paths=("y",))),
                         max_repeats=2.0)
    plan = plan_mixture({"a": 6000, "b": 500}, cfg)
    assert plan.rates == {"a": 0.5, "b": 2.0} and not plan.error  # b binds: 2 epochs
    assert sum(plan.targets.values()) == pytest.approx(4000) and plan.shards == {"train": 1, "valid": 1}
    fixed = plan_mixture({"a": 6000, "b": 500}, TokenizeConfig(sources=cfg.sources, total_tokens=8000))
    assert ("source 'b' needs 4.00 epochs (2,000 tokens = weight 0.250 x total_tokens 8,000, 500 available)"
            in fixed.error)
    assert "produced no tokens" in plan_mixture({"a": 10}, cfg).error


def test_draws_are_seeded_and_average_to_the_rate():
    keys = range(1, 20_001)
    assert sum(copies(k, 1.3, seed=0) for k in keys) / len(keys) == pytest.approx(1.3, abs=0.01)
    assert {copies(k, 2.0, seed=0) for k in keys} == {2}
    valid = [split_of(k, valid_fraction=0.1, seed=0) == "valid" for k in keys]
    assert sum(valid) / len(keys) == pytest.approx(0.1, abs=0.01)
    assert valid != [split_of(k, valid_fraction=0.1, seed=1) == "valid" for k in keys]
    assert all(0 <= placement(k, 0, shards=7, seed=0)[0] < 7 for k in keys)
    assert unigram_entropy(np.array([1, 1, 0, 0])) == pytest.approx((np.log(2), 1.0))


def test_a_cut_jsonl_gz_is_a_counted_error_and_its_whole_lines_are_tokenized(corpus, tmp_path):
    docs = corpus["docs"][:40]
    data = "".join(json.dumps({"text": d}) + "\n" for d in docs).encode()
    gz = gzip.compress(data, mtime=0)
    cut = gz[:len(gz) // 2]
    (tmp_path / "cut.jsonl.gz").write_bytes(cut)
    text = zlib.decompressobj(31).decompress(cut)  # zlib's own reading of the cut prefix
    whole_lines, torn = text.count(b"\n"), int(not text.endswith(b"\n"))
    config = write_config(tmp_path / "c.yaml", tokenizer=corpus["tokenizer"], seq_len=16, sources=[
        {"name": "web", "paths": [str(tmp_path / "cut.jsonl.gz")]}])
    report = tokenize.run([*LOCAL, f"--config={config}", f"--output={tmp_path / 'out'}"])
    read = report["stages"]["read"]
    assert 0 < whole_lines < len(docs)
    assert read["errors"] == {"input.truncated_gzip": 1} and read["dropped"] == ({"input.bad_json": 1} if torn else {})
    assert read["docs_out"] == whole_lines
    assert_balanced(report)


def test_a_small_input_on_the_default_runner_stays_in_this_process(corpus, tmp_path, caplog):
    """The corpus is a few hundred KiB, under the 8 MiB that makes a second local worker worth its ~2 s start: the
    default DirectRunner runs it in this process whatever the machine's cores (werp does the same)."""
    config = mixture_config(corpus, tmp_path / "c.yaml")
    with caplog.at_level("INFO"):
        tokenize.run(["--runner=DirectRunner", f"--config={config}", f"--output={tmp_path / 'out'}"])
    assert "local run: one worker, in this process" in caplog.text
