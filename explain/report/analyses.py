"""The registry of report analyses: the built-in ones in report order, then the user's.

    from explain.report import Analysis, Section, register_analysis

    def count_rows(context):
        context.report.add(pd.DataFrame({"rows": [len(context.data)]}), section="data_checks",
                           title=f"{context.part}: rows")

    register_analysis(Analysis("row_count", "the number of rows analysed",
                               Section("data_checks", "Data checks"), count_rows))

``build_report`` runs every registered analysis (or those named in ``analyses=``) in this order.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .alignment import ALIGNMENT
from .attention import ATTENTION
from .attributions import ATTRIBUTIONS
from .fairness import ASSOCIATION, COUNTERFACTUAL, FAIRNESS, REPRESENTATION
from .images import IMAGES
from .language import LANGUAGE
from .masked import MASKED
from .predictions import PREDICTIONS
from .protocol import Analysis
from .sections import register_section

__all__ = ["ANALYSES", "register_analysis"]

_analyses: dict[str, Analysis] = {}

#: Analyses a report can run, in the order it runs them: name -> ``Analysis`` (read-only;
#: grows with ``register_analysis``).
ANALYSES: Mapping[str, Analysis] = MappingProxyType(_analyses)


def register_analysis(analysis: Analysis) -> Analysis:
    """Add ``analysis`` (an ``explain.report.Analysis``) after the analyses registered so far, and
    its section before the caveats. A name already taken is a ``ValueError`` (registering the same
    spec again does nothing). Returns it, so it can decorate a module-level assignment."""
    if not isinstance(analysis, Analysis):
        raise TypeError(f"register_analysis takes an explain.report.Analysis, got "
                        f"{type(analysis).__name__}")
    known = _analyses.get(analysis.name)
    if known is analysis or known == analysis:
        return analysis
    if known is not None:
        raise ValueError(f"an analysis named {analysis.name!r} is already registered; choose "
                         f"another name (registered: {', '.join(_analyses)})")
    register_section(analysis.section)
    _analyses[analysis.name] = analysis
    return analysis


for _builtin in (PREDICTIONS, ATTENTION, ATTRIBUTIONS, IMAGES, LANGUAGE, MASKED, ALIGNMENT,
                 FAIRNESS, COUNTERFACTUAL, REPRESENTATION, ASSOCIATION):
    register_analysis(_builtin)
