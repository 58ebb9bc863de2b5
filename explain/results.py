"""The surface every analysis result shares.

Each result type of `explain` (attention maps, attributions, fairness audits, probes) exposes:

* ``to_frame()``: a tidy ``pandas.DataFrame``, one row per observation, snake_case columns
  (each result's docstring lists them);
* ``plot(kind=..., ax=None)``: a ``matplotlib.figure.Figure`` (``PLOTS`` names the kinds);
* ``meta``: provenance (model, method, parameters, seed, library versions);
* ``_repr_html_()``: the notebook display (self-contained HTML, no network).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from .provenance import versions

__all__ = ["Result", "TableResult", "make_meta"]


def make_meta(loaded: Any, *, method: str, parameters: Mapping[str, Any],
              seed: int | None = None) -> dict[str, Any]:
    """Provenance for a result: the model's provenance, the method, its parameters, the seed."""
    model = dict(getattr(loaded, "provenance", {}) or {})
    return {"model": model, "method": method, "parameters": dict(parameters), "seed": seed,
            "versions": versions()}


class Result:
    """Base class of every analysis result. Subclasses define ``to_frame`` and ``plot``."""

    #: Plot kinds this result draws, name -> description. Subclasses override.
    PLOTS: Mapping[str, str] = {}
    meta: dict[str, Any]

    def to_frame(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def plot(self, kind: str | None = None, *, ax=None, **options):  # pragma: no cover
        raise NotImplementedError

    def _check_kind(self, kind: str | None) -> str:
        if kind is None:
            return next(iter(self.PLOTS))
        if kind not in self.PLOTS:
            raise ValueError(f"unknown plot kind {kind!r} for {type(self).__name__}; valid: "
                             f"{', '.join(self.PLOTS)}")
        return kind

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


class TableResult(Result):
    """A result that is one tidy table (``table``) plus its provenance (``meta``)."""

    def __init__(self, table, *, meta: dict[str, Any]) -> None:
        self.table = table
        self.meta = meta

    def to_frame(self):
        return self.table.copy()
