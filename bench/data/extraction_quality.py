"""Extraction quality (token P/R/F1 against gold text) and speed (docs/s on one core) of our four extractors.

Also measures what the sandbox adds per document and how fast py3langid classifies the extracted texts.

    .venv/bin/python -m bench.data.extraction_quality [--data ../shared/data/extraction] [--repeats 3]

Datasets (all under --data): scrapinghub-aeb (ground-truth.json articleBody), cleaneval/dev and dragnet
(GoldStandard/*.txt), trafilatura-eval (evaldata.json: snippets that must / must not appear). Scores are
bag-of-words overlaps on lowercase \\w+ tokens, computed per document and averaged over documents; an empty
extraction scores P = R = F1 = 0. trafilatura runs twice: with favor_precision (as werp and FineWeb run it) and in
its default mode. `lines` was trained on folds 1-3 (scripts/train_extractor.py), so its all-pages row is partly
in-sample; the held-out table scores fold 0 only, which no weight or setting was fitted or chosen on.
"""
from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPO
from transforms.extract import EXTRACTORS, ExtractConfig, TrafilaturaConfig, extract_text
from transforms.extract_sandbox import SandboxedExtractor
from transforms.langid import LangIdConfig, load_identifier

def variants() -> dict[str, ExtractConfig]:
    """The tables' columns and each one's config; built on demand, so scripts.train_extractor imports this module
    with stale weights."""
    return {"justext": ExtractConfig(extractor="justext"), "trafilatura": ExtractConfig(extractor="trafilatura"),
            "trafilatura default": ExtractConfig(extractor="trafilatura",
                                                 trafilatura=TrafilaturaConfig(favor_precision=False)),
            "resiliparse": ExtractConfig(extractor="resiliparse"), "lines": ExtractConfig(extractor="lines")}
DRAGNET_COMMENTS = "!@#$%^&*()  COMMENTS"  # dragnet gold files put reader comments after this line
_TOKEN_RE = re.compile(r"\w+")
_CLEANEVAL_MARKUP = re.compile(r"^\s*<[phl]>", re.MULTILINE)
_ENCODING_ATTR = re.compile(r'encoding="([^"]+)"')


@dataclass(frozen=True, slots=True)
class Page:
    dataset: str
    name: str
    html: str
    gold: str = ""  # gold main text, for token scores
    with_snippets: tuple[str, ...] = ()  # trafilatura-eval: must appear
    without_snippets: tuple[str, ...] = ()  # trafilatura-eval: must not appear


def decode(raw: bytes, encoding: str | None = None) -> str:
    """The declared encoding when known, else UTF-8, else cp1252 (the old-web default)."""
    for enc in filter(None, (encoding, "utf-8")):
        try:
            return raw.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("cp1252", "replace")


def load_scrapinghub(root: Path) -> list[Page]:
    truth = json.loads((root / "ground-truth.json").read_text())
    return [Page("scrapinghub-aeb", k, decode(gzip.open(root / "html" / f"{k}.html.gz").read()), v["articleBody"])
            for k, v in sorted(truth.items())]


def load_cleaneval(root: Path) -> list[Page]:
    pages = []
    for gold_path in sorted((root / "GoldStandard").glob("*.txt"), key=lambda p: int(p.stem)):
        raw = (root / "input" / f"{gold_path.stem}.html").read_bytes()
        wrapper, _, body = raw.partition(b"\n")  # first line is a <text id=... encoding=...> wrapper
        enc = _ENCODING_ATTR.search(wrapper.decode("ascii", "replace"))
        html = decode(body, enc.group(1) if enc else None)
        gold = decode(gold_path.read_bytes(), enc.group(1) if enc else None).split("\n", 1)[1]  # drop "URL: ..."
        pages.append(Page("cleaneval", gold_path.stem, html, _CLEANEVAL_MARKUP.sub("", gold)))
    return pages


def load_dragnet(root: Path) -> list[Page]:
    return [Page("dragnet", g.stem, decode((root / "input" / f"{g.stem}.html").read_bytes()),
                 decode(g.read_bytes()).split(DRAGNET_COMMENTS)[0])  # main content only: our extractors skip comments
            for g in sorted((root / "GoldStandard").glob("*.txt"))]


def load_trafilatura_eval(root: Path) -> list[Page]:
    data = json.loads((root / "evaldata.json").read_text())
    return [Page("trafilatura-eval", v["file"], decode((root / "eval" / v["file"]).read_bytes()),
                 with_snippets=tuple(v["with"]), without_snippets=tuple(v["without"]))
            for _, v in sorted(data.items())]


