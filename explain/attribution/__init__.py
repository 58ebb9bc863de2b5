"""Attributions: which inputs made the model say this.

``attribute(model, inputs, method=...)`` runs one of ``METHODS`` (a ``MethodSpec`` each, all
built-ins through Captum; their options in ``METHODS[name].options``; ``register_method`` adds
one) over many inputs at once and returns an ``AttributionResult`` (tidy scores, faithfulness
under a named definition of ``FAITHFULNESS_DEFINITIONS`` against a random ranking,
plain-language summaries, figures). ``attribute_layer`` scores the neurons of a layer
(``LayerAttributionResult``). ``scorecard`` compares methods (faithfulness, stability across
seeds, time, memory); ``rank_agreement`` compares their rankings; ``global_surrogate`` fits a
readable tree and a sparse linear model to a tabular model's own predictions.

Modules, by concept: ``inputs`` (items, baselines, batches), ``targets``, ``scorer`` (the explained
output), ``methods`` (the specs and their registry), ``runners`` (the Captum calls),
``compute`` (batching, memory budget, retries, adaptive steps), ``core`` (``attribute``,
``attribute_layer``), ``result`` and ``layer`` (the results), ``trust`` (faithfulness,
agreement, memory), ``robustness``, ``scorecard``, ``surrogates``, ``figures``.
"""

from .compute import DEFAULT_MEMORY_BUDGET
from .core import attribute, attribute_layer
from .layer import LayerAttributionResult
from .methods import FAMILIES, METHODS, MethodSpec, applicable_methods, register_method
from .result import LEVELS, AttributionResult
from .runners import Attributions, MethodCall
from .scorecard import ScorecardResult, scorecard
from .scorer import OUTPUTS
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
           "FAITHFULNESS", "FAITHFULNESS_DEFINITIONS", "FAMILIES", "LEVELS", "METHODS",
           "OUTPUTS", "AttributionResult", "Attributions", "LayerAttributionResult",
           "MethodCall", "MethodSpec", "ScorecardResult", "SurrogateResult",
           "applicable_methods", "attribute", "attribute_layer", "global_surrogate",
           "rank_agreement", "register_method", "scorecard"]
