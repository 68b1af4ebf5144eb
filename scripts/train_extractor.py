"""Train the `lines` extractor's weights on the gold-text pages of ../shared/data/extraction.

    .venv/bin/python -m scripts.train_extractor [--data ../shared/data/extraction] [--out configs/models/...]

Pages split into 4 folds by sha1(dataset/name) (bench.data.extraction_quality.fold); fold 0 is held out: the
shipped weights are fitted on folds 1-3 only, so the bench's held-out table scores pages the model never saw.
`--cv` also prints out-of-fold F1 on the training folds (each scored by weights fitted on the other two): how
the ridge strength and features were chosen without looking at fold 0.
A line's label: its word 3-grams (whole line when shorter) mostly occur in the gold text. Lines are weighted by
their word count over the page's, so each page counts once, as in the per-page F1 we report.
The logistic fits are Newton steps in numpy (33 features: no library needed, and the result is exact).
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

import numpy as np

from bench.common import REPO
from bench.data.extraction_quality import HELD_OUT_FOLD, Page, fold, load_pages, token_scores
from transforms.extract_lines import LineModel, PageLines, page_lines, stage2_inputs

WORD = re.compile(r"\w+")
L2 = 0.1  # ridge on the weights (not the bias); of 0.01, 0.1, 0.5, 3 the best out-of-fold F1 on folds 1-3
THRESHOLDS = np.round(np.arange(0.20, 0.71, 0.025), 3)


def gold_grams(gold: str) -> tuple[str, set[tuple[str, ...]]]:
    """The gold's tokens joined by spaces (for short lines) and its set of word 3-grams."""
    tokens = WORD.findall(gold.lower())
    return " " + " ".join(tokens) + " ", set(zip(tokens, tokens[1:], tokens[2:]))


def label_lines(texts: list[str], gold: str) -> np.ndarray:
    """1 where most of the line's word 3-grams (or, under 3 words, the line itself) are in the gold text."""
    joined, grams = gold_grams(gold)
    labels = np.zeros(len(texts))
    for i, text in enumerate(texts):
        tokens = WORD.findall(text.lower())
        if len(tokens) < 3:
            labels[i] = float(bool(tokens) and f" {' '.join(tokens)} " in joined)
        else:
            tri = list(zip(tokens, tokens[1:], tokens[2:]))
            labels[i] = float(sum(t in grams for t in tri) >= 0.5 * len(tri))
    return labels


def line_weights(texts: list[str]) -> np.ndarray:
    """Word count over the page's word count (a page of 10 lines weighs as much as one of 1000)."""
    w = np.array([len(WORD.findall(t)) + 1.0 for t in texts])
    return w / w.sum()


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = L2, iters: int = 30) -> np.ndarray:
    """Weighted L2-regularised logistic regression by Newton's method (bias column 0 unpenalised)."""
    beta = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -30, 30)))
        grad = x.T @ (w * (p - y)) + penalty * beta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def fit(pages: list[tuple[PageLines, np.ndarray, str]], l2: float = L2) -> LineModel:
    """Both stages on the pages, then the threshold that maximises the mean per-page F1 on them."""
    x = np.vstack([p.features for p, _, _ in pages])
    y = np.concatenate([labels for _, labels, _ in pages])
    w = np.concatenate([line_weights(p.texts) for p, _, _ in pages])
    stage1 = fit_logistic(x, y, w, l2)
    x2 = np.vstack([stage2_inputs(p.features, stage1) for p, _, _ in pages])
    stage2 = fit_logistic(x2, y, w, l2)
    best = max(THRESHOLDS, key=lambda t: mean_f1(LineModel(stage1, stage2, float(t)), pages))
    return LineModel(stage1, stage2, float(best))


def page_f1(model: LineModel, page: tuple[PageLines, np.ndarray, str]) -> float:
    """The bench's bag-of-words F1 of the model's kept lines against the page's gold text."""
    lines, _, gold = page
    return token_scores(gold, "\n".join(model.keep(lines)))[2]


def mean_f1(model: LineModel, pages: list[tuple[PageLines, np.ndarray, str]]) -> float:
    return statistics.fmean(page_f1(model, p) for p in pages)


def prepared(pages: list[Page]) -> list[tuple[PageLines, np.ndarray, str]]:
    out = []
    for page in pages:
        lines = page_lines(page.html)
        out.append((lines, label_lines(lines.texts, page.gold), page.gold))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "extraction",
                        help="folder holding the extraction datasets")
    parser.add_argument("--out", type=Path, default=REPO / "configs" / "models" / "extract_lines.json",
                        help="where the weights go (the `lines` extractor's default weights file)")
    parser.add_argument("--cv", action="store_true", help="also print out-of-fold F1 per source on folds 1-3")
    parser.add_argument("--l2", type=float, default=L2, help="ridge strength of both logistic stages")
    args = parser.parse_args(argv)
    pages = [p for p in load_pages(args.data) if p.gold]
    folds = [fold(p) for p in pages]
    data = prepared(pages)
    if args.cv:
        per_source: dict[str, list[float]] = {}
        for k in sorted(set(folds) - {HELD_OUT_FOLD}):
            model = fit([d for d, f in zip(data, folds) if f not in (k, HELD_OUT_FOLD)], args.l2)
            for page, d, f in zip(pages, data, folds):
                if f == k:
                    per_source.setdefault(page.dataset, []).append(page_f1(model, d))
        for source, scores in per_source.items():
            print(f"out-of-fold F1 {source}: {statistics.fmean(scores):.3f} ({len(scores)} pages)")
        print(f"out-of-fold F1 all: {statistics.fmean(s for v in per_source.values() for s in v):.3f}")
    train = [d for d, f in zip(data, folds) if f != HELD_OUT_FOLD]
    model = fit(train, args.l2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(model.to_json() + "\n", encoding="utf-8")
    print(f"trained on {len(train)} pages (folds != {HELD_OUT_FOLD}), threshold {model.threshold}, "
          f"train F1 {mean_f1(model, train):.3f} -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
