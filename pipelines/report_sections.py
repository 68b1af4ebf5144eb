"""The run report's detailed sections: histograms before and after each stage, sample rejected documents per
reason with the failing value, and the job-specific ones (tokenize's mixture, swallowcode's pylint scores).
Each returns "" when the stats lack its data, so a stats.json from before these fields still makes a report."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipelines.report_data import MAX_TEXT_CHARS, Sample, Samples, drops_in_order
from pipelines.report_html import count, percent, slug, text
from pipelines.report_svg import hbar_chart, histogram_chart

Histogram = Mapping[str, Sequence[float]]
PAIR_SUFFIXES = ("_in", "_out")  # chars_in / chars_out: one chart, before and after the stage


def histogram_problem(h: object) -> str | None:
    """Why a histogram cannot be drawn (None: it can): n edges, ascending, need n+1 counts."""
    if not isinstance(h, Mapping) or not isinstance(h.get("edges"), list) or not isinstance(h.get("counts"), list):
        return "not {\"edges\": [...], \"counts\": [...]}"
    edges, counts = h["edges"], h["counts"]
    if any(isinstance(e, bool) or not isinstance(e, (int, float)) for e in edges):
        return "edges are not numbers"
    if len(counts) != len(edges) + 1:
        return f"{len(edges)} edges need {len(edges) + 1} counts, it has {len(counts)}"
    if any(b <= a for a, b in zip(edges, edges[1:])):
        return "edges are not ascending"
    if any(not isinstance(c, int) or c < 0 for c in counts):
        return "counts are not whole numbers >= 0"
    return None


def chart_groups(hists: Mapping[str, Histogram]) -> list[tuple[str, list[str]]]:
    """Histogram names grouped into charts: `x_in` with `x_out` (same edges) as before/after, others alone."""
    groups, used = [], set()
    for name in hists:
        if name in used:
            continue
        base = name[: -len(PAIR_SUFFIXES[0])] if name.endswith(PAIR_SUFFIXES[0]) else None
        partner = f"{base}{PAIR_SUFFIXES[1]}" if base else None
        if partner in hists and list(hists[partner]["edges"]) == list(hists[name]["edges"]):
            groups.append((f"{base} before and after", [name, partner]))
            used.update((name, partner))
        else:
            groups.append((name, [name]))
            used.add(name)
    return groups


def histograms(stages: Mapping[str, Mapping]) -> str:
    """Length and score distributions into and out of each stage (stats "histograms"), as bar charts."""
    blocks, skipped = [], []
    for stage, s in stages.items():
        raw = s.get("histograms") or {}
        good = {}
        for name, h in raw.items():
            problem = histogram_problem(h)
            if problem:
                skipped.append(f"{stage} {name}: {problem}")
            else:
                good[name] = h
        for title, names in chart_groups(good):
            if not any(sum(good[n]["counts"]) for n in names):
                skipped.append(f"{stage} {title}: no values")
                continue
            svg = histogram_chart(good[names[0]]["edges"], [(n, good[n]["counts"]) for n in names],
                                  title=f"{stage}: {title}")
            blocks.append(f"<figure data-stage=\"{text(stage)}\"><figcaption><b>{text(stage)}</b> {text(title)}"
                          f"</figcaption>{svg}</figure>")
    if not blocks and not skipped:
        return ""
    note = ("<p class=\"note skipped\">Not drawn: " + "; ".join(text(s) for s in skipped) + "</p>") if skipped else ""
    return ("<section id=\"histograms\"><h2>Histograms before and after each stage</h2><p class=\"note\">Fixed "
            "bins; the first counts values below the first edge, the last those at or above the last edge.</p>"
            + "<div class=\"charts\">" + "".join(blocks) + "</div>" + note + "</section>")


def sample_block(sample: Sample) -> str:
    """One rejected document: who and why on the left (the failing value in bold), its text on the right."""
    ev = sample.evidence
    if "evidence" in ev:  # the job's own sentence: "gopher_duplicate_line_fraction = 0.41 > 0.30"
        failing = f"<div><b data-field=\"evidence\">{text(ev['evidence'])}</b></div>"
    elif "statistic" in ev or "value" in ev:
        failing = (f"<div><b data-field=\"value\">{text(ev.get('statistic', 'value'))} = "
                   f"{text(ev.get('value', '?'))}</b></div>")
    else:
        failing = ""
    if "limit" in ev and "evidence" not in ev:
        failing += f"<div data-field=\"limit\">limit: {text(ev['limit'])}</div>"
    cut = (f"<div class=\"note\">{sample.chars:,} characters, the first {MAX_TEXT_CHARS:,} shown</div>"
           if sample.chars > MAX_TEXT_CHARS else f"<div class=\"note\">{sample.chars:,} characters</div>")
    body = f"<pre class=\"text\">{text(sample.text)}</pre>" if sample.text else "<p class=\"note\">(no text)</p>"
    return (f"<div class=\"sample\" data-stage=\"{text(sample.stage)}\" data-reason=\"{text(sample.reason)}\">"
            f"<div class=\"evidence\">{failing}<div>id: <code>{text(sample.id)}</code></div>"
            f"<div>url: <code>{text(sample.url)}</code></div>{cut}</div>{body}</div>")


def samples(stats: Mapping, found: Samples | None, *, prefix: str | None) -> str:
    """Up to N documents per drop reason, in funnel order; reasons found only in the files come last."""
    if found is None:
        return ""
    order = [(st, r, n) for st, r, n in drops_in_order(stats)]
    known = {(st, r) for st, r, _ in order}
    order += [(st, r, None) for st, r in found.by_reason if (st, r) not in known]
    blocks = []
    for stage, reason, n in order:
        docs = found.by_reason.get((stage, reason), [])
        if not docs:
            continue
        of = f"{len(docs)} of {n:,} dropped" if n is not None else f"{len(docs)} shown (not in stats.json)"
        blocks.append(f"<h3 id=\"{slug('samples', stage, reason)}\">{text(stage)} \u00b7 {text(reason)} "
                      f"<span class=\"note\">({of})</span></h3>" + "".join(sample_block(d) for d in docs))
    where = (f"{len(found.files)} file(s) under <code>{text(prefix)}</code>, {found.rows_read:,} rows read"
             if found.files else f"no rejected Parquet files under <code>{text(prefix)}</code>")
    return ("<section id=\"samples\"><h2>Sample rejected documents</h2><p class=\"note\">From " + where
            + "; text escaped and cut to the first " + f"{MAX_TEXT_CHARS:,} characters.</p>" + "".join(blocks)
            + "</section>")


def mixture(stats: Mapping) -> str:
    """tokenize: each source's target weight against the weight realised, and the tokens behind it."""
    mix = stats.get("mixture") or {}
    if not isinstance(mix, Mapping) or not mix:
        return ""
    fields = ("target_weight", "realised_weight", "tokens_available", "tokens_taken")
    rows = "".join(f"<tr class=\"mixture-row\" data-source=\"{text(name)}\"><td>{text(name)}</td>" + "".join(
        f"<td class=\"num\" data-field=\"{f}\">{text(m.get(f, ''))}</td>" for f in fields) + "</tr>"
        for name, m in mix.items())
    chart = hbar_chart([(n, (float(m.get("target_weight") or 0), float(m.get("realised_weight") or 0)))
                        for n, m in mix.items()], series=("target", "realised"), title="mixture weights",
                       fmt=lambda v: f"{v:.3f}")
    splits = stats.get("splits") or {}
    split_rows = "".join(f"<tr><td>{text(name)}</td>" + "".join(
        f"<td class=\"num\">{text(s.get(k, ''))}</td>" for k in ("rows", "tokens", "shards", "tail_tokens_dropped"))
        + "</tr>" for name, s in splits.items())
    split_table = ("<table><tr><th>split</th><th class=\"num\">rows</th><th class=\"num\">tokens</th><th class=\"num\">"
                   f"shards</th><th class=\"num\">tail dropped</th></tr>{split_rows}</table>") if splits else ""
    entropy = (stats.get("unigram_entropy") or {}).get("nats_per_token")
    line = f"<p>Unigram entropy of train: {float(entropy):.4f} nats/token.</p>" if entropy is not None else ""
    return ("<section id=\"mixture\"><h2>Mixture: target and realised</h2><table><tr><th>source</th>"
            "<th class=\"num\">target weight</th><th class=\"num\">realised weight</th><th class=\"num\">tokens "
            f"available</th><th class=\"num\">tokens taken</th></tr>{rows}</table>{chart}{split_table}{line}</section>")


