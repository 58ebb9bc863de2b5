"""The demo report of ``explain report`` with no arguments: the choice of models and its prose.

It lives at the edge, beside the command, because it names reference models (trained on first
use by their recipes, ``explain_models``), which the library never imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..report import Report, build_report, finish_sections
from ._resolve import resolve_model

__all__ = ["build_demo"]


def build_demo(*, name: str = "demo", n_examples: int = 6, seed: int = 0, quiet: bool = False,
               text_rows: int = 400, config: Mapping[str, Any] | None = None) -> Report:
    """The demo report: the reference sentiment model on ``text_rows`` held-out Rotten
    Tomatoes sentences (predictions, attention, attributions, counterfactual and SEAT probes)
    and the COMPAS audit (the reference classifier and COMPAS's own decisions)."""
    report = Report(
        name=name, seed=seed, config=config,
        title="Explanation report: a sentiment model and a recidivism audit",
        description="Two models explained side by side. A MiniLM sentence classifier fine-tuned "
                    "on Rotten Tomatoes review sentences (fresh or rotten): how accurate it is, "
                    "what its attention does, which words drive its decisions, and whether "
                    "identity terms move them. And a recidivism classifier trained on "
                    "ProPublica's COMPAS data, audited for group fairness next to COMPAS's own "
                    "risk decisions.")
    notes: dict[str, list[str]] = {}
    build_report(resolve_model("sentiment", progress=not quiet), None, text_column="text",
                 label="label", n_examples=n_examples, max_rows=text_rows, seed=seed,
                 quiet=quiet, report=report, notes=notes, part="Sentiment",
                 analyses=("predictions", "attention", "attributions", "counterfactual",
                           "association"))
    build_report(resolve_model("compas", progress=not quiet), None, label="two_year_recid",
                 sensitive=["race", "sex"], decisions=["compas_high_risk"],
                 n_examples=n_examples, seed=seed, quiet=quiet, report=report, notes=notes,
                 part="COMPAS",
                 analyses=("predictions", "attributions", "fairness", "representation"))
    finish_sections(report, notes)
    return report
