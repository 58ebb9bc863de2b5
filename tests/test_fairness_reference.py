"""Fairness analyses on the reference models (trained once into $EXPLAIN_CACHE)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import explain
from explain.fairness import audit, counterfactual
from explain.plotting import figure_bytes


@pytest.mark.slow
def test_compas_model_audit_equals_fairlearn_and_repeats_byte_for_byte(compas_model):
    import explain_models
    from fairlearn.metrics import equalized_odds_difference

    heldout = pd.read_csv(explain_models.path("compas") / "heldout.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", explain.ExplainWarning)
        one = audit(compas_model, heldout, sensitive_features="sex", label="two_year_recid",
                    n_permutations=999)
        two = audit(compas_model, heldout, sensitive_features="sex", label="two_year_recid",
                    n_permutations=999)
    probabilities = explain.fairness._common.class_probabilities(compas_model, heldout)
    positive = compas_model.label_names.index(one.class_labels[0])
    decisions = (probabilities[:, positive] >= 0.5).astype(int)
    truth = (heldout["two_year_recid"].to_numpy() == positive).astype(int)
    assert one.difference("equalized_odds") == pytest.approx(equalized_odds_difference(
        truth, decisions, sensitive_features=heldout["sex"]))
    pd.testing.assert_frame_equal(one.by_group, two.by_group)
    pd.testing.assert_frame_equal(one.disparities, two.disparities)
    pd.testing.assert_frame_equal(one.contrasts, two.contrasts)
    for kind in one.PLOTS:
        assert figure_bytes(one.plot(kind)) == figure_bytes(two.plot(kind))
    assert explain.hooks.count_hooks(compas_model) == 0


@pytest.mark.slow
def test_sentiment_model_counterfactual_names(sentiment_model):
    result = counterfactual(sentiment_model, axis="gender_names")
    row = result.comparisons.iloc[0]
    assert row.group == "female" and row.n_pairs == 12
    assert np.isfinite(row.p_value) and 0 <= row.flip_rate <= 1
    assert result.to_frame().score.between(0, 1).all()
    assert explain.hooks.count_hooks(sentiment_model) == 0
