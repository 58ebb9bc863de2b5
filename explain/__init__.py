"""explain: interpretability and fairness analysis for PyTorch and Hugging Face models.

Concepts, each with one home:

* ``explain.load_model`` / ``LoadedModel`` (``explain.loading``): a model with its tokenizer or
  feature names, labels and provenance;
* ``explain.hooks``: every hook, inside context managers that always clean up;
* ``explain.datasets``: the offline datasets;
* ``explain.families``: what the code knows about each architecture (``register_family``);
* one package per analysis (``attention``, ``attribution``, ``fairness``), each function with
  its result type; attribution methods are specs (``register_method``);
* ``explain.report``: the report, its analyses as specs (``register_analysis``);
* ``explain.run``: one analysis over a whole dataset in resumable Parquet shards, its analyses
  as specs (``RUN_ANALYSES``, ``register_run_analysis``);
* ``explain.plotting``: figure helpers; ``explain.cli``: the command line over the public API.
"""

from __future__ import annotations

from . import families, hooks
from .attention import AttentionResult, attention
from .attribution import (
    METHODS,
    AttributionResult,
    MethodSpec,
    attribute,
    attribute_layer,
    register_method,
    scorecard,
)
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
from .families import Family, register_family
from .loading import TASKS, LoadedModel, load_model, save_model
from .report import Report
from .run import RUN_ANALYSES, register_run_analysis, run

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022 - grouped by concept, in the order of the docs
    # loading and hooks
    "TASKS", "ExplainWarning", "LoadedModel", "hooks", "load_model", "save_model",
    # model families
    "Family", "families", "register_family",
    # attention
    "AttentionResult", "attention",
    # attributions
    "METHODS", "AttributionResult", "MethodSpec", "attribute", "attribute_layer",
    "register_method", "scorecard",
    # fairness and bias probes
    "audit", "counterfactual", "crows_pairs", "representation_probe", "seat", "stereoset", "weat",
    # reports and dataset-scale runs
    "Report", "RUN_ANALYSES", "register_run_analysis", "run",
    "__version__",
]
