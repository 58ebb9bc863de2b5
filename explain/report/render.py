"""HTML of a report: blocks per item, tables with their exact values, the page around them.

Every piece of user text goes through ``html.escape``; numbers shown rounded carry their exact
value (as written to ``data/``) in a ``data-value`` attribute, so the page can be checked
against the CSV files. Nothing here references a URL: figures are ``data:`` URIs, CSS and
JavaScript are inline.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import plotting
from .offline import check_offline
from .sections import SECTIONS


@dataclass(frozen=True)
class ReportView:
    """What the page shows besides the items: a frozen snapshot of a ``Report``
    (``Report.view()``). Metrics, findings, models and datasets are read-only mappings with the
    keys of their manifest entries (metrics also ``percent``); ``caveats``: (heading, text)."""

    name: str
    title: str
    seed: int | None
    description: str | None
    metrics: tuple[Mapping[str, Any], ...]
    findings: tuple[Mapping[str, Any], ...]
    models: tuple[Mapping[str, Any], ...]
    datasets: tuple[Mapping[str, Any], ...]
    skipped: Mapping[str, str]
    caveats: tuple[tuple[str, str], ...]


#: Pixel density of the PNG figures; the page shows them at 100 dpi-equivalent size.
DPI = 150


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _png_size(png: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def format_number(value: Any) -> str:
    """Four significant digits, integers in full, no exponent for ordinary magnitudes."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value)
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if 1e-3 <= abs(value) < 1e6:
        text = f"{value:.4g}"
        return text if "e" not in text else f"{value:.4f}"
    return f"{value:.3e}"


