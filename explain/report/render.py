"""HTML of a report: blocks per item, tables with their exact values, the page around them.

The markup is in Jinja2 templates (``templates/``: ``page.html``, ``blocks.html`` with one macro
per kind of block, ``summary.html``, ``provenance.html``, ``report.css``); this module prepares
what they show. Autoescape is on, so every piece of user text is text; numbers shown rounded
carry their exact value (as written to ``data/``) in a ``data-value`` attribute, so the page can
be checked against the CSV files. Nothing references a URL: figures are ``data:`` URIs, CSS and
JavaScript are inline.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import os
import re
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

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
#: Print layout (A4): a table item with more columns or rows, or with long texts under its
#: rows, is printed as a pointer to its CSV file (it stays whole on the screen page).
PRINT_COLUMNS = 9
PRINT_ROWS = 12
#: Label names shown in a model's summary line before they are counted instead.
SHOWN_CLASSES = 12


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


def _table(frame: pd.DataFrame, *, max_rows: int, source: str | None) -> dict:
    """What the ``table`` macro draws: the first ``max_rows`` rows; numeric cells formatted,
    with their exact value."""
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
    rows = []
    for row_number, values in enumerate(shown.itertuples(index=False, name=None)):
        cells = []
        for j in inline:
            value, column = values[j], str(frame.columns[j])
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            if missing:
                cells.append({"kind": "missing"})
            elif numeric[j]:
                cells.append({"kind": "num", "column": column, "exact": _exact(value),
                              "shown": format_number(value)})
            else:
                cells.append({"kind": "text", "shown": str(value)})
        rows.append({"number": row_number, "cells": cells,
                     "details": [(str(frame.columns[j]), str(values[j])) for j in sorted(stacked)]})
    # column names such as comprehensiveness_gain may break after their underscores
    head = [(Markup("_<wbr>").join(str(frame.columns[j]).split("_")), numeric[j]) for j in inline]
    return {"head": head, "rows": rows, "n_columns": len(frame.columns),
            "stacked": bool(stacked), "n_rows": len(frame), "max_rows": max_rows,
            "truncated": len(frame) > max_rows, "source": source}


def _figure(png: bytes, *, alt: str, stem: str, description: str | None = None) -> dict:
    """What the ``img`` macro draws: the PNG as a ``data:`` URI, shown at 100 dpi-equivalent
    size so its fonts match the page (the CSS keeps it in the column)."""
    width, height = _png_size(png)
    return {"uri": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
            "alt": alt, "stem": stem, "description": description,
            "width": round(width * 100 / DPI), "height": round(height * 100 / DPI)}


def _render_figure(fig, rendered, stem: str) -> bytes:
    start = time.perf_counter()
    png = plotting.figure_bytes(fig, "png", dpi=DPI)
    rendered.seconds["encode_png"] += time.perf_counter() - start
    rendered.figures[stem] = png
    rendered.figure_objects[stem] = fig
    return png


def item_block(item, rendered) -> str:
    """HTML for one report item; records its figures and tables in ``rendered``."""
    blocks = _blocks()
    if item.kind == "text":
        return blocks.text_item(item, [p.strip() for p in item.payload.split("\n\n")
                                       if p.strip()])
    if item.kind == "html":
        return blocks.html_item(item, Markup(item.payload))
    if item.kind == "figure":
        if item.png is None:
            item.png = _render_figure(item.payload, rendered, item.slug)
        rendered.figures[item.slug] = item.png
        rendered.figure_objects[item.slug] = item.payload
        return blocks.figure_item(item, _figure(item.png, alt=item.title or "figure",
                                                stem=item.slug))
    if item.kind == "table":
        rendered.tables[item.slug] = item.payload
        table = _table(item.payload, max_rows=item.max_rows, source=f"data/{item.slug}.csv")
        # too wide or long for a printed page: printed as a pointer to its file
        table["printed"] = (len(item.payload.columns) <= PRINT_COLUMNS
                            and len(table["rows"]) <= PRINT_ROWS and not table["stacked"])
        return blocks.table_item(item, table)
    # an analysis result
    result = item.payload
    name = type(result).__name__
    # several items may show one result (different figures): say what it holds once
    summary = result.summary() if hasattr(result, "summary") else ""
    if summary and id(result) not in rendered.summarised:
        rendered.summarised.add(id(result))
    else:
        summary = ""
    figures = []
    for kind in item.plots:
        stem = item.slug if len(item.plots) == 1 else f"{item.slug}-{kind}"
        start = time.perf_counter()
        fig = result.plot(kind, **item.plot_options)
        rendered.seconds["draw_figures"] += time.perf_counter() - start
        png = _render_figure(fig, rendered, stem)
        description = result.PLOTS.get(kind, kind)
        figures.append(_figure(png, alt=f"{item.title or name}: {description}", stem=stem,
                               description=description))
    view = None
    if item.view:
        start = time.perf_counter()
        # short, unique, deterministic element id (several views can share one page)
        markup = result.view_html(
            element_id=f"view-{hashlib.sha256(item.slug.encode()).hexdigest()[:12]}")
        check_offline(markup, f"{name}.view_html()")
        view = Markup(markup)
        rendered.seconds["views"] += time.perf_counter() - start
    start = time.perf_counter()
    frame = item.data if item.data is not None else result.to_frame(**item.frame_options)
    rendered.seconds["tables"] += time.perf_counter() - start
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name}.to_frame() returned {type(frame).__name__}, not a pandas "
                        f"DataFrame")
    rendered.tables[item.slug] = frame
    return blocks.result_item(item, name, summary, figures, view,
                              _table(frame, max_rows=item.max_rows,
                                     source=f"data/{item.slug}.csv"))


# ------------------------------------------------------------------------------ the page

def _card_value(value: Any, percent: bool = False) -> tuple[str, str | None]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        shown = f"{100 * value:.1f}%" if percent else format_number(value)
        return shown, _exact(value)
    return str(value), None


def _unprefixed(text: str, part: str | None) -> str:
    """``"Sentiment: accuracy"`` shown under the heading ``Sentiment`` as ``"accuracy"``."""
    prefix = f"{part}: "
    if part and text.startswith(prefix) and len(text) > len(prefix):
        rest = text[len(prefix):]
        return rest[0].upper() + rest[1:]
    return text


def slugify(text: str) -> str:
    """An HTML id (and file stem) from a title: lower-case letters, digits and '-'."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:60].strip("-") or "item"


