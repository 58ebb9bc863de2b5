"""Fairness audits and bias probes.

* ``audit``: group fairness of a classifier's decisions (fairlearn metrics, Wilson and Newcombe
  intervals, permutation tests, calibration, threshold sweep), for a model or a column of
  existing decisions (``groups/``);
* ``counterfactual``: swap identity terms in templates or real sentences and measure the change;
* ``weat`` / ``seat``: word and sentence embedding association tests;
* ``representation_probe``: where in a network a sensitive attribute is linearly decodable;
* ``crows_pairs`` / ``stereoset``: likelihood probes for masked and causal language models;
* ``proxies`` / ``attribution_by_group``: which inputs stand in for a sensitive feature, and how
  much of each prediction the attributions put on sensitive inputs, per group.

Shared: ``intervals`` (Wilson, Newcombe, Student-t), ``terms`` (identity terms, templates and
swaps of the counterfactual probe), ``word_sets`` (the word lists of WEAT/SEAT), ``_common``
(the model an analysis runs on, class probabilities, Holm). Every analysis takes a
``LoadedModel`` (or what ``explain.load_model`` reads); a reference-model name is refused with
how to load it, since the library never imports the recipes of the reference models.
"""

from __future__ import annotations

from .association import (
    EXCLUSIONS,
    P_VALUES,
    POOLINGS,
    SEAT_TEMPLATES,
    WORD_SETS,
    AssociationResult,
    association_test,
    encode_sentences,
    seat,
    weat,
)
from .counterfactual import TESTS, VERDICTS, CounterfactualResult, counterfactual
from .groups import DISPARITIES, GROUP_METRICS, AuditResult, audit
from .likelihood import (
    CROWS_PAIRS_COLUMNS,
    CrowsPairsResult,
    StereoSetResult,
    crows_pairs,
    read_crows_pairs,
    read_stereoset,
    sentence_scores,
    stereoset,
)
from .proxies import AttributionByGroupResult, ProxyResult, attribution_by_group, proxies
from .representation import INPUT_BASELINES, ProbeResult, default_layers, representation_probe
from .terms import fill_template, identity_terms, swap_terms

__all__ = ["CROWS_PAIRS_COLUMNS", "DISPARITIES", "EXCLUSIONS", "GROUP_METRICS", "INPUT_BASELINES",
           "POOLINGS", "P_VALUES", "SEAT_TEMPLATES", "TESTS", "VERDICTS", "WORD_SETS", "AssociationResult", "AttributionByGroupResult", "AuditResult",
           "CounterfactualResult", "CrowsPairsResult", "ProbeResult", "ProxyResult",
           "StereoSetResult", "association_test", "attribution_by_group", "audit",
           "counterfactual", "crows_pairs", "default_layers", "encode_sentences", "fill_template",
           "identity_terms", "proxies", "read_crows_pairs", "read_stereoset",
           "representation_probe", "seat", "sentence_scores", "stereoset", "swap_terms", "weat"]
