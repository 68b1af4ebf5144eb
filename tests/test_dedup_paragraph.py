"""Paragraph n-gram dedup (BFF old-both): the parallel, exact computation agrees with a sequential BFF."""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from core.config import ConfigError, from_mapping
from tests.planted import make_doc, paragraph_corpus
from transforms.beam.dedup import Dedup
from transforms.beam.stages import REJECTED
from transforms.dedup.config import DedupConfig
from transforms.dedup.hashing import code_points
from transforms.dedup.order import order_key
from transforms.dedup.paragraph import (
    ParagraphDedupConfig, contained_counts, decide, occurrences, token_spans, tokenize,
)

CFG = ParagraphDedupConfig()


def bff_reference(docs, cfg: ParagraphDedupConfig = CFG) -> dict[str, set[int]]:
    """Sequential BFF old-both with an exact set instead of a Bloom filter: removed paragraph indices per doc."""
    seen: set[tuple[str, ...]] = set()
    out = {}
    for doc in sorted(docs, key=lambda d: order_key(d.id, d.warc_date)):
        paras, removed, total, hit = doc.text.split("\n"), set(), 0, 0
        for j, para in enumerate(paras):
            toks = tokenize(para)
            grams = [tuple(toks[i:i + cfg.ngram]) for i in range(len(toks) - cfg.ngram + 1)]
            if not grams:
                continue
            contained = sum(g in seen for g in grams)
            total, hit = total + len(grams), hit + contained
            if contained / len(grams) > cfg.paragraph_threshold:
                removed.add(j)  # old-both: a removed paragraph does not insert its n-grams
            else:
                seen.update(grams)
        out[doc.id] = set(range(len(paras))) if total and hit / total > cfg.document_threshold else removed
    return out


def parallel_decisions(docs, cfg: ParagraphDedupConfig = CFG):
    """The pure functions the Beam stage runs, on one machine: occurrences -> owners -> decisions."""
    keys = {order_key(d.id, d.warc_date): d for d in docs}
    hits = contained_counts(np.concatenate([occurrences(d.text, k, cfg.ngram) for k, d in keys.items()]))
    contained: dict[tuple, dict[int, int]] = {}
    for row in hits:
        per = contained.setdefault((int(row["date"]), int(row["digest"])), {})
        per[int(row["para"])] = per.get(int(row["para"]), 0) + int(row["count"])
    return {d.id: decide(d.text, contained.get(k, {}), cfg) for k, d in keys.items()}


def test_tokens_keep_case_and_punctuation_and_join_words_like_uax29():
    assert tokenize("Don't stop: 3,000 e.g. U.S. rules!") == ["Don't", "stop", ":", "3,000", "e.g", ".", "U.S", ".",
                                                                "rules", "!"]