def _exact(value: Any) -> str:
    """The value as pandas writes it to CSV (shortest round-trip repr)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(float(value))


def table_html(frame: pd.DataFrame, *, max_rows: int, source: str | None) -> str:
    """An HTML table of the first ``max_rows`` rows; numeric cells carry ``data-value``."""
    shown = frame.head(max_rows)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    # long text columns squeeze each other (or many numbers): show them full width under their
    # row
    long_text = [not n and shown[c].astype(str).str.len().max() > 80 if len(shown) else False
                 for c, n in zip(frame.columns, numeric, strict=True)]
    stacked = set(np.flatnonzero(long_text).tolist()) \
        if sum(long_text) >= 2 or (any(long_text) and len(frame.columns) > 4) else set()
    inline = [j for j in range(len(frame.columns)) if j not in stacked]
    head = "".join(f"<th{' class=num' if numeric[j] else ''}>{esc(frame.columns[j])}</th>"
                   for j in inline)
    rows = []
    for row_number, values in enumerate(shown.itertuples(index=False, name=None)):
        cells = []
        for j, (column, value, is_number) in enumerate(zip(frame.columns, values, numeric,
                                                           strict=True)):
            if j in stacked:
                continue
            if is_number and value is not None and not (isinstance(value, float) and
                                                        math.isnan(value)):
                cells.append(f"<td class=num data-column='{esc(column)}' "
                             f"data-value='{esc(_exact(value))}'>{format_number(value)}</td>")
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("<td class=missing>–</td>")
            else:
                cells.append(f"<td>{esc(value)}</td>")
        rows.append(f"<tr data-row='{row_number}'{' class=lead' if stacked else ''}>"
                    f"{''.join(cells)}</tr>")
        for j in sorted(stacked):
            rows.append(f"<tr class=detail><td colspan={len(inline)}><span class=key>"
                        f"{esc(frame.columns[j])}</span> {esc(values[j])}</td></tr>")
    note = ""
    if len(frame) > max_rows:
        note = (f"<p class=note>First {max_rows} of {len(frame):,} rows"
                + (f"; all rows in <code>{esc(source)}</code>" if source else "") + ".</p>")
    elif source:
        note = f"<p class=note>Data: <code>{esc(source)}</code> ({len(frame):,} rows).</p>"
    source_attr = f" data-source='{esc(source)}'" if source else ""
    return (f"<div class=table-wrap><table class=data{source_attr} data-rows='{len(frame)}'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{note}")


def _figure_html(png: bytes, *, alt: str, stem: str) -> str:
    width, height = _png_size(png)
    # shown at 100 dpi-equivalent so fonts match the page; max-width keeps it in the column
    shown_width = round(width * 100 / DPI)
    shown_height = round(height * 100 / DPI)
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return (f"<img src='{uri}' alt='{esc(alt)}' width='{shown_width}' height='{shown_height}' "
            f"data-figure='figures/{esc(stem)}.png'>")


def _render_figure(fig, rendered, stem: str) -> bytes:
    start = time.perf_counter()
    png = plotting.figure_bytes(fig, "png", dpi=DPI)
    rendered.seconds["encode_png"] += time.perf_counter() - start
    rendered.figures[stem] = png
    rendered.figure_objects[stem] = fig
    return png


def _heading(item) -> str:
    return f"<h3>{esc(item.title)}</h3>" if item.title else ""


def _caption(item) -> str:
    return f"<p class=caption>{esc(item.caption)}</p>" if item.caption else ""


def item_block(item, rendered) -> str:
    """HTML for one report item; records its figures and tables in ``rendered``."""
    anchor = f"id='{esc(item.slug)}'"
    if item.kind == "text":
        paragraphs = "".join(f"<p>{esc(p.strip())}</p>" for p in item.payload.split("\n\n")
                             if p.strip())
        return f"<div class='item text' {anchor}>{_heading(item)}{paragraphs}{_caption(item)}</div>"
    if item.kind == "html":
        return (f"<div class='item view' {anchor}>{_heading(item)}{item.payload}"
                f"{_caption(item)}</div>")
    if item.kind == "figure":
        if item.png is None:
            item.png = _render_figure(item.payload, rendered, item.slug)
        png = item.png
        rendered.figures[item.slug] = png
        rendered.figure_objects[item.slug] = item.payload
        return (f"<figure class=item {anchor}>{_heading(item)}"
                f"{_figure_html(png, alt=item.title or 'figure', stem=item.slug)}"
                f"{_figcaption(item)}</figure>")
    if item.kind == "table":
        rendered.tables[item.slug] = item.payload
        return (f"<div class='item table' {anchor}>{_heading(item)}{_caption(item)}"
                f"{table_html(item.payload, max_rows=item.max_rows, source=f'data/{item.slug}.csv')}"
                "</div>")
    # an analysis result
    result = item.payload
    parts = [f"<div class='item result' {anchor} data-type='{esc(type(result).__name__)}'>",
             _heading(item)]
    # several items may show one result (different figures): say what it holds once
    summary = result.summary() if hasattr(result, "summary") else ""
    if summary and id(result) not in rendered.summarised:
        rendered.summarised.add(id(result))
        parts.append(f"<p class=summary>{esc(summary)}</p>")
    for kind in item.plots:
        stem = item.slug if len(item.plots) == 1 else f"{item.slug}-{kind}"
        start = time.perf_counter()
        fig = result.plot(kind, **item.plot_options)
        rendered.seconds["draw_figures"] += time.perf_counter() - start
        png = _render_figure(fig, rendered, stem)
        description = result.PLOTS.get(kind, kind)
        parts.append(f"<figure>{_figure_html(png, alt=f'{item.title or type(result).__name__}: {description}', stem=stem)}"
                     f"<figcaption>{esc(description)}</figcaption></figure>")
    if item.view:
        start = time.perf_counter()
        # short, unique, deterministic element id (several views can share one page)
        markup = result.view_html(element_id=f"view-{hashlib.sha256(item.slug.encode()).hexdigest()[:12]}")
        check_offline(markup, f"{type(result).__name__}.view_html()")
        parts.append(f"<div class=view>{markup}</div>")
        rendered.seconds["views"] += time.perf_counter() - start
    parts.append(_caption(item))
    start = time.perf_counter()
    frame = item.data if item.data is not None else result.to_frame(**item.frame_options)
    rendered.seconds["tables"] += time.perf_counter() - start
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{type(result).__name__}.to_frame() returned {type(frame).__name__}, "
                        f"not a pandas DataFrame")
    rendered.tables[item.slug] = frame
    parts.append(f"<details><summary>Data ({len(frame):,} rows, "
                 f"<code>data/{esc(item.slug)}.csv</code>)</summary>"
                 f"{table_html(frame, max_rows=item.max_rows, source=f'data/{item.slug}.csv')}"
                 "</details>")
    parts.append("</div>")
    return "".join(parts)


def _figcaption(item) -> str:
    return f"<figcaption>{esc(item.caption)}</figcaption>" if item.caption else ""


# ------------------------------------------------------------------------------ the page

CSS = """
.explain-report{--ink:#1d2330;--muted:#5b6475;--line:#d9dee7;--soft:#f4f6fa;--accent:#2458a6;
 --warn:#8a5a00;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 color:var(--ink);max-width:1080px;margin:0 auto;padding:24px 28px 64px}
.explain-report h1{font-size:1.75rem;margin:0 0 .2rem}
.explain-report h2{font-size:1.3rem;margin:2.2rem 0 .6rem;padding-bottom:.25rem;
 border-bottom:2px solid var(--line)}
.explain-report h3{font-size:1.05rem;margin:1.4rem 0 .4rem}
.explain-report h4{font-size:.95rem;margin:.8rem 0 .2rem}
.explain-report .meta{color:var(--muted);font-size:.9rem;margin:0 0 1rem}
.explain-report nav ol{display:flex;flex-wrap:wrap;gap:.25rem 1.2rem;padding:0;margin:0 0 1rem;
 list-style:none;font-size:.92rem}
.explain-report nav a{color:var(--accent);text-decoration:none}
.explain-report nav .skipped a{color:var(--muted)}
.explain-report a{color:var(--accent)}
.explain-report figure{margin:.8rem 0 1.2rem}
.explain-report figure img{max-width:100%;height:auto;display:block}
.explain-report figcaption,.explain-report .caption,.explain-report .note{color:var(--muted);
 font-size:.88rem;margin:.3rem 0}
.explain-report .summary{font-weight:600;margin:.2rem 0 .5rem}
.explain-report .skip{background:var(--soft);border-left:4px solid var(--line);padding:.5rem .8rem;
 color:var(--muted)}
.explain-report .findings li{margin:.25rem 0}
.explain-report .sources{color:var(--muted);font-size:.8rem;white-space:nowrap}
.explain-report .cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));
 gap:.6rem;margin:.6rem 0 1rem}
