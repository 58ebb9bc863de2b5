"""Attributions: which inputs made the model say this.

``attribute(model, inputs, method=...)`` runs one of ``METHODS`` (all through Captum; options in
``METHOD_OPTIONS``) over many inputs at once and returns an ``AttributionResult`` (tidy scores,
faithfulness under a named definition of ``FAITHFULNESS_DEFINITIONS`` against a random ranking,
plain-language summaries, figures). ``scorecard`` compares methods (faithfulness,
stability across seeds, time, memory); ``rank_agreement`` compares their rankings;
``global_surrogate`` fits a readable tree and a sparse linear model to a tabular model's own
predictions.
"""

from .core import (
                   DEFAULT_MEMORY_BUDGET,
                   METHOD_OPTIONS,
                   METHODS,
                   OUTPUTS,
                   applicable_methods,
                   attribute,
)
from .result import LEVELS, AttributionResult
from .scorecard import ScorecardResult, scorecard
from .surrogates import SurrogateResult, global_surrogate
from .trust import (
                   AOPC_FRACTIONS,
                   CURVE_FRACTIONS,
                   ERASER_PERCENTS,
                   FAITHFULNESS,
                   FAITHFULNESS_DEFINITIONS,
                   rank_agreement,
)

__all__ = ["AOPC_FRACTIONS", "CURVE_FRACTIONS", "DEFAULT_MEMORY_BUDGET", "ERASER_PERCENTS",
           "FAITHFULNESS", "FAITHFULNESS_DEFINITIONS", "LEVELS", "METHODS", "METHOD_OPTIONS",
           "OUTPUTS", "AttributionResult", "ScorecardResult",
           "SurrogateResult", "applicable_methods", "attribute", "global_surrogate",
           "rank_agreement", "scorecard"]
