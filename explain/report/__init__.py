"""Explanation reports: one self-contained, offline HTML file with every analysis, its data,
figures and provenance.

    report = explain.Report(name="my-model", title="Audit of my model", seed=0)
    report.add_model(loaded)
    report.add(attention_result, section="attention", title="Attention of example 1")
    report.skip("fairness", "the data has no sensitive column")
    path = report.save()        # reports/my-model/{index.html, figures/, data/, manifest.json}

``build_report(model, data, ...)`` runs every analysis of ``ANALYSES`` that applies and
collects the results; ``build_demo()`` is the demo. ``explain report`` (``explain.cli.report``)
wraps both: flags or a TOML file, the demo with no arguments.
"""

from __future__ import annotations

from ..text import read_texts
from .build import ANALYSES, DATASETS, build_demo, build_report
from .core import FORMATS, SECTIONS, Report
from .examples import SELECTION_REASONS, select_examples
from .predictions import PredictionResult, predict

__all__ = ["ANALYSES", "DATASETS", "FORMATS", "SECTIONS", "SELECTION_REASONS", "PredictionResult",
           "Report", "build_demo", "build_report", "predict", "read_texts", "select_examples"]
