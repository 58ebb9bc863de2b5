"""Proxies of a sensitive column and attribution shares by group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _fairness_models import linear_tabular

import explain
from explain.fairness import attribution_by_group, proxies


def _frame(n=800, seed=0):
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    return pd.DataFrame({
        "sex": sex,
        "proxy": np.where(sex == "male", rng.normal(2, 0.5, n), rng.normal(-2, 0.5, n)),
        "noise": rng.normal(size=n),
        "city": rng.choice(["a", "b", "c"], n),
    })


def test_a_planted_proxy_ranks_first_and_noise_near_zero():
    result = proxies(_frame(), "sex")
    table = result.to_frame().set_index("feature")
    assert result.to_frame().feature.iloc[0] == "proxy"
    assert table.loc["proxy", "normalized_mutual_information"] > 0.5
    assert table.loc["noise", "normalized_mutual_information"] < 0.05
    assert table.loc["city", "discrete"]
    again = proxies(_frame(), "sex")
    pd.testing.assert_frame_equal(again.to_frame(), result.to_frame())
    with pytest.raises(KeyError, match="did you mean 'sex'"):
        proxies(_frame(), "sx")
    with pytest.raises(ValueError, match="one group"):
        proxies(_frame().assign(sex="f"), "sex")


def _linear(frame, weights):
    loaded = linear_tabular(frame, weights, numeric=["proxy", "noise"])
    loaded.feature_groups = loaded.encoder.groups
    return loaded


def test_attribution_share_on_sensitive_inputs_by_group():
    frame = _frame(n=200)
    uses_sex = _linear(frame, {"sex=male": 2.0, "noise": 1.0})
    ignores_sex = _linear(frame, {"noise": 1.0})
    shares = attribution_by_group(uses_sex, frame, sensitive_feature="sex", features=["sex"],
                                  n_bootstrap=100)
    none = attribution_by_group(ignores_sex, frame, sensitive_feature="sex", features=["sex"],
                                n_bootstrap=100)
    table = shares.by_group.set_index("group")
    assert table.loc["male", "mean_share"] > 0.3
    assert none.by_group.mean_share.max() == pytest.approx(0.0, abs=1e-6)
    assert len(shares.to_frame()) == 200
    assert explain.hooks.count_hooks(uses_sex) == 0


def test_text_attribution_share_on_identity_terms_by_group():
    from test_fairness_counterfactual import bag_of_words

    model = bag_of_words({"muslim": -2.0, "film": 1.0})
    data = pd.DataFrame({"text": ["a muslim person liked the film", "a christian person liked "
                                  "the film"] * 4, "religion": ["muslim", "christian"] * 4})
    result = attribution_by_group(model, data, sensitive_feature="religion", text="text",
                                  terms=["muslim", "christian"], n_bootstrap=50)
    table = result.by_group.set_index("group")
    assert table.loc["muslim", "mean_share"] > 0.5       # -2 of |-2| + |1|
    assert table.loc["christian", "mean_share"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="terms"):
        attribution_by_group(model, data, sensitive_feature="religion", text="text")