.explain-report .card{border:1px solid var(--line);border-radius:6px;padding:.5rem .7rem}
.explain-report .card .value{font-size:1.35rem;font-weight:650}
.explain-report .card .label{color:var(--muted);font-size:.85rem}
.explain-report .table-wrap{overflow-x:auto}
.explain-report table.data{border-collapse:collapse;font-size:.85rem;margin:.4rem 0}
.explain-report table.data th,.explain-report table.data td{padding:.22rem .6rem;
 border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
.explain-report table.data th{background:var(--soft);font-weight:600}
.explain-report .num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.explain-report table.data tr.lead td{border-bottom:none;padding-top:.6rem}
.explain-report table.data tr.detail td{border-bottom:none;padding-top:0;color:var(--ink)}
.explain-report table.data tr.detail:last-child td,.explain-report table.data
 tr.detail+tr.lead td{border-top:0}
.explain-report table.data tr.detail+tr.lead td{border-top:1px solid var(--line)}
.explain-report table.data .key{display:inline-block;min-width:5.5em;color:var(--muted);
 font-size:.8rem}
.explain-report details{margin:.3rem 0 1rem}
.explain-report details>summary{cursor:pointer;color:var(--accent);font-size:.9rem}
.explain-report code{font-size:.85em;background:var(--soft);padding:0 .25em;border-radius:3px}
.explain-report dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;
 font-size:.9rem}
