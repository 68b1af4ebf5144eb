"""The run report's page and its run-wide sections (header, funnel, drops, errors and edits, time), as HTML strings.

Everything that comes from a run (stage names, reasons, paths, document text) is escaped here; the page has no
script, no external resource and reads the same with JavaScript off. Funnel cells carry `data-field` and hold the
plain integer, so a test (or a scraper) can read the numbers back from the rendered page.
"""
from __future__ import annotations

import json
import re
from html import escape
from typing import Any, Mapping

from pipelines.report_svg import hbar_chart

FUNNEL_FIELDS = ("docs_in", "docs_out", "chars_in", "chars_out")
HEADER_KEYS = (("recipe", "recipe"), ("config_source", "config file"), ("extractor", "extractor"),
               ("model", "model"), ("tokenizer", "tokenizer"), ("seq_len", "sequence length"),
               ("refinery_version", "Refinery"))
# The page may load nothing and run no script, whatever a document's text holds: every browser then shows it as it
# would with JavaScript off, and an escaping slip could not execute.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CSS = """
body{font:14px/1.45 sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:16px 0 6px}table{border-collapse:collapse;margin:6px 0 10px}
th,td{padding:3px 10px;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
dl.run{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}dl.run dt{color:#666}
dl.run dd{margin:0}.meter{display:inline-block;height:9px;background:#2f5f8f;vertical-align:middle}
.note{color:#666;font-size:13px}.charts{display:flex;flex-wrap:wrap;gap:10px 24px}
.sample{display:grid;grid-template-columns:280px 1fr;gap:12px;border:1px solid #ddd;padding:8px;margin:8px 0}
.evidence{background:#fff4e0;padding:6px;font-size:13px;overflow-wrap:anywhere}
.evidence b{font-size:15px}pre.text{white-space:pre-wrap;word-break:break-word;margin:0;font-size:12px;
max-height:320px;overflow:auto;background:#f7f7f7;padding:6px}code{font-size:12px}figure{margin:0}
figcaption{font-size:13px}
"""


def text(value: Any) -> str:
    """Any run value as escaped HTML text."""
    return escape(str(value), quote=True)


def slug(*parts: str) -> str:
    """An element id from stage and reason names (which may hold any character)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "--".join(parts)).strip("-") or "x"


def count(stage: Mapping, key: str) -> int:
    """A stage's count; a key that an older stats.json lacks reads as 0."""
    return int(stage.get(key) or 0)


def percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "\u2013"


def page(*, title: str, body: list[str]) -> str:
    """The whole document: inline CSS, no scripts, no external resources."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{text(title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(part for part in body if part) + "\n</body></html>\n")


def infer_job(stats: Mapping) -> str:
    """The job's name: stats "job", else the configs/<job>/ folder its recipe came from, else a tokenize mark."""
    if stats.get("job"):
        return str(stats["job"])
    found = re.search(r"configs/([A-Za-z0-9_]+)/", str(stats.get("config_source") or ""))
    if found:
        return found.group(1)
    return "tokenize" if "mixture" in stats else "unknown job"


def header(stats: Mapping, *, job: str, output_dir: str) -> str:
    """Who ran what on which inputs, how long it took, with which library versions and thresholds."""
    rows = [("job", job), ("output", output_dir)]
    rows += [(label, stats[key]) for key, label in HEADER_KEYS if stats.get(key) not in (None, "")]
    if stats.get("wall_time_s") is not None:
        rows.append(("wall time", f"{float(stats['wall_time_s']):.1f} s"))
    files = stats.get("input_files") or []
    if files:
        total = sum(int(f.get("bytes") or 0) for f in files)
        rows.append(("input files", f"{len(files):,} ({total:,} bytes)"))
    out = [f"<header><h1>{text(job)} run report</h1><dl class=\"run\">",
           *(f"<dt>{text(k)}</dt><dd data-field=\"{text(k)}\">{text(v)}</dd>" for k, v in rows), "</dl>"]
    if files:
        out.append(details("input files", "<table><tr><th>path</th><th class=\"num\">bytes</th></tr>" + "".join(
            f"<tr><td><code>{text(f.get('path'))}</code></td><td class=\"num\">{text(f.get('bytes'))}</td></tr>"
            for f in files) + "</table>"))
    elif stats.get("inputs"):
        inputs = stats["inputs"] if isinstance(stats["inputs"], list) else [stats["inputs"]]
        out.append("<p>inputs: " + ", ".join(f"<code>{text(i)}</code>" for i in inputs) + "</p>")
    versions = stats.get("versions") or {}
    if versions:
        out.append(details("library versions", "<table>" + "".join(
            f"<tr><td>{text(k)}</td><td>{text(v if v is not None else 'not installed')}</td></tr>"
            for k, v in versions.items()) + "</table>"))
    recipe = stats.get("recipe_resolved") or stats.get("config")
    if recipe:
        name = "recipe in force" if stats.get("recipe_resolved") else "config"
        out.append(details(name, f"<pre>{text(json.dumps(recipe, indent=2, sort_keys=False))}</pre>"))
    out.append("</header>")
    return "\n".join(out)


def details(summary: str, body: str) -> str:
    """A folded block: opens on click without JavaScript."""
    return f"<details><summary>{text(summary)}</summary>{body}</details>"


def funnel(stages: Mapping[str, Mapping]) -> str:
    """Documents and characters into and out of each stage, in run order, as a table and two bar charts."""
    if not stages:
        return "<section id=\"funnel\"><h2>Funnel</h2><p class=\"note\">No stages recorded.</p></section>"
    head = ("<tr><th>stage</th><th class=\"num\">docs in</th><th class=\"num\">docs out</th><th class=\"num\">kept"
            "</th><th class=\"num\">chars in</th><th class=\"num\">chars out</th><th class=\"num\">chars kept</th>"
            "<th class=\"num\">dropped</th></tr>")
    rows = []
    for name, s in stages.items():
        c = {k: count(s, k) for k in FUNNEL_FIELDS}
        dropped = sum(int(n) for n in (s.get("dropped") or {}).values())
        cells = "".join(f"<td class=\"num\" data-field=\"{k}\">{c[k]}</td>" for k in FUNNEL_FIELDS[:2])
        cells += f"<td class=\"num\" data-field=\"kept_pct\">{percent(c['docs_out'], c['docs_in'])}</td>"
        cells += "".join(f"<td class=\"num\" data-field=\"{k}\">{c[k]}</td>" for k in FUNNEL_FIELDS[2:])
        cells += f"<td class=\"num\" data-field=\"chars_kept_pct\">{percent(c['chars_out'], c['chars_in'])}</td>"
        cells += f"<td class=\"num\" data-field=\"dropped\">{dropped}</td>"
        rows.append(f"<tr class=\"funnel-row\" data-stage=\"{text(name)}\"><td>{text(name)}</td>{cells}</tr>")
    docs = hbar_chart([(n, (count(s, "docs_in"), count(s, "docs_out"))) for n, s in stages.items()],
                      series=("docs in", "docs out"), title="documents per stage")
    chars = hbar_chart([(n, (count(s, "chars_in"), count(s, "chars_out"))) for n, s in stages.items()],
                       series=("chars in", "chars out"), title="characters per stage")
    return (f"<section id=\"funnel\"><h2>Funnel</h2><table class=\"funnel\">{head}{''.join(rows)}</table>"
            f"<div class=\"charts\">{docs}{chars}</div></section>")


def drops(stages: Mapping[str, Mapping], *, sampled: set[tuple[str, str]]) -> str:
    """Why documents left each stage, most frequent reason first, with a link to its samples when there are any."""
    rows, top = [], max((int(n) for s in stages.values() for n in (s.get("dropped") or {}).values()), default=0)
    for name, s in stages.items():
        dropped = sorted((s.get("dropped") or {}).items(), key=lambda kv: (-int(kv[1]), kv[0]))
        docs_in = count(s, "docs_in")
        for i, (reason, n) in enumerate(dropped):
            label = (f"<a href=\"#{slug('samples', name, reason)}\">{text(reason)}</a>" if (name, reason) in sampled
                     else text(reason))
            rows.append(f"<tr class=\"drop-row\" data-stage=\"{text(name)}\" data-reason=\"{text(reason)}\">"
                        f"<td>{text(name) if i == 0 else ''}</td><td>{label}</td>"
                        f"<td class=\"num\" data-field=\"count\">{int(n)}</td>"
                        f"<td class=\"num\">{percent(int(n), docs_in)}</td><td><span class=\"meter\" "
                        f"style=\"width:{round(200 * int(n) / top)}px\"></span></td></tr>")
    if not rows:
        return ""
    return ("<section id=\"drops\"><h2>Drop reasons</h2><table><tr><th>stage</th><th>reason</th><th class=\"num\">"
            "documents</th><th class=\"num\">of stage input</th><th></th></tr>" + "".join(rows) + "</table></section>")


def errors_and_edits(stages: Mapping[str, Mapping]) -> str:
    """Damaged records, edits to kept documents and stage-specific counts, per stage."""
    rows = []
    for name, s in stages.items():
        for kind in ("errors", "edited", "other"):
            for what, n in sorted((s.get(kind) or {}).items(), key=lambda kv: (-int(kv[1]), kv[0])):
                rows.append(f"<tr class=\"{kind}-row\" data-stage=\"{text(name)}\"><td>{text(name)}</td>"
                            f"<td>{kind}</td><td>{text(what)}</td><td class=\"num\">{int(n)}</td></tr>")
    if not rows:
        return ""
    return ("<section id=\"errors-edits\"><h2>Errors, edits and other counts</h2><table><tr><th>stage</th>"
            "<th>kind</th><th>what</th><th class=\"num\">count</th></tr>" + "".join(rows) + "</table></section>")


def timing(stages: Mapping[str, Mapping], *, wall_time_s: float | None) -> str:
    """Worker seconds per stage (stats "seconds"), where the run recorded them."""
    timed = [(n, float(s["seconds"])) for n, s in stages.items() if s.get("seconds") is not None]
    if not timed:
        return ""
    total = sum(sec for _, sec in timed)
    rows = "".join(f"<tr class=\"time-row\" data-stage=\"{text(n)}\"><td>{text(n)}</td><td class=\"num\" "
                   f"data-field=\"seconds\">{sec:.3f}</td><td class=\"num\">{percent(sec, total)}</td></tr>"
                   for n, sec in timed)
    wall = f" The run's wall time was {wall_time_s:.1f} s." if wall_time_s is not None else ""
    chart = hbar_chart([(n, (sec,)) for n, sec in timed], series=("seconds",), title="worker seconds per stage",
                       fmt=lambda v: f"{v:.2f} s")
    return (f"<section id=\"time\"><h2>Time per stage</h2><p class=\"note\">Worker seconds summed over all workers "
            f"({total:.1f} s in all).{wall}</p><div class=\"charts\"><table><tr><th>stage</th>"
            f"<th class=\"num\">seconds</th><th class=\"num\">share</th></tr>{rows}</table><div>{chart}</div></div>"
            "</section>")