def _summary_parts(report) -> list[str | None]:
    """The parts of the summary (``part=`` of its cards and findings), in order of first use."""
    return list(dict.fromkeys(e.get("part") for e in (*report.metrics, *report.findings)))


def _model_card(model) -> dict:
    card = model["card"] or {}
    provenance = model["provenance"] or {}
    heading = f"Model: {model['name']}" + (f" ({model['role']})" if model["role"] else "")
    names = list(model["label_names"])
    classes = ", ".join(names) if len(names) <= SHOWN_CLASSES else (
        f"{len(names):,}: {', '.join(names[:SHOWN_CLASSES])}, ... (all in manifest.json)")
    pairs = [("task", model["task"]), ("classes", classes)]
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
    line = " · ".join(str(v) for v in (model["task"], classes and f"classes {classes}") if v)
    return {"heading": heading, "line": line,
            "pairs": [(k, v) for k, v in pairs if v not in (None, "", [], {})]}


def _summary_section(report, rendered) -> str:
    parts = []
    for part in _summary_parts(report):
        metrics = []
        for metric in (m for m in report.metrics if m.get("part") == part):
            shown, exact = _card_value(metric["value"], metric["percent"])
            metrics.append({"kind": metric.get("kind"), "name": metric["name"], "shown": shown,
                            "exact": exact, "label": _unprefixed(metric["name"], part),
                            "note": metric["note"], "sources": list(metric.get("sources") or ())})
        findings = [{"kind": f.get("kind"), "text": _unprefixed(f["text"], part),
                     "sources": list(f.get("sources") or ())}
                    for f in report.findings if f.get("part") == part]
        parts.append({"name": part, "slug": f"summary-{slugify(part)}" if part else None,
                      "metrics": metrics, "findings": findings})
    datasets = None
    if report.datasets:
        rows = pd.DataFrame([{"dataset": d["name"], "rows": d["n_rows"],
                              "columns": len(d["columns"]), "licence": d["licence"] or "not stated",
                              "source": d["source"] or ""}
                             for d in report.datasets])
        datasets = _table(rows, max_rows=50, source=None)
    return _template("summary.html").render(
        parts=parts, models=[_model_card(m) for m in report.models], datasets=datasets,
        extra=Markup("".join(rendered.blocks["summary"])))


