"""Synthetic corpora with planted duplicates (exact, near with a known overlap, paragraph-level), seeded."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from transforms.document import Document

START = datetime(2024, 1, 1)
VOCAB = [f"w{i}" for i in range(20000)]  # big enough that unplanted text shares no 13-gram or 5-gram


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(words))


def make_doc(i: int, text: str, *, hour: int) -> Document:
    """Dates grow with `hour`, so "earlier" is known to the test without the order key."""
    date = (START + timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Document(id=f"<urn:uuid:{i:08d}>", url=f"https://example.com/{i}", warc_date=date, text=text)


@dataclass
class Corpus:
    docs: list[Document] = field(default_factory=list)
    paragraph_copies: int = 0  # planted copied paragraphs
    doc_copies: int = 0  # planted whole-document copies


def paragraph_corpus(n_docs: int, *, seed: int = 0) -> Corpus:
    """Documents of 3-7 paragraphs; some copy earlier paragraphs exactly, some with a few words changed."""
    rng, out = random.Random(seed), Corpus()
    for i in range(n_docs):
        paras = [sentence(rng, rng.randint(8, 60)) for _ in range(rng.randint(3, 7))]
        if out.docs and rng.random() < 0.4:  # copy 1-2 paragraphs of an earlier document, maybe mutated
            source = rng.choice(out.docs).text.split("\n")
            for _ in range(rng.randint(1, 2)):
                para = rng.choice(source).split()
                if rng.random() < 0.3:
                    for _ in range(rng.randint(1, 4)):
                        para[rng.randrange(len(para))] = rng.choice(VOCAB)
                paras.insert(rng.randrange(len(paras) + 1), " ".join(para))
                out.paragraph_copies += 1
        if out.docs and rng.random() < 0.08:  # a near-whole copy of an earlier document
            paras = rng.choice(out.docs).text.split("\n") + [sentence(rng, 5)]
            out.doc_copies += 1
        out.docs.append(make_doc(i, "\n".join(paras), hour=i))
    return out


def mutate(words: list[str], rng: random.Random, fraction: float) -> list[str]:
    """A copy with `fraction` of its word positions replaced by fresh words."""
    out = list(words)
    for pos in rng.sample(range(len(out)), int(round(fraction * len(out)))):
        out[pos] = rng.choice(VOCAB)
    return out