def pylint_scores(stages: Mapping[str, Mapping]) -> str:
    """swallowcode: the pylint score histograms of every stage that has one, the first (before the rewrite) and
    the last (after it) drawn together when their bins agree."""
    found = [(stage, name, h) for stage, s in stages.items()
             for name, h in (s.get("histograms") or {}).items() if "pylint" in name and not histogram_problem(h)]
    if not found:
        return ""
    first, last = found[0], found[-1]
    if len(found) > 1 and list(first[2]["edges"]) == list(last[2]["edges"]):
        series = [(f"before: {first[0]} {first[1]}", first[2]["counts"]),
                  (f"after: {last[0]} {last[1]}", last[2]["counts"])]
        charts = histogram_chart(first[2]["edges"], series, title="pylint score before and after the rewrite")
    else:
        charts = "".join(histogram_chart(h["edges"], [(f"{st} {n}", h["counts"])], title=f"{st}: {n}")
                         for st, n, h in found)
    kept = "".join(f"<li>{text(st)}: {count(stages[st], 'docs_out'):,} of {count(stages[st], 'docs_in'):,} kept "
                   f"({percent(count(stages[st], 'docs_out'), count(stages[st], 'docs_in'))})</li>"
                   for st in dict.fromkeys(st for st, _, _ in found))
    heading = ("pylint scores before and after the rewrite" if len({st for st, _, _ in found}) > 1
               else "pylint scores (one stage scored: no rewrite in this run)")
    return (f"<section id=\"pylint\"><h2>{heading}</h2><div class=\"charts\">{charts}</div><ul>{kept}</ul>"
            "</section>")