def _flat(value: Any) -> str:
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, dict):
        return "; ".join(f"{str(k).replace('_', ' ')}: {_flat(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_flat(v) for v in value)
    return str(value)


def _caveats_section(report, rendered) -> str:
    return _blocks().caveats(report.caveats) + Markup("".join(rendered.blocks["caveats"]))


def display_path(source: Any) -> Any:
    """A local path as the page shows it: relative to the working directory when inside it,
    else under ``$EXPLAIN_CACHE`` or ``~`` (no user or machine names in a published report);
    anything else (a Hub id, a description) as it is. The manifest keeps the exact path."""
    if not isinstance(source, str) or not os.path.isabs(source):
        return source
    path = Path(source)
    roots = [(Path.cwd(), "."), (Path(os.environ.get("EXPLAIN_CACHE", "~/.cache/explain"))
                                  .expanduser(), "$EXPLAIN_CACHE"), (Path.home(), "~")]
    for root, label in roots:
        try:
            rest = path.relative_to(root)
        except ValueError:
            continue
        return f"{label}/{rest.as_posix()}" if rest.parts else label
    return source


def _provenance_section(report, manifest) -> str:
    # the creation time appears once, in the header (so regenerated reports differ only there)
    tables = [("Versions", pd.DataFrame([{"library": k, "version": v}
                                         for k, v in manifest["versions"].items()]))]
    if manifest["models"]:
        tables.append(("Models", pd.DataFrame([
            {"model": m["name"], "source": display_path((m["provenance"] or {}).get("source", "")),
             "weights_sha256": (m["provenance"] or {}).get("weights_sha256", "")}
            for m in manifest["models"]])))
    if manifest["datasets"]:
        tables.append(("Datasets", pd.DataFrame([{"dataset": d["name"], "rows": d["n_rows"],
                                                  "sha256": d["sha256"]}
                                                 for d in manifest["datasets"]])))
    analyses = [a for a in manifest["analyses"] if a["kind"] == "result"]
    if analyses:
        tables.append(("Analyses", pd.DataFrame([
            {"item": a["id"], "type": a.get("type"), "method": a.get("method"),
             "seed": a.get("seed"),
             "parameters": ", ".join(f"{k}={v}" for k, v in (a.get("parameters") or {}).items())}
            for a in analyses])))
    if manifest["config"]:
        tables.append(("Configuration", pd.DataFrame([
            {"key": k, "value": str(display_path(v))} for k, v in manifest["config"].items()])))
    shown = []
    for heading, frame in tables:
        table = _table(frame, max_rows=200, source=None)
        table["collapsed"] = len(frame) > 12  # long lists fold (and stay folded in print)
        shown.append((heading, table))
    return _template("provenance.html").render(
        pairs=[(k, v) for k, v in (("report", report.name), ("seed", report.seed))
               if v not in (None, "")], tables=shown)


def _entries(key: str, report: ReportView, rendered) -> list[tuple[str, str]]:
    """The contents entries under a section: its titled items (the summary: its parts)."""
    if key == "summary":
        entries = [(f"summary-{slugify(p)}", p) for p in _summary_parts(report) if p]
        return entries + ([("summary-models", "Models")] if report.models else [])
    return list(rendered.titles.get(key, []))


def document(report: ReportView, rendered, manifest, *, created: str | None, standalone: bool) -> str:
    """The whole report page (``standalone``: a full HTML document; else a fragment)."""
    sections = []
    for key, section in SECTIONS.items():
        if key == "summary":
            body = _summary_section(report, rendered)
        elif key == "caveats":
            body = _caveats_section(report, rendered)
        elif key == "provenance":
            body = _provenance_section(report, manifest)
        else:
            body = Markup("".join(rendered.blocks[key]))
        reason = report.skipped.get(key)
        if not str(body).strip() and reason is None:
            reason = "nothing of this kind was added to the report"
        skipped = not str(body).strip()
        sections.append({"key": key, "title": section.title, "skipped": skipped,
                         "reason": (reason or "").rstrip("."), "body": Markup(body),
                         "entries": [] if skipped else _entries(key, report, rendered)})
    return _template("page.html").render(
        title=report.title, name=report.name, seed=report.seed, created=created,
        description=report.description, version=manifest["versions"].get("explain", ""),
        sections=sections, standalone=standalone, css=Markup(_asset("report.css")))


# ------------------------------------------------------------------------------ templates

_TEMPLATES = Path(__file__).parent / "templates"


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _template(name: str):
    return _environment().get_template(name)


def _blocks():
    """The macros of ``blocks.html`` (``table``, ``result_item``, ...)."""
    return _template("blocks.html").module


@functools.cache
def _asset(name: str) -> str:
    return (_TEMPLATES / name).read_text(encoding="utf-8")
