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

The names below are imported on first use (``explain.attribute`` imports torch, captum and
pandas the first time it is read), so ``import explain`` and ``explain --help`` stay fast; every
submodule is reachable as an attribute too (``explain.datasets``). ``explain.run`` and
``explain.attention`` are the functions, also once their packages are imported
(``import explain.run.store``, ``from explain.attention import graph``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what __getattr__ imports on first use, written out for readers and checkers
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

#: Submodule -> the public names of ``__all__`` it defines (the imports above, as data).
_HOMES = {
    "errors": ("ExplainWarning",),
    "loading": ("TASKS", "LoadedModel", "load_model", "save_model"),
    "families": ("Family", "register_family"),
    "attention": ("AttentionResult", "attention"),
    "attribution": ("METHODS", "AttributionResult", "MethodSpec", "attribute", "attribute_layer",
                    "register_method", "scorecard"),
    "fairness": ("audit", "counterfactual", "crows_pairs", "representation_probe", "seat",
                 "stereoset", "weat"),
    "report": ("Report",),
    "run": ("RUN_ANALYSES", "register_run_analysis", "run"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    """A public name or a submodule, imported the first time it is read."""
    if name in _HOME_OF:
        value = getattr(importlib.import_module(f"{__name__}.{_HOME_OF[name]}"), name)
    elif name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    else:
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise  # a dependency of that submodule is missing: say which
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    setattr(sys.modules[__name__], name, value)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Face(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the package explain/run/ (explain/attention/) binds it here as `run`
        # (`attention`): the import system does that for every subpackage. The face's `run`
        # (`attention`) is that package's function of the same name.
        if isinstance(value, types.ModuleType) and _HOME_OF.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Face
