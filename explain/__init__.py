"""explain: interpretability and fairness analysis for PyTorch and Hugging Face models.

Concepts, each with one home:

* ``explain.load_model`` / ``LoadedModel`` (``explain.loading``): a model with its tokenizer or
  feature names, labels and provenance;
* ``explain.hooks``: every hook, inside context managers that always clean up;
* ``explain.datasets``: the offline datasets;
* one module per analysis, each with one function and one result type;
* ``explain.plotting``: figure helpers; ``explain.cli``: the command line over the public API.
"""

from __future__ import annotations

from . import hooks
from .attention import AttentionResult, attention
from .attribution import METHODS, AttributionResult, attribute, scorecard
from .errors import ExplainWarning
from .fairness import (
    audit,
    counterfactual,
    crows_pairs,
    representation_probe,
    seat,
    stereoset,
    weat,
)
from .loading import TASKS, LoadedModel, load_model, save_model
from .report import Report

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022 - grouped by concept, in the order of the docs
    # loading and hooks
    "TASKS", "ExplainWarning", "LoadedModel", "hooks", "load_model", "save_model",
    # attention
    "AttentionResult", "attention",
    # attributions
    "METHODS", "AttributionResult", "attribute", "scorecard",
    # fairness and bias probes
    "audit", "counterfactual", "crows_pairs", "representation_probe", "seat", "stereoset", "weat",
    # reports
    "Report",
    "__version__",
]
