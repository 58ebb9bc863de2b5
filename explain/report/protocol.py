"""What a report analysis is: a frozen ``Analysis`` spec run on a frozen ``Context``.

``build_report`` makes one ``Context`` per model and data, then for each registered analysis
(``explain.report.ANALYSES``, in order) asks ``applies(context)``: ``None`` runs it, a reason
is shown in its section instead. ``run(context)`` adds items, findings and metrics to
``context.report``; it may return values that the analyses after it see in their context (the
predictions analysis returns the selected example ``rows``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .sections import Section

__all__ = ["Analysis", "Context"]

_CLASSIFIERS = ("sequence-classification", "tabular-classification")


@dataclass(frozen=True)
class Context:
    """The inputs of every analysis of one part of a report (read-only).

    ``report``: the ``Report`` to add to. ``model``: the ``LoadedModel``. ``data``: the rows
    analysed (index ``0..n-1``). ``part``: the prefix of titles, findings and metrics (the model's
    name, or e.g. ``"Sentiment"``). ``text_column``: the texts of a text model, else ``None``.
    ``label``: the column of true classes or ``None``. ``sensitive`` and ``decisions``: the
    sensitive columns and the columns of recorded decisions. ``seed``: of every random choice.
    ``n_examples``: examples to explain. ``rows``: positions of the selected examples in
    ``data`` (the first ``n_examples`` rows until the predictions analysis selects them).
    ``predictions``: the ``PredictionResult`` once the predictions analysis ran, else
    ``None``. ``options``: the ``options=`` of ``build_report`` (for analyses added from
    outside). ``progress``: whether the analyses may show progress bars.
    """

    report: Any
    model: Any
    data: Any
    part: str
    text_column: str | None = None
    label: str | None = None
    sensitive: tuple[str, ...] = ()
    decisions: tuple[str, ...] = ()
    seed: int = 0
    n_examples: int = 8
    rows: tuple[int, ...] = ()
    predictions: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)
    progress: bool = False
    # section -> reasons analyses (or parts of them) were not run; build_report shows them
    notes: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @property
    def is_text(self) -> bool:
        return bool(self.model.is_text)

    @property
    def is_classifier(self) -> bool:
        return self.model.task in _CLASSIFIERS

    def not_run(self, reason: str, *, section: str) -> None:
        """Record that part of an analysis was not run and why (``reason`` without the part's
        name: it is prefixed)."""
        self.notes.setdefault(section, []).append(f"{self.part}: {reason}")

    def updated(self, values: Mapping[str, Any] | None, *, by: str) -> Context:
        """A copy with ``values`` (what analysis ``by`` returned) replacing fields."""
        if not values:
            return self
        names = {f.name for f in dataclasses.fields(self)} - {"report", "notes"}
        unknown = sorted(set(values) - names)
        if unknown:
            raise TypeError(f"analysis {by!r} returned {', '.join(map(repr, unknown))}, which "
                            f"is not a field of the report context; return a mapping of "
                            f"fields to replace ({', '.join(sorted(names))}) or None")
        return dataclasses.replace(self, **values)


def always(context: Context) -> None:
    """``applies`` of an analysis that applies to every model and data."""
    return None


@dataclass(frozen=True)
class Analysis:
    """A report analysis.

    ``name``: its key in ``ANALYSES`` (``build_report(analyses=[...])``). ``description``: what
    it adds (one line). ``section``: the ``Section`` its items go in (registered with it).
    ``run(context)``: add to ``context.report``; may return a mapping of ``Context`` fields for
    the analyses after it. ``applies(context)``: ``None`` when it applies, else the reason it
    does not (shown in its section, e.g. ``"group metrics need a sensitive column"``).
    """

    name: str
    description: str
    section: Section
    run: Callable[[Context], Mapping[str, Any] | None]
    applies: Callable[[Context], str | None] = always

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"invalid analysis name {self.name!r}: use letters, digits and '_' "
                             f"(it is a key of analyses=[...]), e.g. 'row_count'")
        if not isinstance(self.section, Section):
            raise TypeError(f"analysis {self.name!r}: section must be an explain.report.Section, "
                            f"got {type(self.section).__name__}; e.g. "
                            f"explain.report.SECTIONS['fairness']")
        for what in ("run", "applies"):
            if not callable(getattr(self, what)):
                raise TypeError(f"analysis {self.name!r}: {what} must be callable with the "
                                f"report context")
