"""Build a report from a model and a dataset by running every registered analysis that applies.

``build_report`` is what ``explain report --model ... --data ...`` calls: it loads the data,
makes one frozen ``Context`` and runs the analyses of ``ANALYSES`` in order; an analysis that
does not apply gets its reason shown in its section instead. (The demo, two models in one
report, is ``explain.cli._demo.build_demo``.)
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..checks import check_columns, positive_int
from ..errors import ExplainWarning
from ..loading import LoadedModel, as_loaded
from ..text import read_texts
from .analyses import ANALYSES
from .core import Report
from .data import load_data
from .protocol import Context

__all__ = ["build_report", "finish_sections", "load_data"]


def _loaded(model: Any) -> LoadedModel:
    """``model`` as a ``LoadedModel`` (``explain.loading.as_loaded``: a reference-model name is
    refused with how to load it; ``explain report --model NAME`` does that for you)."""
    if not isinstance(model, (str, os.PathLike, LoadedModel)) and not hasattr(model, "forward"):
        raise TypeError(f"model must be a LoadedModel or what explain.load_model reads (a "
                        f"checkpoint directory, a Hub id, an nn.Module), got "
                        f"{type(model).__name__}")
    return as_loaded(model, analysis="build_report")


# ------------------------------------------------------------------------ progress

# advice to a programmer ("pass n_samples=40 or more", "use method='saliency'") starts a clause
_ADVICE = re.compile(r"(?:pass|use|call|set|give|load|install)\b", re.IGNORECASE)


def for_readers(message: str) -> str:
    """A warning as the report shows it: what happened, without the advice to the programmer
    (clauses that start with "pass", "use", ... : the caller still gets the full warning), and
    ``name=value`` written as words ("threshold 0.5")."""
    clauses = [c for c in re.split(r"(?<=[;.:])\s+", message.strip()) if c]
    kept = [c for c in clauses if not _ADVICE.match(c)] or clauses[:1]
    text = " ".join(kept).rstrip(";:,. ") + "."
    return re.sub(r"\b([a-z][a-z0-9_]*)=", lambda m: m.group(1).replace("_", " ") + " ", text)



@dataclass
class _Progress:
    total: int
    quiet: bool
    desc: str
    bar: Any = None
    warned: list[str] = field(default_factory=list)  # ExplainWarnings raised by the analyses

    def __post_init__(self):
        if not self.quiet:
            from ..progress import tqdm_class

            tqdm = tqdm_class()

            self.bar = tqdm(total=self.total, desc=self.desc, file=sys.stderr, unit="stage",
                            leave=True, dynamic_ncols=True)

    @contextlib.contextmanager
    def stage(self, report: Report, name: str) -> Iterator[None]:
        if self.bar is not None:
            self.bar.set_postfix_str(name, refresh=True)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ExplainWarning)
            try:
                yield
            finally:
                # the key is made at the end: the part's name is known once its model is loaded
                report.record_timing(f"{self.desc}.{name}", time.perf_counter() - start)
        for item in caught:  # into the report, and on to the caller as usual
            if issubclass(item.category, ExplainWarning):
                text = f"{self.desc}, {name}: {for_readers(str(item.message))}"
                if text not in self.warned:
                    self.warned.append(text)
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
        if self.bar is not None:
            self.bar.update(1)

    def rename(self, desc: str):
        self.desc = desc
        if self.bar is not None:
            self.bar.set_description(desc, refresh=True)

    def advance(self):
        """Count a stage that was not run (its reason goes into the report)."""
        if self.bar is not None:
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.set_postfix_str("done", refresh=True)
            self.bar.close()


def finish_sections(report: Report, notes: Mapping[str, Sequence[str]]) -> None:
    """Turn the reasons analyses were not run into skip notes (empty sections) or short notes
    at the end of sections that have other content."""
    counts = report.sections
    for section, reasons in notes.items():
        if not reasons:
            continue
        if counts.get(section):
            for reason in reasons:
                report.add(f"Not run: {reason}", section=section)
        else:
            report.skip(section, "; ".join(r.rstrip(".") for r in reasons))



# ------------------------------------------------------------------------ the loop


def build_report(model: Any, data: Any = None, *, text_column: str | None = None,
                 label: str | None = None, sensitive: str | Sequence[str] | None = None,
                 decisions: Sequence[str] = (), name: str = "report", title: str | None = None,
                 n_examples: int = 8, max_rows: int | None = None, seed: int = 0,
                 analyses: Sequence[str] | None = None, quiet: bool = False,
                 report: Report | None = None, part: str | None = None,
                 notes: dict[str, list[str]] | None = None,
                 config: Mapping[str, Any] | None = None,
                 options: Mapping[str, Any] | None = None) -> Report:
    """Run the analyses of ``ANALYSES`` that apply to ``model`` on ``data`` and collect them.

    ``model``: a ``LoadedModel`` (or what ``explain.load_model`` reads); ``data``: see
    ``load_data``. ``text_column``: texts of a text model (default: the column the model card
    names for its held-out rows, else ``"text"``). ``label``: true
    classes; ``sensitive``: group column(s); ``decisions``: columns of existing decisions to
    audit beside the model (e.g. ``compas_high_risk``). ``n_examples``: examples selected for
    attention and attributions (``select_examples``). ``max_rows``: analyse a seeded random
    sample of this many rows. ``analyses``: names in ``ANALYSES`` (default all; they run in the
    registry's order). ``options``: passed to every analysis as ``context.options`` (for
    analyses registered from outside). ``report``/``part``/``notes``: add to an existing
    report, titles prefixed with ``part``, collecting the reasons analyses were not run in
    ``notes`` (then call ``finish_sections(report, notes)`` once). Returns the report (not
    saved).
    """
    analyses = list(ANALYSES) if analyses is None else list(analyses)
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown:
        raise ValueError(f"unknown analysis {', '.join(map(repr, unknown))}; valid: "
                         f"{', '.join(ANALYSES)}")
    positive_int(n_examples, "n_examples")
    if max_rows is not None:
        positive_int(max_rows, "max_rows")
    sensitive = [sensitive] if isinstance(sensitive, str) else list(sensitive or [])
    decisions = [decisions] if isinstance(decisions, str) else list(decisions)
    own = report is None
    if own:
        report = Report(name=name, title=title, seed=seed, config=config)
    if notes is None:
        if not own:
            raise TypeError("build_report(report=...) needs notes={} to collect skip reasons")
        notes = {}
    progress = _Progress(total=2 + len(analyses), quiet=quiet, desc=part or name)
    try:
        with progress.stage(report, "load model"):
            loaded = _loaded(model)
            if part is None:
                part = loaded.name
                progress.rename(part)
        with progress.stage(report, "load data"):
            source = load_data(data, model=loaded)
            frame = source.frame
            if len(frame) == 0:
                raise ValueError(f"the dataset {source.name!r} is empty: there is nothing to "
                                 f"analyse")
            is_text = loaded.is_text
            text_column = text_column or ((source.text_column or "text") if is_text else None)
            check_columns(frame, {"text": text_column if is_text else None, "label": label,
                                  "sensitive": sensitive or None,
                                  "decision": decisions or None}, where="the data")
            if is_text:  # before sampling, so the error's row positions are the file's
                read_texts(frame, text_column)
            if max_rows is not None and len(frame) > max_rows:
                frame = frame.sample(n=max_rows, random_state=seed).sort_index()
            frame = frame.reset_index(drop=True)
            report.add_model(loaded, role=part)
            report.add_dataset(source.name, frame, source=source.source, licence=source.licence,
                               description=f"{len(frame):,} rows analysed",
                               caveat=source.caveat)
        context = Context(report=report, model=loaded, data=frame, part=part,
                          text_column=text_column, label=label, sensitive=tuple(sensitive),
                          decisions=tuple(decisions), seed=seed, n_examples=n_examples,
                          rows=tuple(range(min(n_examples, len(frame)))),
                          options=dict(options or {}), progress=not quiet, notes=notes)
        for analysis in ANALYSES.values():
            if analysis.name not in analyses:
                continue
            reason = analysis.applies(context)
            if reason is not None:
                context.not_run(reason, section=analysis.section.key)
                progress.advance()
                continue
            with progress.stage(report, analysis.name):
                context = context.updated(analysis.run(context), by=analysis.name)
    finally:
        progress.close()
    if progress.warned:
        report.add("\n\n".join(progress.warned), section="caveats",
                   title=f"Warnings raised by the analyses of {part}")
    if own:
        finish_sections(report, notes)
    return report