def test_vectorised_tokens_match_the_reference_tokenizer():
    rng = __import__("random").Random(7)
    alphabet = list("ab9Z_ .,:'’-!?\u00e9\u4e2d\u0663\t\u00a0\n") + ["3,000", "e.g.", "U.S.", "don't", "a..b", ":x", "1,a"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        points = code_points(text)
        starts, ends = token_spans(points)
        got = [points[s:e].tobytes().decode("utf-32-le") for s, e in zip(starts, ends)]
        assert got == tokenize(text), repr(text)


def test_a_copied_paragraph_is_removed_from_the_later_document_only():
    first = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho"
    a = make_doc(1, f"{first}\nunique words of the first document that are long enough to count here ok fine", hour=1)
    b = make_doc(2, f"another paragraph only this second document has with many many tokens in it yes\n{first}", hour=2)
    got = parallel_decisions([b, a])
    assert got[a.id].removed == () and got[b.id].removed == (1,)
    assert got[b.id].text == b.text.split("\n")[0]


def test_a_paragraph_repeated_inside_one_document_is_removed_there_as_sequential_bff_does():
    """BFF inserts a paragraph's n-grams before it reads the next paragraph of the same document, so a later copy
    inside the document is contained by the earlier one: only the copy goes (paragraph 2), the document stays."""
    para = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho"
    other = "unique words of this document only that are long enough to count here ok fine and more"
    doc = make_doc(1, f"{para}\n{other}\n{para}", hour=1)
    assert bff_reference([doc]) == {doc.id: {2}}
    got = parallel_decisions([doc])[doc.id]
    assert got.removed == (2,) and not got.dropped and got.text == f"{para}\n{other}"


def threshold_pair(extra: int) -> list:
    """An earlier document whose one paragraph is 16 + extra words, and a later one with the same words and one
    more: 13-grams, so the later paragraph has 4 + extra + 1 windows of which 4 + extra are contained."""
    words = [f"w{i}" for i in range(16 + extra)]
    return [make_doc(1, " ".join(words), hour=1), make_doc(2, " ".join([*words, "zz"]), hour=2)]


@pytest.mark.parametrize("level", ["paragraph", "document"])
def test_thresholds_are_strict_at_four_of_five_ngrams(level):
    """BFF removes above the threshold: 4 of 5 contained n-grams (0.8) stay, 5 of 6 (0.83) go; sequential BFF
    (written out above) agrees. The other level's threshold is 1.0, so it never fires."""
    cfg = ParagraphDedupConfig(**{"paragraph_threshold": 1.0, "document_threshold": 1.0, f"{level}_threshold": 0.8})
    for extra, removed in ((0, False), (1, True)):
        earlier, later = threshold_pair(extra)
        got = parallel_decisions([earlier, later], cfg)[later.id]
        assert bff_reference([earlier, later], cfg)[later.id] == ({0} if removed else set())
        assert (got.dropped if level == "document" else got.removed == (0,)) is removed, (extra, got)


def test_short_paragraphs_have_no_ngrams_and_are_never_removed():
    short = "too short to have a thirteen gram"
    docs = [make_doc(i, f"{short}\n{short}", hour=i) for i in range(3)]
    assert all(d.removed == () and not d.dropped for d in parallel_decisions(docs).values())


def test_a_copied_document_is_dropped_and_the_earliest_copy_kept_whatever_the_input_order():
    text = "\n".join(" ".join(f"t{i}_{j}" for j in range(30)) for i in range(4))
    docs = [make_doc(i, text, hour=10 - i) for i in range(4)]  # doc 3 is the oldest
    got = parallel_decisions(docs[::-1])
    assert [d.id for d in docs if not got[d.id].dropped] == [docs[3].id]


def test_the_documented_deviation_ngrams_of_a_removed_paragraph_still_count():
    t = [f"t{i}" for i in range(30)]
    a = make_doc(1, " ".join(t), hour=1)
    b = make_doc(2, " ".join(t[:27] + ["x1", "x2", "x3"]), hour=2)  # 15 of 18 n-grams are a's: removed
    c = make_doc(3, " ".join(t[10:27] + ["x1", "x2", "x3"]), hour=3)  # 5 of 8 are a's, the other 3 only b's
    ours, ref = parallel_decisions([a, b, c]), bff_reference([a, b, c])
    assert ref[b.id] == {0} and ours[b.id].removed == (0,)
    assert ref[c.id] == set() and ours[c.id].removed == (0,)  # BFF never inserted b's n-grams; we count them


def test_agrees_with_sequential_bff_on_at_least_99_percent_of_paragraphs():
    corpus = paragraph_corpus(400, seed=3)
    ours, ref = parallel_decisions(corpus.docs), bff_reference(corpus.docs)
    total = agree = removed = 0
    for doc in corpus.docs:
        n = len(doc.text.split("\n"))
        mine = set(ours[doc.id].removed)
        total += n
        removed += len(ref[doc.id])
        agree += sum((j in mine) == (j in ref[doc.id]) for j in range(n))
        # every difference is the documented one: we may remove more (n-grams of removed paragraphs still count)
        assert ref[doc.id] <= mine or ours[doc.id].dropped, doc.id
    assert removed >= corpus.paragraph_copies * 0.5  # the planted copies are found
    assert agree / total >= 0.99


def run_dedup(docs, tmp_path, cfg: DedupConfig, *extra_args: str):
    rows, rejected = [], []
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner", *extra_args])) as p:
        out = p | beam.Create(docs, reshuffle=False) | Dedup(cfg, spill_prefix=str(tmp_path / "spill"), stat_names=(),
                                                             codec="zstd", emit_rejected=True)
        out["rows"] | "Rows" >> beam.Map(lambda r: (r["id"], r["text"], r["char_count"])) | "SaveRows" >> beam.io.WriteToText(
            str(tmp_path / "rows"))
        out[REJECTED] | "Rej" >> beam.Map(lambda r: (r.id, r.stage, r.reason)) | "SaveRej" >> beam.io.WriteToText(
            str(tmp_path / "rej"))
    import ast
    for name, into in (("rows", rows), ("rej", rejected)):
        for path in tmp_path.glob(f"{name}-*"):
            into.extend(ast.literal_eval(line) for line in path.read_text().splitlines())
    return sorted(rows), sorted(rejected), p.result


@pytest.mark.slow
def test_beam_stage_matches_the_pure_computation_and_counts_paragraphs(tmp_path):
    from apache_beam.metrics.metric import MetricsFilter
    corpus = paragraph_corpus(150, seed=5)
    expected = parallel_decisions(corpus.docs)
    rows, rejected, result = run_dedup(corpus.docs, tmp_path, DedupConfig(exact=False, paragraph=CFG, bucket_bits=4))
    assert rows == sorted((d, e.text, len(e.text)) for d, e in expected.items() if not e.dropped)
    assert rejected == sorted((d, "dedup_paragraph", "paragraph.duplicate_document")
                              for d, e in expected.items() if e.dropped)
    counters = {c.key.metric.name: c.committed for c in result.metrics().query(MetricsFilter())["counters"]}
    cut = sum(e.removed_paragraphs for e in expected.values() if not e.dropped)
    assert cut > 0 and counters["dedup_paragraph|edited|paragraphs_removed"] == cut
    assert counters["dedup_paragraph|docs_in"] == 150
    assert counters["dedup_paragraph|docs_out"] + counters["dedup_paragraph|dropped|paragraph.duplicate_document"] == 150
    chars_out = sum(len(e.text) for e in expected.values() if not e.dropped)
    assert counters["dedup_paragraph|chars_out"] == chars_out


@pytest.mark.slow
def test_same_result_with_one_and_two_workers_and_across_runs(tmp_path):
    docs = paragraph_corpus(120, seed=9).docs
    cfg = DedupConfig(exact=True, paragraph=CFG, bucket_bits=3)
    one = run_dedup(docs, tmp_path / "one", cfg)[:2]
    again = run_dedup(docs[::-1], tmp_path / "again", cfg)[:2]
    two = run_dedup(docs, tmp_path / "two", cfg, "--direct_num_workers=2", "--direct_running_mode=multi_processing")[:2]
    assert one == again == two


@pytest.mark.slow
def test_exchanging_ngrams_through_files_gives_the_same_result(tmp_path):
    docs = paragraph_corpus(120, seed=4).docs
    shuffled = run_dedup(docs, tmp_path / "shuffle", DedupConfig(exact=False, paragraph=CFG, ngram_exchange="shuffle"))
    files = run_dedup(docs, tmp_path / "files", DedupConfig(exact=False, paragraph=CFG, ngram_exchange="files"))
    assert shuffled[:2] == files[:2] and shuffled[1]
    assert list((tmp_path / "files" / "spill" / "ngrams").glob("p*/*.bin")), "the occurrences went through files"


def test_config_is_validated():
    with pytest.raises(ConfigError, match="paragraph_threshold"):
        from_mapping(DedupConfig, {"paragraph": {"paragraph_threshold": 1.5}}, where="dedup")
    with pytest.raises(ConfigError, match="order_by"):
        from_mapping(DedupConfig, {"order_by": "url"}, where="dedup")
    assert from_mapping(DedupConfig, {"paragraph": {}}, where="dedup").paragraph == CFG