def load_pages(data: Path) -> list[Page]:
    loaders = {"scrapinghub-aeb": load_scrapinghub, "cleaneval/dev": load_cleaneval, "dragnet": load_dragnet,
               "trafilatura-eval": load_trafilatura_eval}
    missing = [name for name in loaders if not (data / name).is_dir()]
    if missing:
        sys.exit(f"missing dataset folder(s) {missing} under {data}; pass --data <path to shared/data/extraction>")
    return [page for name, load in loaders.items() for page in load(data / name)]


HELD_OUT_FOLD = 0  # pages in this fold are never trained or tuned on (scripts/train_extractor.py)


def fold(page: Page, folds: int = 4) -> int:
    """A page's fold, stable across runs and machines: sha1 of dataset/name, so each source splits alike."""
    return int(hashlib.sha1(f"{page.dataset}/{page.name}".encode()).hexdigest(), 16) % folds


def token_scores(gold: str, text: str) -> tuple[float, float, float]:
    """Multiset precision, recall and F1 of lowercase word tokens."""
    g = collections.Counter(_TOKEN_RE.findall(gold.lower()))
    t = collections.Counter(_TOKEN_RE.findall(text.lower()))
    overlap = sum((g & t).values())
    if not overlap:
        return 0.0, 0.0, 0.0
    p, r = overlap / sum(t.values()), overlap / sum(g.values())
    return p, r, 2 * p * r / (p + r)


def snippet_scores(page: Page, text: str) -> tuple[float, float]:
    """Fraction of "with" snippets found and of "without" snippets absent (white space collapsed)."""
    flat = " ".join(text.split())
    found = [" ".join(s.split()) in flat for s in page.with_snippets]
    absent = [" ".join(s.split()) not in flat for s in page.without_snippets]
    return sum(found) / max(1, len(found)), sum(absent) / max(1, len(absent))


def cpu_passes(fn, passes: int, *, child_pid: int | None = None) -> float:
    """Median CPU seconds (this process plus `child_pid`) of `passes` runs of fn().

    CPU time, not wall time: the 2-core machine is shared, and CPU time on a pinned core is what an
    uncontended core would spend."""
    def cpu() -> float:
        return time.process_time() + (0.0 if child_pid is None else child_cpu_s(child_pid))

    times = []
    for _ in range(passes):
        start = cpu()
        fn()
        times.append(cpu() - start)
    return statistics.median(times)


