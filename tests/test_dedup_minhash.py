"""MinHash LSH dedup end to end in Beam: planted near-duplicates with a known Jaccard similarity."""
from __future__ import annotations

import random

import pytest

from tests.planted import VOCAB, make_doc, mutate
from tests.test_dedup_paragraph import run_dedup
from transforms.dedup.config import DedupConfig
from transforms.dedup.minhash import MinHashConfig, shingle_set

MH = MinHashConfig()


def jaccard(a: str, b: str) -> float:
    sa, sb = shingle_set(a, MH), shingle_set(b, MH)
    return len(sa & sb) / len(sa | sb)


def planted_pairs(n_pairs: int, *, seed: int):
    """Each pair: an original and a later copy with some words replaced (a word changes up to 5 shingles: 1.5%
    of words gives Jaccard ~0.86, 5% ~0.6); half the pairs are close, half far; pairs share nothing."""
    rng, docs, pairs = random.Random(seed), [], []
    for i in range(n_pairs):
        words = [rng.choice(VOCAB) for _ in range(rng.randint(150, 400))]
        copy = mutate(words, rng, rng.uniform(0.0, 0.025) if i % 2 else rng.uniform(0.025, 0.2))
        a, b = make_doc(2 * i, " ".join(words), hour=i), make_doc(2 * i + 1, " ".join(copy), hour=10_000 + i)
        docs += [b, a]
        pairs.append((a, b, jaccard(a.text, b.text)))
    return docs, pairs


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    docs, pairs = planted_pairs(300, seed=11)
    rows, rejected, _ = run_dedup(docs, tmp_path_factory.mktemp("mh"), DedupConfig(exact=False, minhash=MH))
    return pairs, {r[0] for r in rows}, rejected


@pytest.mark.slow
def test_recall_at_least_90_percent_for_jaccard_0_85_and_up(outcome):
    pairs, kept, _ = outcome
    close = [(a, b) for a, b, j in pairs if j >= 0.85]
    assert len(close) >= 30
    assert all(a.id in kept for a, _ in close), "the earlier copy is the one kept"
    recall = sum(b.id not in kept for _, b in close) / len(close)
    assert recall >= 0.9


@pytest.mark.slow
def test_nothing_removed_below_jaccard_0_6_to_its_kept_twin(outcome):
    pairs, kept, rejected = outcome
    removed = {r[0] for r in rejected}
    assert removed and all(r[1:] == ("dedup_minhash", "minhash.near_duplicate") for r in rejected)
    below = [(b.id, round(j, 3)) for a, b, j in pairs if b.id in removed and j < 0.6]
    assert not below
    assert sum(j < 0.6 for *_, j in pairs) >= 100  # plenty of dissimilar pairs were at risk
    assert all(a.id in kept for a, _, _ in pairs)  # no original is ever dropped: pairs share no shingle


@pytest.mark.slow
def test_same_clusters_with_one_and_two_workers_and_any_input_order(tmp_path):
    docs, _ = planted_pairs(80, seed=5)
    cfg = DedupConfig(exact=True, minhash=MH)
    one = run_dedup(docs, tmp_path / "one", cfg)[:2]
    again = run_dedup(docs[::-1], tmp_path / "again", cfg)[:2]
    two = run_dedup(docs, tmp_path / "two", cfg, "--direct_num_workers=2", "--direct_running_mode=multi_processing")[:2]
    assert one == again == two and one[1]


@pytest.mark.slow
def test_a_chain_of_page_versions_collapses_to_the_oldest(tmp_path):
    rng = random.Random(3)
    words = [rng.choice(VOCAB) for _ in range(300)]
    versions = []
    for i in range(12):  # each version edits 1% of the previous one (Jaccard ~0.9): far apart at the ends
        versions.append(make_doc(i, " ".join(words), hour=i))
        words = mutate(words, rng, 0.01)
    assert jaccard(versions[0].text, versions[-1].text) < 0.6  # only the chain joins the ends
    rows, rejected, _ = run_dedup(versions[::-1], tmp_path, DedupConfig(exact=False, minhash=MH, minhash_verify=0.0))
    assert [r[0] for r in rows] == [versions[0].id] and len(rejected) == 11