.explain-report dl.kv dt{color:var(--muted)}
.explain-report dl.kv dd{margin:0;overflow-wrap:anywhere}
.explain-report .caveat{margin:.5rem 0}
.explain-report .caveat strong{color:var(--warn)}
@media print{
 .explain-report{max-width:none;padding:0;font-size:11pt}
 .explain-report nav{display:none}
 .explain-report h2{break-after:avoid;page-break-after:avoid}
 .explain-report figure,.explain-report .card,.explain-report tr{break-inside:avoid;
  page-break-inside:avoid}
 .explain-report details>summary{color:var(--ink)}
 .explain-report a{color:var(--ink);text-decoration:none}
}
"""

# Open every <details> for printing, restore afterwards. Inline, no network.
PRINT_SCRIPT = """
(function(){var opened=[];
window.addEventListener('beforeprint',function(){document.querySelectorAll('details:not([open])')
.forEach(function(d){d.setAttribute('open','');opened.push(d);});});
window.addEventListener('afterprint',function(){opened.forEach(function(d){d.removeAttribute('open');});
opened=[];});})();
"""


def _kv(pairs) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs
                   if v not in (None, "", [], {}))
    return f"<dl class=kv>{rows}</dl>"


def _card_value(value: Any, percent: bool = False) -> tuple[str, str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        shown = f"{100 * value:.1f}%" if percent else format_number(value)
        return shown, f" data-value='{esc(_exact(value))}'"
    return esc(value), ""


def _kind(entry) -> str:
    return f" data-kind='{esc(entry['kind'])}'" if entry.get("kind") else ""


def _unprefixed(text: str, part: str | None) -> str:
    """``"Sentiment: accuracy"`` shown under the heading ``Sentiment`` as ``"accuracy"``."""
    prefix = f"{part}: "
    if part and text.startswith(prefix) and len(text) > len(prefix):
        rest = text[len(prefix):]
        return rest[0].upper() + rest[1:]
    return text


def _links(entry) -> str:
    """Links from a card or finding to the items it is computed from."""
    if not entry.get("sources"):
        return ""
    sources = entry["sources"]
    if len(sources) == 1:
        return (f" <span class=sources>(<a href='#{esc(sources[0])}' "
                f"data-source='data/{esc(sources[0])}.csv'>table</a>)</span>")
    links = ", ".join(f"<a href='#{esc(s)}' data-source='data/{esc(s)}.csv'>{k + 1}</a>"
                      for k, s in enumerate(sources))
    return f" <span class=sources>(tables {links})</span>"


def _summary_section(report, rendered) -> str:
    parts = []
    parts_seen = list(dict.fromkeys([e.get("part") for e in report.metrics]
                                    + [e.get("part") for e in report.findings]))
    for part in parts_seen:
        metrics = [m for m in report.metrics if m.get("part") == part]
        found = [f for f in report.findings if f.get("part") == part]
        if part is not None:
            parts.append(f"<h3 class=part>{esc(part)}</h3>")
        if metrics:
            cards = []
            for metric in metrics:
                shown, attr = _card_value(metric["value"], metric["percent"])
                note = metric["note"]
                cards.append(f"<div class=card{_kind(metric)}><div class=value{attr} "
                             f"data-metric='{esc(metric['name'])}'>{shown}</div><div class=label>"
                             f"{esc(_unprefixed(metric['name'], part))}"
                             + (f"<br>{esc(note)}" if note else "")
                             + f"{_links(metric)}</div></div>")
            parts.append(f"<div class=cards>{''.join(cards)}</div>")
        if found:
            items = "".join(f"<li{_kind(f)}>{esc(_unprefixed(f['text'], part))}{_links(f)}</li>"
                            for f in found)
            heading = "<h4>Findings</h4>" if part is not None else "<h3>Findings</h3>"
            parts.append(f"{heading}<ul class=findings>{items}</ul>")
    for model in report.models:
        card = model["card"] or {}
        provenance = model["provenance"] or {}
        heading = f"Model: {model['name']}" + (f" ({model['role']})" if model["role"] else "")
        pairs = [("task", model["task"]), ("classes", ", ".join(model["label_names"]))]
        first = ("description", "base_model", "architecture", "data", "split", "training",
                 "seed", "training_time_seconds", "intended_use", "limitations")
        # versions are in the provenance section; label names are the classes above
        hidden = {"name", "metrics", "versions", "label_names"}
        for key in first:
            if key in card:
                pairs.append((key.replace("_", " "), _flat(card[key])))
        metrics = card.get("metrics")
        if isinstance(metrics, dict):
            pairs.extend((f"metric: {k.replace('_', ' ')}", _flat(v)) for k, v in metrics.items())
        for key, value in card.items():
            if key not in first and key not in hidden:
                pairs.append((key.replace("_", " "), _flat(value)))
        pairs.append(("weights sha256", provenance.get("weights_sha256")))
        parts.append(f"<h3>{esc(heading)}</h3>{_kv(pairs)}")
    if report.datasets:
        rows = pd.DataFrame([{"dataset": d["name"], "rows": d["n_rows"],
                              "columns": len(d["columns"]), "licence": d["licence"] or "not stated",
                              "source": d["source"] or ""}
                             for d in report.datasets])
        parts.append("<h3>Data</h3>" + table_html(rows, max_rows=50, source=None))
    parts.extend(rendered.blocks["summary"])
    return "".join(parts)


def _flat(value: Any) -> str:
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, dict):
        return "; ".join(f"{str(k).replace('_', ' ')}: {_flat(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_flat(v) for v in value)
    return str(value)


def _caveats_section(report, rendered) -> str:
    notes = "".join(f"<p class=caveat><strong>{esc(head)}.</strong> {esc(text)}</p>"
                    for head, text in report.caveats)
    return notes + "".join(rendered.blocks["caveats"])


def _provenance_section(report, manifest, created) -> str:
    # the creation time appears once, in the header (so regenerated reports differ only there)
    parts = [_kv([("report", report.name), ("seed", report.seed)])]
    versions = pd.DataFrame([{"library": k, "version": v} for k, v in manifest["versions"].items()])
    parts.append("<h3>Versions</h3>" + table_html(versions, max_rows=100, source=None))
    if manifest["models"]:
        models = pd.DataFrame([{"model": m["name"],
                                "source": (m["provenance"] or {}).get("source", ""),
                                "weights_sha256": (m["provenance"] or {}).get("weights_sha256", "")}
                               for m in manifest["models"]])
        parts.append("<h3>Models</h3>" + table_html(models, max_rows=100, source=None))
    if manifest["datasets"]:
        data = pd.DataFrame([{"dataset": d["name"], "rows": d["n_rows"], "sha256": d["sha256"]}
                             for d in manifest["datasets"]])
        parts.append("<h3>Datasets</h3>" + table_html(data, max_rows=100, source=None))
    analyses = [a for a in manifest["analyses"] if a["kind"] == "result"]
    if analyses:
        frame = pd.DataFrame([{"item": a["id"], "type": a.get("type"), "method": a.get("method"),
                               "seed": a.get("seed"),
                               "parameters": ", ".join(f"{k}={v}" for k, v in
                                                       (a.get("parameters") or {}).items())}
                              for a in analyses])
        parts.append("<h3>Analyses</h3>" + table_html(frame, max_rows=200, source=None))
    if manifest["config"]:
        config = pd.DataFrame([{"key": k, "value": str(v)} for k, v in manifest["config"].items()])
        parts.append("<h3>Configuration</h3>" + table_html(config, max_rows=100, source=None))
    parts.append("<p class=note>Everything above, plus the seconds each stage took, is in "
                 "<code>manifest.json</code>; every table behind a figure is in "
                 "<code>data/</code>, every figure in <code>figures/</code>.</p>")
    return "".join(parts)


def document(report: ReportView, rendered, manifest, *, created: str | None, standalone: bool) -> str:
    """The whole report page (``standalone``: a full HTML document; else a fragment)."""
    sections, nav = [], []
    for key, section in SECTIONS.items():
        heading = section.title
        if key == "summary":
            body = _summary_section(report, rendered)
        elif key == "caveats":
            body = _caveats_section(report, rendered)
        elif key == "provenance":
            body = _provenance_section(report, manifest, created)
        else:
            body = "".join(rendered.blocks[key])
        reason = report.skipped.get(key)
        if not body and reason is None:
            reason = "nothing of this kind was added to the report"
        skipped = not body
        if skipped:
            body = f"<p class=skip>Skipped because {esc(reason.rstrip('.'))}.</p>"
        css_class = " class=skipped" if skipped else ""
        nav.append(f"<li{css_class}><a href='#section-{key}'>{esc(heading)}</a></li>")
        sections.append(f"<section id='section-{key}' data-section='{key}'"
                        f"{' data-skipped' if skipped else ''}><h2>{esc(heading)}</h2>{body}"
                        "</section>")
    description = f"<p>{esc(report.description)}</p>" if report.description else ""
    stamp = (f"Created <time>{esc(created)}</time> · " if created else "")
    header = (f"<header><h1>{esc(report.title)}</h1><p class=meta>{stamp}report "
              f"<code>{esc(report.name)}</code> · seed {esc(report.seed)} · explain "
              f"{esc(manifest['versions'].get('explain', ''))}</p>{description}</header>")
    body = (f"<div class=explain-report>{header}<nav><ol>{''.join(nav)}</ol></nav>"
            f"{''.join(sections)}</div>")
    if not standalone:
        return f"<style>{CSS}</style>{body}"
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'>"
            "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; "
            "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
            f"<title>{esc(report.title)}</title><style>{CSS}</style></head>"
            f"<body>{body}<script>{PRINT_SCRIPT}</script></body></html>\n")