def child_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc (clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quality_table(pages: list[Page], outputs: dict[str, list[str]], *, held_out: bool = False) -> list[str]:
    """Mean P / R / F1 per source, a column per extractor in `outputs`; `held_out`: fold 0 only, no snippet row."""
    rows = ["| dataset | docs | " + " | ".join(f"{e} P / R / F1" for e in outputs) + " |",
            "|---|---|" + "---|" * len(outputs)]
    chosen = [i for i, p in enumerate(pages) if not held_out or fold(p) == HELD_OUT_FOLD]
    datasets = list(dict.fromkeys(p.dataset for p in pages if not p.with_snippets)) + ["overall (token gold)"]
    for ds in datasets:
        idx = [i for i in chosen if not pages[i].with_snippets and pages[i].gold
               and (ds.startswith("overall") or pages[i].dataset == ds)]
        cells = []
        for e in outputs:
            scores = [token_scores(pages[i].gold, outputs[e][i]) for i in idx]
            p, r, f = (statistics.fmean(s[k] for s in scores) for k in range(3))
            empty = sum(not outputs[e][i] for i in idx)
            cells.append(f"{p:.3f} / {r:.3f} / **{f:.3f}**" + (f" ({empty} empty)" if empty else ""))
        rows.append(f"| {ds} | {len(idx)} | " + " | ".join(cells) + " |")
    if held_out:
        return rows
    idx = [i for i, p in enumerate(pages) if p.with_snippets]
    cells = []
    for e in outputs:
        found, absent = zip(*(snippet_scores(pages[i], outputs[e][i]) for i in idx))
        empty = sum(not outputs[e][i] for i in idx)
        cells.append(f"with found {statistics.fmean(found):.3f}, without absent {statistics.fmean(absent):.3f}"
                     + (f" ({empty} empty)" if empty else ""))
    rows.append(f"| trafilatura-eval (snippets) | {len(idx)} | " + " | ".join(cells) + " |")
    return rows


def speed_rows(pages: list[Page], passes: int) -> list[str]:
    """docs/s and HTML MB/s per extractor, in-process, median of passes."""
    htmls = [p.html for p in pages]
    mb = sum(len(h.encode("utf-8", "replace")) for h in htmls) / 1e6
    rows = ["| extractor | docs/s/core | MB HTML/s/core | ms/page | time / resiliparse's |", "|---|---|---|---|---|"]
    seconds = {}
    for e, cfg in variants().items():
        extract_text(htmls[0], cfg)  # imports and one-time tables outside the timing
        seconds[e] = cpu_passes(lambda: [extract_text(h, cfg) for h in htmls], passes)
    for e, s in seconds.items():
        rows.append(f"| {e} | {len(htmls) / s:.1f} | {mb / s:.2f} | {s / len(htmls) * 1e3:.2f} | "
                    f"{s / seconds['resiliparse']:.2f}x |")
    return rows


def sandbox_rows(pages: list[Page], passes: int) -> list[str]:
    """Per-document cost of the sandbox (IPC, context switches) over in-process extraction."""
    htmls = [p.html for p in pages]
    rows = ["| extractor | in-process CPU ms/doc | sandbox CPU ms/doc (parent + child) | CPU overhead ms/doc "
            "| wall overhead ms/doc, median of paired docs |", "|---|---|---|---|---|"]
    for e in EXTRACTORS:
        cfg = ExtractConfig(extractor=e, timeout_s=60, max_docs_per_child=10**6)
        inproc = cpu_passes(lambda: [extract_text(h, cfg) for h in htmls], passes) / len(htmls) * 1e3
        with SandboxedExtractor(cfg) as sandbox:
            sandbox.extract(htmls[0])  # child started and warm
            boxed = cpu_passes(lambda: [sandbox.extract(h) for h in htmls], passes, child_pid=sandbox.pid)
            boxed = boxed / len(htmls) * 1e3
            paired = []
            for h in htmls * passes:  # alternate the two on the same page so load bursts hit both alike
                t0 = time.perf_counter()
                extract_text(h, cfg)
                t1 = time.perf_counter()
                sandbox.extract(h)
                paired.append((time.perf_counter() - t1) - (t1 - t0))
        rows.append(f"| {e} | {inproc:.2f} | {boxed:.2f} | {boxed - inproc:+.2f} | "
                    f"{statistics.median(paired) * 1e3:+.2f} |")
    cfg = ExtractConfig(extractor="resiliparse", timeout_s=60, max_docs_per_child=1)
    with SandboxedExtractor(cfg) as sandbox:
        sandbox.extract(htmls[0])
        waits = []
        for _ in range(20):
            start = time.perf_counter()
            sandbox.extract("<p>x</p>")
            waits.append(time.perf_counter() - start)
    rows.append(f"\nChild replaced before every page (max_docs_per_child=1): {statistics.median(waits) * 1e3:.1f} ms "
                "wall per tiny page, median of 20")
    return rows


def langid_rows(texts: list[str], passes: int) -> list[str]:
    """py3langid docs/s by max_chars, and how often the truncated text gets the full text's language."""
    texts = [t for t in texts if t.strip()]
    full = load_identifier(LangIdConfig(max_chars=None))
    reference = [full.predict(t)[0] for t in texts]
    lengths = sorted(len(t) for t in texts)
    rows = [f"{len(texts)} non-empty texts, median {lengths[len(lengths) // 2]} chars, "
            f"mean {statistics.fmean(lengths):.0f} chars\n",
            "| max_chars | docs/s/core | same language as full text |", "|---|---|---|"]
    for max_chars in (None, 2000, 1000, 500, 200):
        ident = load_identifier(LangIdConfig(max_chars=max_chars))
        seconds = cpu_passes(lambda: [ident.predict(t) for t in texts], passes)
        agree = statistics.fmean(ident.predict(t)[0] == ref for t, ref in zip(texts, reference))
        rows.append(f"| {max_chars or 'whole text'} | {len(texts) / seconds:,.0f} | {agree:.3f} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_data = REPO.parent / "shared" / "data" / "extraction"
    parser.add_argument("--data", type=Path, default=default_data, help="folder holding the four datasets")
    parser.add_argument("--repeats", type=int, default=3, help="timing passes; the median is reported")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {0})  # one core; sandbox children inherit it
    pages = load_pages(args.data)
    outputs = {e: [extract_text(p.html, cfg) for p in pages] for e, cfg in variants().items()}
    print(f"Command: .venv/bin/python -m bench.data.extraction_quality --data {args.data} --repeats {args.repeats}")
    print(f"{len(pages)} pages, CPU core 0 only, Python {sys.version.split()[0]}\n")
    print("All pages (lines: folds 1-3 are its training pages):\n")
    print("\n".join(quality_table(pages, outputs)), end="\n\n")
    print(f"Held out: fold {HELD_OUT_FOLD} only, never trained or tuned on:\n")
    print("\n".join(quality_table(pages, outputs, held_out=True)), end="\n\n")
    print("\n".join(speed_rows(pages, args.repeats)), end="\n\n")
    print("\n".join(sandbox_rows(pages, args.repeats)), end="\n\n")
    print("py3langid on the trafilatura outputs:\n")
    print("\n".join(langid_rows(outputs["trafilatura"], args.repeats)))


if __name__ == "__main__":
    main()
