"""Attributions: which inputs made the model say this.

``attribute(model, inputs, method=...)`` runs one of ``METHODS`` (all through Captum) over many
inputs at once and returns an ``AttributionResult`` (tidy scores, faithfulness against a random
ranking, plain-language summaries, figures). ``scorecard`` compares methods (faithfulness,
stability across seeds, time, memory); ``rank_agreement`` compares their rankings;
``global_surrogate`` fits a readable tree and a sparse linear model to a tabular model's own
predictions.
"""

from .core import DEFAULT_MEMORY_BUDGET, METHODS, OUTPUTS, applicable_methods, attribute
from .result import LEVELS, AttributionResult
from .scorecard import ScorecardResult, scorecard
from .surrogates import SurrogateResult, global_surrogate
from .trust import AOPC_FRACTIONS, CURVE_FRACTIONS, FAITHFULNESS, rank_agreement

__all__ = ["AOPC_FRACTIONS", "CURVE_FRACTIONS", "DEFAULT_MEMORY_BUDGET", "FAITHFULNESS",
           "LEVELS", "METHODS", "OUTPUTS", "AttributionResult", "ScorecardResult",
           "SurrogateResult", "applicable_methods", "attribute", "global_surrogate",
           "rank_agreement", "scorecard"]
