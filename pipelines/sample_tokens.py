"""Write tokenize's built-in sample deterministically: seeded English articles as JSONL text shards and a small
byte-level BPE trained on them, so the first run (configs/tokenize/sample.yaml) needs no download.

The articles come from the same prose generator as the sample crawl (pipelines/sample_text.py); the tokenizer is
transforms.tokenizer's, with a vocabulary small enough to ship (< 100 KB) and to show merges at work.
Run: python -m pipelines.sample_tokens [FOLDER]   (default: the packaged pipelines/data/)
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from pipelines.sample_code import write_jsonl
from pipelines.sample_text import SUBJECTS, english_paragraphs, headline
from transforms.tokenizer import train_tokenizer

DATA_DIR = Path(__file__).resolve().parent / "data"
TEXT_NAME, TOKENIZER_NAME = "sample_text.jsonl", "sample_tokenizer.json"
SAMPLE_TEXT_PATH, SAMPLE_TOKENIZER_PATH = DATA_DIR / TEXT_NAME, DATA_DIR / TOKENIZER_NAME
SEED = 18  # issue 18, which asked for the sample
ARTICLES = 48  # four per subject: enough for train and valid rows of 128 tokens at a 10% hold-out
VOCAB_SIZE = 1024  # 256 byte symbols, 2 specials and up to 766 merges


def sample_texts(articles: int = ARTICLES) -> list[str]:
    """Articles of 2-4 paragraphs under a headline, subjects in turn."""
    rng = random.Random(SEED)
    texts = []
    for n in range(articles):
        subject = SUBJECTS[n % len(SUBJECTS)]
        paragraphs = english_paragraphs(rng, subject, rng.randint(2, 4))
        texts.append("\n\n".join([headline(rng, subject), *paragraphs]))
    return texts


def write_sample(folder: Path) -> tuple[int, int]:
    """The text shard and the tokenizer trained on it -> (articles, vocabulary size)."""
    texts = sample_texts()
    write_jsonl(folder / TEXT_NAME, [{"text": t} for t in texts])
    tok = train_tokenizer(texts, VOCAB_SIZE)
    (folder / TOKENIZER_NAME).write_text(tok.to_str() + "\n", encoding="utf-8")
    return len(texts), tok.get_vocab_size()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.sample_tokens", description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default=str(DATA_DIR),
                        help=f"where to write {TEXT_NAME} and {TOKENIZER_NAME} (default: the packaged sample, "
                             "rebuilt bit for bit)")
    args = parser.parse_args(argv)
    articles, vocab = write_sample(Path(args.folder))
    print(f"wrote {articles} articles and a {vocab}-token tokenizer to {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
