"""Explanation reports: one self-contained, offline HTML file with every analysis, its data,
figures and provenance.

    report = explain.Report(name="my-model", title="Audit of my model", seed=0)
    report.add_model(loaded)
    report.add(attention_result, section="attention", title="Attention of example 1")
    report.skip("fairness", "the data has no sensitive column")
    path = report.save()        # reports/my-model/{index.html, figures/, data/, manifest.json}

``explain report`` (``explain.cli.report``) builds reports from a model and a dataset, or the
demo with no arguments (``explain.report.build``).
"""

from __future__ import annotations

from .core import FORMATS, SECTIONS, Report
from .examples import SELECTION_REASONS, select_examples
from .predictions import PredictionResult, predict

__all__ = ["FORMATS", "SECTIONS", "SELECTION_REASONS", "PredictionResult", "Report", "predict",
           "select_examples"]
