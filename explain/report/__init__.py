"""Explanation reports: one self-contained, offline HTML file with every analysis, its data,
figures and provenance.

    report = explain.Report(name="my-model", title="Audit of my model", seed=0)
    report.add_model(loaded)
    report.add(attention_result, section="attention", title="Attention of example 1")
    report.skip("fairness", "the data has no sensitive column")
    path = report.save()        # reports/my-model/{index.html, figures/, data/, manifest.json}

``build_report(loaded, data, ...)`` runs every analysis of ``ANALYSES`` that applies and
collects the results. An analysis is an ``Analysis`` spec (name, ``Section``, ``applies``,
``run`` on a frozen ``Context``); ``register_analysis`` adds one from outside the package.
``explain report`` (``explain.cli.report``) wraps ``build_report``; with no arguments it builds
the demo (``explain.cli._demo``). ``report_from_run`` (``explain report --from DIR``) builds one
from finished ``explain run`` directories, over all their rows.
"""

from __future__ import annotations

from ..datasets import DATASETS
from ..text import read_texts
from .analyses import ANALYSES, register_analysis
from .build import build_report, finish_sections
from .core import FORMATS, Report
from .data import DataSource, load_data
from .examples import SELECTION_REASONS, select_examples
from .from_run import report_from_run
from .predictions import PredictionResult, predict
from .protocol import Analysis, Context
from .sections import SECTIONS, Section, register_section

__all__ = ["ANALYSES", "DATASETS", "FORMATS", "SECTIONS", "SELECTION_REASONS", "Analysis",
           "Context", "DataSource", "PredictionResult", "Report", "Section", "build_report",
           "finish_sections", "load_data", "predict", "read_texts", "register_analysis",
           "register_section", "report_from_run", "select_examples"]
