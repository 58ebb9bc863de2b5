"""The surface and the behaviour every analysis result shares.

Each result type of `explain` (attention maps, attributions, fairness audits, probes) exposes:

* ``to_frame()``: a tidy ``pandas.DataFrame``, one row per observation, snake_case columns
  (each result's docstring lists them); ``tables()``: every table it holds, by name;
* ``plot(kind=None, *, ax=None, **options)``: a ``matplotlib.figure.Figure`` (``PLOTS`` names
  the kinds, the first is the default; ``PLOT_OPTIONS`` the options of each kind; an unknown
  kind or option raises); ``applicable_plots()``: the kinds this result can draw;
* ``meta``: provenance (model, method, parameters, seed, library versions), read-only;
* ``export(directory)``: tables as CSV, each applicable plot, and ``meta.json``, atomically;
* ``_repr_html_()``: the notebook display (self-contained HTML, no network).

A subclass defines ``PLOTS``, ``PLOT_OPTIONS``, ``to_frame()`` and ``_plot(kind, *, ax,
**options)``, and calls ``self._freeze()`` at the end of ``__init__``: afterwards its
attributes cannot be set and ``meta`` is a read-only mapping.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .provenance import versions

__all__ = ["FrozenMeta", "Result", "TableResult", "csv_safe", "make_meta", "meta_json",
           "write_csv"]

#: Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# after a leading + or -, only arithmetic on numbers (harmless, and how dashes and signed
# numbers look: "-", "--", "-0.5", "+3%"); anything else (a name, a call, "|") may be a formula
_ARITHMETIC = re.compile(r"^[\d\s.,+\-*/%eE]*$")


def _neutralised(value: Any) -> Any:
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    if value[0] in "+-" and _ARITHMETIC.match(value[1:]):
        return value
    return "'" + value


def csv_safe(frame):
    """``frame`` with every text cell that a spreadsheet would run as a formula (starting with
    ``=``, ``@``, a tab or a carriage return, or with ``+`` / ``-`` followed by more than
    arithmetic on numbers: ``-0.5`` and a dash stay as they are) prefixed by ``'``, the OWASP
    advice; numbers and other cells unchanged. The column
    names are treated the same way."""
    text = [c for c in frame.columns if frame[c].dtype == object or
            str(frame[c].dtype) in ("string", "str", "category")]
    renamed = {c: _neutralised(c) for c in frame.columns if _neutralised(c) != c}
    if not renamed and not any(frame[c].astype(str).str.startswith(FORMULA_STARTS).any()
                               for c in text):
        return frame
    out = frame.copy()
    for column in text:
        out[column] = out[column].map(_neutralised, na_action="ignore")
    return out.rename(columns=renamed)


def write_csv(frame, path: str | os.PathLike, **options) -> None:
    """Write ``frame`` as CSV without its index, formula-leading cells neutralised
    (``csv_safe``): every CSV explain writes goes through this."""
    csv_safe(frame).to_csv(path, index=False, **options)


def make_meta(loaded: Any, *, method: str, parameters: Mapping[str, Any],
              seed: int | None = None) -> dict[str, Any]:
    """Provenance for a result: the model's provenance, the method, its parameters, the seed."""
    model = dict(getattr(loaded, "provenance", {}) or {})
    return {"model": model, "method": method, "parameters": dict(parameters), "seed": seed,
            "versions": versions()}


class FrozenMeta(dict):
    """A read-only ``dict`` (nested dicts are frozen too): a result's ``meta`` after
    construction. It is still a ``dict`` for ``json`` and ``pandas``; ``dict(meta)`` is a
    mutable copy."""

    def __init__(self, mapping: Mapping[str, Any] = ()) -> None:
        super().__init__((key, FrozenMeta(value) if isinstance(value, Mapping) else value)
                         for key, value in dict(mapping).items())

    def _refuse(self, *_args, **_kwargs):
        raise TypeError("a result's meta is read-only after construction; copy it first "
                        "(dict(result.meta)) to change it")

    __setitem__ = __delitem__ = _refuse
    clear = pop = popitem = setdefault = update = __ior__ = _refuse  # type: ignore[assignment]

    def __reduce__(self):
        return (FrozenMeta, (dict(self),))


