"""Fairness audits and bias probes.

* ``audit``: group fairness of a classifier's decisions (fairlearn metrics, bootstrap intervals,
  calibration, threshold sweep), for a model or a column of existing decisions;
* ``counterfactual``: swap identity terms in templates or real sentences and measure the change;
* ``weat`` / ``seat``: word and sentence embedding association tests;
* ``representation_probe``: where in a network a sensitive attribute is linearly decodable;
* ``crows_pairs`` / ``stereoset``: likelihood probes for masked and causal language models.
"""

from __future__ import annotations

from .association import (
    POOLINGS,
    SEAT_TEMPLATES,
    WORD_SETS,
    AssociationResult,
    association_test,
    encode_sentences,
    seat,
    weat,
)
from .counterfactual import (
    TESTS,
    CounterfactualResult,
    counterfactual,
    fill_template,
    identity_terms,
    swap_terms,
)
from .groups import DISPARITIES, GROUP_METRICS, AuditResult, audit
from .representation import ProbeResult, default_layers, representation_probe

__all__ = ["DISPARITIES", "GROUP_METRICS", "POOLINGS", "SEAT_TEMPLATES", "TESTS", "WORD_SETS",
           "AssociationResult", "AuditResult", "CounterfactualResult", "ProbeResult", "association_test", "audit",
           "counterfactual", "default_layers", "encode_sentences", "fill_template", "identity_terms", "representation_probe", "seat",
           "swap_terms", "weat"]
