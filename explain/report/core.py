"""``Report``: collect results, figures, tables and text by section; save one offline report.

A saved report is a directory ``<parent>/<name>/``:

* ``index.html``: one self-contained file (inline CSS and JavaScript, figures inlined as PNG
  ``data:`` URIs, no external URL, printable);
* ``figures/<item>.png`` (plus ``.svg`` / ``.pdf`` on request), written by
  ``explain.plotting.save_figure`` so the same figure gives the same bytes;
* ``data/<item>.csv``: the tidy table behind every result and table of the report;
* ``manifest.json``: versions, models (name, weights hash), datasets (rows, hash, licence),
  seed, configuration, the analyses with their parameters, the findings and cards with the
  items whose ``data/`` tables they are computed from (``sources``), and (under ``"run"``) the
  creation time and the seconds each stage took.

The same inputs and seed give byte-identical files except the ``run`` block of the manifest and
the one ``<time>`` element of the HTML (the creation time).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from .. import plotting
from ..checks import positive_int
from ..provenance import versions
from ..results import write_csv
from ..staging import staged_directory
from . import render
from .manifest import created_time, frame_sha256, jsonable
from .sections import SECTIONS

__all__ = ["FORMATS", "Report"]

#: Figure formats ``Report.save`` can write (PNG is always written: the HTML inlines it).
FORMATS: Mapping[str, str] = MappingProxyType({
    "png": "raster, inlined into index.html",
    "svg": "vector, for the web",
    "pdf": "vector, for papers",
})

@dataclass
class _Item:
    kind: str  # result, figure, table, text, html
    section: str
    slug: str
    title: str | None
    caption: str | None
    payload: Any
    plots: tuple[str, ...] = ()
    max_rows: int = 20
    plot_options: dict[str, Any] = field(default_factory=dict)
    frame_options: dict[str, Any] = field(default_factory=dict)
    view: bool = False
    data: pd.DataFrame | None = None
    # a Figure given to add() is encoded once: drawing it again can move its layout (constrained
    # layout iterates), and a report saved twice must not change
    png: bytes | None = None


@dataclass
class _Dataset:
    name: str
    n_rows: int
    columns: list[str]
    sha256: str
    source: str | None
    licence: str | None
    description: str | None
    caveat: str | None = None  # what the data's collection means for its analyses


@dataclass
class _Rendered:
    """What ``_render`` produces: everything ``save`` writes and the HTML shows."""

    figures: dict[str, bytes] = field(default_factory=dict)  # stem -> PNG bytes
    figure_objects: dict[str, Any] = field(default_factory=dict)  # stem -> Figure (for svg/pdf)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # stem -> frame
    blocks: dict[str, list[str]] = field(default_factory=dict)  # section -> HTML blocks
    titles: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # section -> (id, title)
    summarised: set[int] = field(default_factory=set)  # results whose summary is shown
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("draw_figures", "encode_png", "tables", "views"), 0.0))


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise ValueError(f"invalid report name {name!r}: use letters, digits, '.', '_' or '-' "
                         f"(it becomes a directory name), e.g. name='demo'")
    return name


def _check_section(section: str) -> str:
    if section not in SECTIONS:
        raise ValueError(f"unknown report section {section!r}; valid: {', '.join(SECTIONS)}")
    return section


def _is_result(item: Any) -> bool:
    return all(hasattr(item, name) for name in ("to_frame", "plot", "PLOTS"))


class Report:
    """An explanation report under construction.

    ``name``: the directory name of the saved report (``reports/<name>/``). ``title``: the
    heading (default: the name). ``seed``: recorded in the manifest; analyses the report runs
    itself use it. ``config``: the configuration that produced the report (recorded verbatim
    in the manifest). ``description``: a paragraph under the title.

    Add content with ``add`` (results, figures, tables, text), ``add_model``,
    ``add_dataset``, ``add_finding``, ``add_metric``; explain an absent section with ``skip``;
    time the analyses with ``with report.stage("attention"): ...``; write with ``save``.
    """

    def __init__(self, name: str = "report", *, title: str | None = None, seed: int | None = 0,
                 description: str | None = None, config: Mapping[str, Any] | None = None):
        self.name = _check_name(name)
        self.title = title if title is not None else name
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self.seed = seed
        self.description = description
        self.config = dict(config or {})
        self._items: list[_Item] = []
        self._skipped: dict[str, str] = {}
        self._models: list[dict[str, Any]] = []
        self._datasets: list[_Dataset] = []
        self._findings: list[dict[str, Any]] = []
        self._metrics: list[dict[str, Any]] = []
        self._timings: dict[str, float] = {}
        self._slugs: set[str] = set()

    # ------------------------------------------------------------------------ building

    def __repr__(self) -> str:
        counts = {s: sum(i.section == s for i in self._items) for s in SECTIONS}
        filled = ", ".join(f"{s}={n}" for s, n in counts.items() if n)
        return f"Report(name={self.name!r}, items: {filled or 'none'})"

    @property
    def sections(self) -> dict[str, int]:
        """Number of items per section."""
        return {s: sum(i.section == s for i in self._items) for s in SECTIONS}

    def _unique_slug(self, section: str, title: str | None, fallback: str) -> str:
        base = f"{section}-{render.slugify(title or fallback)}"
        slug, n = base, 2
        while slug in self._slugs:
            slug, n = f"{base}-{n}", n + 1
        self._slugs.add(slug)
        return slug

    def add(self, item: Any, *, section: str = "summary", title: str | None = None,
            caption: str | None = None, plots: str | Sequence[str] | None = None,
            max_rows: int = 20, plot_options: Mapping[str, Any] | None = None,
            frame_options: Mapping[str, Any] | None = None,
            data: pd.DataFrame | None = None, view: bool | None = None) -> Report:
        """Add ``item`` to ``section`` (a key of ``SECTIONS``); returns the report.

        ``item``: an analysis result (``to_frame``, ``plot``, ``PLOTS``), a matplotlib
        ``Figure``, a ``pandas.DataFrame`` or a ``str`` (a paragraph; HTML is escaped).
        ``plots``: the result's plot kinds to draw (default: its first kind; ``"all"``: every
        kind). ``max_rows``: rows of a table shown in the HTML (the CSV in ``data/`` has all).
        ``plot_options`` / ``frame_options``: keyword arguments for the result's ``plot`` and
        ``to_frame`` (e.g. ``{"text_id": 2}``), so the CSV holds exactly the data of the figure.
        ``data``: the table behind the figure when it is not ``to_frame()`` (e.g. a rollout
        row); written to ``data/`` instead. ``view``: embed the result's interactive
        ``view_html()`` (default: when it has one).
        """
        _check_section(section)
        if section == "provenance":
            raise ValueError("the provenance section is generated from the manifest; add "
                             "models with add_model() and datasets with add_dataset()")
        positive_int(max_rows, "max_rows")
        from matplotlib.figure import Figure

        if _is_result(item):
            kinds = tuple(item.PLOTS)
            if plots is None:
                chosen = kinds[:1]
            elif plots == "all":
                chosen = kinds
            else:
                chosen = (plots,) if isinstance(plots, str) else tuple(plots)
                unknown = [k for k in chosen if k not in item.PLOTS]
                if unknown:
                    raise ValueError(f"unknown plot kind(s) {', '.join(map(repr, unknown))} for "
                                     f"{type(item).__name__}; valid: {', '.join(kinds)} or 'all'")
            fallback = type(item).__name__
            has_view = callable(getattr(item, "view_html", None))
            if view and not has_view:
                raise ValueError(f"{type(item).__name__} has no interactive view (view_html); "
                                 f"pass view=None or False")
            entry = _Item("result", section, "", title, caption, item, chosen, max_rows,
                          dict(plot_options or {}), dict(frame_options or {}),
                          has_view if view is None else bool(view))
            if data is not None:
                if not isinstance(data, pd.DataFrame):
                    raise TypeError(f"data= takes a pandas DataFrame, got {type(data).__name__}")
                if frame_options:
                    raise TypeError("pass either data= or frame_options=, not both")
                entry.data = data
        elif isinstance(item, Figure):
            fallback, entry = "figure", _Item("figure", section, "", title, caption, item)
        elif isinstance(item, pd.DataFrame):
            fallback = "table"
            entry = _Item("table", section, "", title, caption, item, (), max_rows)
        elif isinstance(item, str):
            fallback, entry = "text", _Item("text", section, "", title, caption, item)
        else:
            raise TypeError(f"Report.add takes an analysis result, a matplotlib Figure, a pandas "
                            f"DataFrame or a str, got {type(item).__name__}")
        if entry.kind != "result" and (plots is not None or plot_options or frame_options
                                       or view or data is not None):
            raise TypeError(f"plots=, plot_options=, frame_options=, data= and view= apply to "
                            f"analysis results, not to a {entry.kind}")
        entry.slug = self._unique_slug(section, title, fallback)
        self._items.append(entry)
        self._skipped.pop(section, None)
        return self

    def add_html(self, markup: str, *, section: str, title: str | None = None,
                 caption: str | None = None) -> Report:
        """Add trusted, self-contained HTML (e.g. an interactive view produced by ``explain``).

        The markup is inserted as is: it must not come from user input. It must not reference
        external URLs (checked: ``ValueError`` otherwise)."""
        _check_section(section)
        render.check_offline(markup, "add_html markup")
        entry = _Item("html", section, "", title, caption, markup)
        entry.slug = self._unique_slug(section, title, "view")
        self._items.append(entry)
        self._skipped.pop(section, None)
        return self

    def skip(self, section: str, reason: str) -> Report:
        """Record why ``section`` has no content (shown instead of the section)."""
        _check_section(section)
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("skip() needs a reason, e.g. report.skip('fairness', 'the data has "
                             "no sensitive column')")
        if any(i.section == section for i in self._items):
            raise ValueError(f"section {section!r} already has content; skip() is for sections "
                             f"that have none")
        self._skipped[section] = reason.strip()
        return self

    def add_model(self, loaded: Any, *, role: str | None = None) -> Report:
        """Record a model (``LoadedModel``): its provenance and model card go into the summary
        and the manifest."""
        provenance = dict(getattr(loaded, "provenance", {}) or {})
        if not provenance and not hasattr(loaded, "task"):
            raise TypeError(f"add_model takes an explain.LoadedModel, got {type(loaded).__name__}")
        record = {
            "name": str(getattr(loaded, "name", provenance.get("name", "model"))),
            "role": role,
            "task": getattr(loaded, "task", None),
            "label_names": list(getattr(loaded, "label_names", None) or []),
            "provenance": jsonable(provenance),
            "card": jsonable(dict(getattr(loaded, "card", {}) or {})),
        }
        self._models.append(record)
        return self

    def add_dataset(self, name: str, frame: pd.DataFrame, *, source: str | None = None,
                    licence: str | None = None, description: str | None = None,
                    caveat: str | None = None) -> Report:
        """Record a dataset: rows, columns, SHA-256 of its content, source and licence.
        ``caveat``: what the way the data was collected means for its analyses (shown with its
        licence among the caveats)."""
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"add_dataset takes a pandas DataFrame, got {type(frame).__name__}")
        self._datasets.append(_Dataset(str(name), len(frame), [str(c) for c in frame.columns],
                                       frame_sha256(frame), source, licence, description, caveat))
        return self

    @property
    def last_id(self) -> str:
        """The id of the item added last: its anchor in the page and the stem of its files
        (``data/<id>.csv``, ``figures/<id>.png``); for ``sources=`` of findings and metrics."""
        if not self._items:
            raise ValueError("the report has no items yet; add one before asking for its id")
        return self._items[-1].slug

    def _check_sources(self, sources: str | Sequence[str]) -> list[str]:
        sources = [sources] if isinstance(sources, str) else list(sources)
        known = {i.slug for i in self._items}
        unknown = [s for s in sources if s not in known]
        if unknown:
            raise ValueError(f"unknown source item(s) {', '.join(map(repr, unknown))}; pass ids "
                             f"of items already added (report.last_id after report.add)")
        return sources

    def add_finding(self, text: str, *, sources: str | Sequence[str] = (),
                    kind: str | None = None, part: str | None = None) -> Report:
        """A plain-language finding for the summary (one sentence or two).

        ``sources``: ids of the items whose tables the sentence is computed from (linked from
        the page, listed in the manifest, so every number can be checked against
        ``data/<id>.csv``). ``kind``: what the finding summarises (e.g. ``"scorecard"``),
        recorded in the manifest. ``part``: the part of the report it belongs to (e.g. one
        model's); the summary groups cards and findings by part."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a finding is a non-empty sentence")
        self._findings.append({"text": text.strip(), "kind": kind, "part": part,
                               "sources": self._check_sources(sources)})
        return self

    def add_metric(self, name: str, value: Any, *, note: str | None = None,
                   percent: bool = False, sources: str | Sequence[str] = (),
                   kind: str | None = None, part: str | None = None) -> Report:
        """A headline number for the summary (``value`` is shown to 4 significant digits, or as
        a percentage with ``percent=True``, and kept exactly in the manifest and in the page's
        ``data-value``; a ``str`` such as ``"6 of 6"`` is shown as is). ``sources``, ``kind``
        and ``part``: as for ``add_finding``."""
        self._metrics.append({"name": str(name), "value": jsonable(value), "note": note,
                              "percent": bool(percent), "kind": kind, "part": part,
                              "sources": self._check_sources(sources)})
        return self

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage of the report (analyses, rendering); recorded in the manifest."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._timings[name] = self._timings.get(name, 0.0) + time.perf_counter() - start

    def record_timing(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to stage ``name`` (for stages timed outside ``stage()``)."""
        self._timings[name] = self._timings.get(name, 0.0) + float(seconds)

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per stage so far."""
        return dict(self._timings)

    # ----------------------------------------------------------------------- rendering

    def _render(self, *, inline: bool = True) -> _Rendered:
        rendered = _Rendered(blocks={s: [] for s in SECTIONS})
        for item in self._items:
            try:
                block = render.item_block(item, rendered)
            except Exception as error:
                error.add_note(f"while rendering report item {item.slug!r} "
                               f"({item.kind} in section {item.section!r})")
                raise
            rendered.blocks[item.section].append(block)
            if item.title:
                rendered.titles.setdefault(item.section, []).append((item.slug, item.title))
        return rendered

    def manifest(self, *, run: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The manifest as a dict (what ``save`` writes to ``manifest.json``)."""
        analyses = []
        for item in self._items:
            record = {"id": item.slug, "section": item.section, "kind": item.kind,
                      "title": item.title}
            if item.kind == "result":
                meta = getattr(item.payload, "meta", {}) or {}
                record.update({
                    "type": type(item.payload).__name__,
                    "method": jsonable(meta.get("method")),
                    "parameters": jsonable(meta.get("parameters", {})),
                    "seed": jsonable(meta.get("seed")),
                    "model": jsonable((meta.get("model") or {}).get("name")),
                    "model_weights_sha256": jsonable(
                        (meta.get("model") or {}).get("weights_sha256")),
                    "plots": list(item.plots),
                    "plot_options": jsonable(item.plot_options),
                    "frame_options": jsonable(item.frame_options),
                })
            analyses.append(record)
        models = list(self._models)
        known = {(m["provenance"].get("name"), m["provenance"].get("weights_sha256"))
                 for m in models}
        for item in self._items:
            meta = getattr(item.payload, "meta", None) if item.kind == "result" else None
            model = (meta or {}).get("model") or {}
            key = (model.get("name"), model.get("weights_sha256"))
            if model and key not in known:
                known.add(key)
                models.append({"name": str(model.get("name")), "role": None, "task": None,
                               "label_names": [], "provenance": jsonable(model), "card": {}})
        return {
            "report": {"name": self.name, "title": self.title, "format_version": 1},
            "seed": self.seed,
            "config": jsonable(self.config),
            "versions": versions(),
            "models": models,
            "datasets": [jsonable(d.__dict__) for d in self._datasets],
            "analyses": analyses,
            "skipped": dict(self._skipped),
            "findings": [dict(f) for f in self._findings],
            "metrics": [{k: v for k, v in m.items() if k != "percent"} for m in self._metrics],
            "run": dict(run or {}),
        }

    def _caveats(self) -> list[tuple[str, str]]:
        notes = [(section.title, section.caveat) for section in SECTIONS.values()
                 if section.caveat and any(i.section == section.key for i in self._items)]
        for dataset in self._datasets:
            notes.append((f"Data: {dataset.name}",
                          f"Licence: {dataset.licence or 'not stated by the source'}. "
                          f"Source: {dataset.source or 'not recorded'}."
                          + (f" {dataset.caveat}" if dataset.caveat else "")))
        return notes

    def view(self) -> render.ReportView:
        """A frozen snapshot of what the page shows besides the items (what ``render`` reads)."""
        def frozen(entries):
            return tuple(MappingProxyType(copy.deepcopy(dict(e))) for e in entries)

        return render.ReportView(
            name=self.name, title=self.title, seed=self.seed, description=self.description,
            metrics=frozen(self._metrics), findings=frozen(self._findings),
            models=frozen(self._models), datasets=frozen(d.__dict__ for d in self._datasets),
            skipped=MappingProxyType(dict(self._skipped)), caveats=tuple(self._caveats()))

    def to_html(self, *, created: str | None = None, standalone: bool = True,
                _rendered: _Rendered | None = None, _manifest: dict | None = None) -> str:
        """The report as HTML: a full document (``standalone``) or a fragment for notebooks."""
        rendered = _rendered if _rendered is not None else self._render()
        manifest = _manifest if _manifest is not None else self.manifest()
        return render.document(self.view(), rendered, manifest, created=created, standalone=standalone)

    def _repr_html_(self) -> str:
        return self.to_html(standalone=False)

    # -------------------------------------------------------------------------- saving

    def save(self, directory: str | os.PathLike | None = None, *, overwrite: bool = False,
             formats: Sequence[str] = ("png",), folder: str | None = None) -> Path:
        """Write the report to ``<directory>/<name>/`` (``directory`` defaults to ``reports``;
        ``folder``: another name for that last directory) and return that path.

        ``formats``: figure formats (keys of ``FORMATS``); PNG is always written. The report is
        built in a temporary sibling directory and renamed into place, so a failure never leaves
        a half-written report. An existing report is replaced only with ``overwrite=True``.
        """
        formats = ("png", *sorted(set(plotting.figure_formats(formats or "png")) - {"png"},
                                  key=list(FORMATS).index))
        if folder is not None and (not isinstance(folder, str) or not folder
                                   or Path(folder).name != folder or folder in (".", "..")):
            raise ValueError(f"folder={folder!r} is not a directory name; pass a plain name "
                             f"such as 'audit-2026' (the parent is the directory argument)")
        target = (Path("reports" if directory is None else directory).expanduser()
                  / (self.name if folder is None else folder))
        with staged_directory(target, overwrite=overwrite, what="report") as staging:
            self._write(staging, formats)
        return target

    def _write(self, staging: Path, formats: tuple[str, ...]) -> None:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        rendered = self._render()
        timings["render"] = time.perf_counter() - start
        timings.update(rendered.seconds)  # the part of "render" spent on each

        start = time.perf_counter()
        (staging / "figures").mkdir()
        for stem, png in rendered.figures.items():
            (staging / "figures" / f"{stem}.png").write_bytes(png)
            others = [f for f in formats if f != "png"]
            if others:
                plotting.save_figure(rendered.figure_objects[stem], staging / "figures" / stem,
                                     formats=others)
        timings["write_figures"] = time.perf_counter() - start

        start = time.perf_counter()
        (staging / "data").mkdir()
        for stem, frame in rendered.tables.items():
            write_csv(frame, staging / "data" / f"{stem}.csv", lineterminator="\n")
        timings["write_data"] = time.perf_counter() - start

        created = created_time()
        manifest = self.manifest()
        start = time.perf_counter()
        page = self.to_html(created=created, _rendered=rendered, _manifest=manifest)
        (staging / "index.html").write_text(page, encoding="utf-8")
        timings["write_html"] = time.perf_counter() - start

        stages = {**{k: round(v, 4) for k, v in self._timings.items()},
                  **{f"report.{k}": round(v, 4) for k, v in timings.items()}}
        manifest["run"] = {"created": created, "timings_seconds": stages}
        (staging / "manifest.json").write_text(
            json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8")