class Result:
    """Base class of every analysis result (see the module docstring for the protocol)."""

    #: Plot kinds this result draws, name -> description; the first is the default.
    PLOTS: Mapping[str, str] = {}
    #: Plot kind -> the keyword options it accepts besides ``ax``.
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = {}
    meta: Mapping[str, Any]

    def to_frame(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _plot(self, kind: str, *, ax=None, **options):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} defines no _plot")

    def plot(self, kind: str | None = None, *, ax=None, **options):
        """Draw ``kind`` (default: the first of ``PLOTS``) and return its ``Figure``; into
        ``ax`` when given. An unknown kind is a ``ValueError``, an option that ``kind`` does not
        take (``PLOT_OPTIONS``) a ``TypeError`` naming it and the valid ones."""
        kind = self._check_kind(kind)
        valid = tuple(self.PLOT_OPTIONS.get(kind, ()))
        unknown = [name for name in options if name not in valid]
        if unknown:
            raise TypeError(f"{type(self).__name__}.plot({kind!r}) got unknown option(s) "
                            f"{', '.join(map(repr, unknown))}; valid: "
                            f"{', '.join(('ax', *valid))}")
        return self._plot(kind, ax=ax, **options)

    def _check_kind(self, kind: str | None) -> str:
        if kind is None:
            return next(iter(self.PLOTS))
        if kind not in self.PLOTS:
            raise ValueError(f"unknown plot kind {kind!r} for {type(self).__name__}; valid: "
                             f"{', '.join(self.PLOTS)}")
        return kind

    def tables(self) -> dict[str, Any]:
        """Every table of this result, name -> ``DataFrame`` (default: ``to_frame()`` as
        ``"results"``); ``export`` writes each as ``<name>.csv``."""
        return {"results": self.to_frame()}

    def applicable_plots(self) -> tuple[str, ...]:
        """The plot kinds this result can draw (default: all of ``PLOTS``), in order."""
        return tuple(self.PLOTS)

    def export(self, directory: str | os.PathLike, *, formats: tuple[str, ...] = ("png",),
               overwrite: bool = False) -> Path:
        """Write ``<table>.csv`` for each of ``tables()``, ``<kind>.<format>`` for each of
        ``applicable_plots()`` and ``meta.json`` into ``directory``, atomically (through
        ``explain.staging.staged_directory``: an error leaves no half-written directory; an
        existing one is a ``FileExistsError`` unless ``overwrite``). Returns the directory."""
        from .plotting import figure_formats, save_figure
        from .staging import staged_directory

        formats = figure_formats(formats)
        target = Path(directory).expanduser()
        with staged_directory(target, overwrite=overwrite, what="result") as staging:
            for name, table in self.tables().items():
                write_csv(table, staging / f"{name}.csv")
            for kind in self.applicable_plots():
                save_figure(self.plot(kind), staging / kind, formats=formats)
            (staging / "meta.json").write_text(meta_json(self.meta), encoding="utf-8")
        return target

    def _freeze(self) -> None:
        """End of construction: ``meta`` becomes read-only and attributes can no longer be set."""
        if hasattr(self, "meta"):
            object.__setattr__(self, "meta", FrozenMeta(self.meta))
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"{type(self).__name__} is immutable after construction; "
                                 f"cannot set {name!r} (build a new result instead)")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"{type(self).__name__} is immutable after construction; "
                                 f"cannot delete {name!r}")
        object.__delattr__(self, name)

    def summary(self) -> str:
        """One line saying what this result holds (overridden by results that know better)."""
        return f"{type(self).__name__} ({self.meta.get('method', '')})"

    def _repr_html_(self) -> str:
        from .plotting import figure_data_uri

        fig = self.plot()
        frame = self.to_frame()
        table = frame.head(10).to_html(index=False, border=0, classes="explain-table",
                                       float_format=lambda v: f"{v:.4g}")
        return (
            "<div class='explain-result'>"
            f"<p><strong>{html.escape(self.summary())}</strong></p>"
            f"<img alt='{html.escape(type(self).__name__)} figure' style='max-width:100%' "
            f"src='{figure_data_uri(fig)}'/>"
            f"<details><summary>first rows of to_frame() ({len(frame)} rows)</summary>{table}"
            "</details></div>"
        )


def meta_json(meta: Mapping[str, Any]) -> str:
    """``meta`` as the text of ``meta.json`` (sorted keys, indented; other values as ``str``)."""
    return json.dumps(meta, indent=2, sort_keys=True, default=str)


class TableResult(Result):
    """A result that is one tidy table (``table``) plus its provenance (``meta``).

    A subclass without its own ``__init__`` is frozen by this one; a subclass with one calls
    ``self._freeze()`` at its end."""

    def __init__(self, table, *, meta: Mapping[str, Any]) -> None:
        self.table = table
        self.meta = meta
        if type(self).__init__ is TableResult.__init__:
            self._freeze()

    def to_frame(self):
        return self.table.copy()
