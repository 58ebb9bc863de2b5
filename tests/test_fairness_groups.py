"""Group fairness audits: equality with fairlearn, planted bias, invariants, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _fairness_models import linear_tabular

import explain
from explain.fairness import audit
from explain.fairness.groups import bootstrap_counts
from explain.plotting import figure_bytes


def _frame(n=4000, seed=0, bias=0.2):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "sex": rng.choice(["female", "male"], n),
        "race": rng.choice(["a", "b", "c"], n, p=[0.5, 0.4, 0.1]),
        "x": rng.normal(size=n),
    })
    frame["y"] = (rng.random(n) < 0.4).astype(int)
    score = 0.35 * frame["y"] + 0.6 * rng.random(n) + bias * (frame["sex"] == "male")
    frame["score"] = np.clip(score, 0, 1)
    frame["pred"] = (frame["score"] >= 0.5).astype(int)
    return frame


def test_group_metrics_equal_fairlearn():
    from fairlearn import metrics as fm

    frame = _frame()
    result = audit(data=frame, sensitive_features=["sex", "race"], label="y",
                   prediction="pred", n_bootstrap=50)
    table = result.by_group
    for feature in ("sex", "race"):
        mf = fm.MetricFrame(metrics={"selection_rate": fm.selection_rate,
                                     "true_positive_rate": fm.true_positive_rate,
                                     "false_positive_rate": fm.false_positive_rate},
                            y_true=frame["y"], y_pred=frame["pred"],
                            sensitive_features=frame[feature])
        for metric in ("selection_rate", "true_positive_rate", "false_positive_rate"):
            ours = table[(table.sensitive_feature == feature) & (table.metric == metric)]
            ours = ours.set_index("group")["value"]
            np.testing.assert_allclose(ours.loc[mf.by_group.index].to_numpy(),
                                       mf.by_group[metric].to_numpy(), rtol=0, atol=1e-12)
        assert result.difference("demographic_parity", sensitive_feature=feature) == \
            pytest.approx(fm.demographic_parity_difference(frame["y"], frame["pred"],
                                                           sensitive_features=frame[feature]))
        assert result.ratio("demographic_parity", sensitive_feature=feature) == \
            pytest.approx(fm.demographic_parity_ratio(frame["y"], frame["pred"],
                                                      sensitive_features=frame[feature]))
        assert result.difference("equalized_odds", sensitive_feature=feature) == \
            pytest.approx(fm.equalized_odds_difference(frame["y"], frame["pred"],
                                                       sensitive_features=frame[feature]))
        assert result.difference("equal_opportunity", sensitive_feature=feature) == \
            pytest.approx(fm.equal_opportunity_difference(frame["y"], frame["pred"],
                                                          sensitive_features=frame[feature]))
    # the intersection equals fairlearn's with both columns
    dpd = fm.demographic_parity_difference(frame["y"], frame["pred"],
                                           sensitive_features=frame[["sex", "race"]])
    assert result.difference(sensitive_feature="sex & race") == pytest.approx(dpd)


def test_bootstrap_counts_match_a_loop_and_repeat_with_seed():
    rng = np.random.default_rng(1)
    y = rng.random(50) < 0.5
    p = rng.random(50) < 0.5
    codes = rng.integers(0, 3, 50)
    a = bootstrap_counts(y, p, codes, 3, n_bootstrap=7, seed=3, chunk_cells=120)
    b = bootstrap_counts(y, p, codes, 3, n_bootstrap=7, seed=3)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    index = np.random.default_rng(3).integers(0, 50, size=(7, 50))
    for r in range(7):
        rows = index[r]
        for g in range(3):
            member = codes[rows] == g
            assert a["n"][r, g] == member.sum()
            assert a["tp"][r, g] == (y[rows] & p[rows] & member).sum()


def test_intervals_are_reproducible_and_cover_the_estimate():
    frame = _frame(n=1500)
    one = audit(data=frame, sensitive_features="sex", label="y", score="score", n_bootstrap=300,
                seed=5)
    two = audit(data=frame, sensitive_features="sex", label="y", score="score", n_bootstrap=300,
                seed=5)
    pd.testing.assert_frame_equal(one.by_group, two.by_group)
    pd.testing.assert_frame_equal(one.disparities, two.disparities)
    rates = one.by_group[one.by_group.metric != "count"]
    assert (rates.ci_low <= rates.value + 1e-12).all() and (rates.value <= rates.ci_high + 1e-12).all()
    other = audit(data=frame, sensitive_features="sex", label="y", score="score",
                  n_bootstrap=300, seed=6)
    assert not np.allclose(other.by_group.ci_low.dropna(), one.by_group.ci_low.dropna())


def test_identical_groups_give_difference_zero_and_ratio_one():
    half = _frame(n=600, seed=2)[["race", "y", "pred", "score"]]
    frame = pd.concat([half.assign(group="g1"), half.assign(group="g2")], ignore_index=True)
    result = audit(data=frame, sensitive_features="group", label="y", score="score",
                   n_bootstrap=20)
    for row in result.disparities.itertuples():
        assert row.difference == pytest.approx(0.0, abs=1e-12)
        assert row.ratio == pytest.approx(1.0, abs=1e-12)


def _linear_model(weights: dict[str, float], frame: pd.DataFrame):
    return linear_tabular(frame, weights, numeric=["x"], name="linear")


def test_planted_bias_shows_with_the_right_sign_and_unbiased_does_not():
    frame = _frame(n=3000, seed=4)
    frame["y"] = (frame["x"] > 0).astype(int)
    biased = _linear_model({"x": 3.0, "sex=male": 2.0}, frame)
    fair = _linear_model({"x": 3.0}, frame)
    r_biased = audit(biased, frame, sensitive_features="sex", label="y", n_bootstrap=200)
    r_fair = audit(fair, frame, sensitive_features="sex", label="y", n_bootstrap=200)
    sel = r_biased.by_group[r_biased.by_group.metric == "selection_rate"].set_index("group")
    assert sel.loc["male", "value"] - sel.loc["female", "value"] > 0.2
    row = r_biased.disparities.set_index("measure").loc["demographic_parity"]
    assert row.difference_ci_low > 0.1
    fpr = r_biased.by_group[r_biased.by_group.metric == "false_positive_rate"].set_index("group")
    assert fpr.loc["male", "value"] > fpr.loc["female", "value"]
    fair_row = r_fair.disparities.set_index("measure").loc["demographic_parity"]
    assert fair_row.difference < 0.06
    sel_fair = r_fair.by_group[r_fair.by_group.metric == "selection_rate"].set_index("group")
    female_ci = sel_fair.loc["female", ["ci_low", "ci_high"]].to_numpy(float)
    assert female_ci[0] <= sel_fair.loc["male", "value"] + 0.03
    assert explain.hooks.count_hooks(biased) == 0


def test_text_model_and_multiclass_one_vs_rest(tiny_bert):
    three = __import__("explain_models").tiny.bert_classifier(n_labels=3)
    texts = ["she is a doctor", "he is a nurse", "the film was bad", "a warm story"] * 10
    frame = pd.DataFrame({"text": texts, "gender": ["f", "m", "x", "x"] * 10,
                          "label": [0, 1, 2, 0] * 10})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", explain.ExplainWarning)
        result = audit(three, frame, sensitive_features="gender", label="label", text="text",
                       n_bootstrap=20)
        binary = audit(tiny_bert, frame.assign(label=frame.label.clip(0, 1)),
                       sensitive_features="gender", label="label", text="text", n_bootstrap=0)
    assert set(result.by_group.class_label) == {"class_0", "class_1", "class_2"}
    assert set(binary.by_group.class_label) == {"pos"}
    sel = result.by_group[result.by_group.metric == "selection_rate"]
    # one-vs-rest over argmax: each group's selection rates sum to 1 over the classes
    np.testing.assert_allclose(sel.groupby("group")["value"].sum().to_numpy(), 1.0)
    assert explain.hooks.count_hooks(three) == 0


def test_small_groups_warn_and_get_no_interval():
    frame = _frame(n=500)
    frame.loc[:9, "race"] = "tiny"
    with pytest.warns(explain.ExplainWarning, match="tiny"):
        result = audit(data=frame, sensitive_features="race", label="y", prediction="pred",
                       n_bootstrap=50)
    tiny = result.by_group[result.by_group.group == "tiny"]
    assert tiny.small_group.all() and tiny.ci_low.isna().all()
    big = result.by_group[(result.by_group.group == "a") & (result.by_group.metric != "count")]
    assert big.ci_low.notna().all()
    # disparities leave the small group out: fairlearn's numbers on the other groups' rows
    from fairlearn.metrics import demographic_parity_difference

    row = result.disparities.set_index("measure").loc["demographic_parity"]
    assert row.excluded_groups == "tiny" and row.n_groups == 3
    rest = frame[frame.race != "tiny"]
    assert row.difference == pytest.approx(demographic_parity_difference(
        rest.y, rest.pred, sensitive_features=rest.race))
    assert row.difference_ci_low <= row.difference <= row.difference_ci_high
    everything = audit(data=frame, sensitive_features="race", label="y", prediction="pred",
                       n_bootstrap=0, min_group_size=0)
    assert everything.difference() == pytest.approx(demographic_parity_difference(
        frame.y, frame.pred, sensitive_features=frame.race))


def test_bad_input_messages():
    frame = _frame(n=200)
    with pytest.raises(KeyError, match="did you mean 'sex'"):
        audit(data=frame, sensitive_features="sexx", label="y", prediction="pred")
    with pytest.raises(KeyError, match="'pred'"):
        audit(data=frame, sensitive_features="sex", label="y", prediction="predd")
    with pytest.raises(ValueError, match="one group"):
        audit(data=frame.assign(sex="f"), sensitive_features="sex", label="y", prediction="pred")
    with pytest.raises(ValueError, match="positive_label"):
        audit(data=frame.assign(y=frame.y.map({0: "no", 1: "yes"})), sensitive_features="sex",
              label="y", prediction="pred")
    result = audit(data=frame.assign(y=frame.y.map({0: "no", 1: "yes"}),
                                     pred=frame.pred.map({0: "no", 1: "yes"})),
                   sensitive_features="sex", label="y", prediction="pred", positive_label="yes",
                   n_bootstrap=0)
    assert result.difference() == pytest.approx(
        audit(data=frame, sensitive_features="sex", label="y", prediction="pred",
              n_bootstrap=0).difference())
    with pytest.raises(ValueError, match="NaN"):
        audit(data=frame.assign(score=frame.score.where(frame.index > 3)),
              sensitive_features="sex", label="y", score="score")
    with pytest.raises(ValueError, match="prediction=COLUMN"):
        audit(data=frame, sensitive_features="sex", label="y")


def test_figures_render_and_frames_are_tidy():
    result = audit(data=_frame(n=800), sensitive_features=["sex", "race"], label="y",
                   score="score", n_bootstrap=50)
    assert list(result.to_frame().columns) == ["sensitive_feature", "group", "class_label",
                                               "metric", "value", "ci_low", "ci_high", "count",
                                               "denominator", "small_group"]
    frame = result.to_frame()
    tpr = frame[(frame.metric == "true_positive_rate") & (frame.sensitive_feature == "sex")]
    data = _frame(n=800)
    assert sorted(tpr.denominator) == sorted(data.groupby("sex").y.sum())
    for kind in result.PLOTS:
        fig = result.plot(kind)
        assert figure_bytes(fig)[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="valid"):
        result.plot("pie")
    assert "<img" in result._repr_html_()
    with pytest.raises(TypeError):
        result.PLOTS["x"] = "y"


def test_multiclass_decisions_without_a_model_one_vs_rest():
    from fairlearn.metrics import demographic_parity_difference

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"group": rng.choice(["x", "y"], 900),
                          "label": rng.choice(["cat", "dog", "eel"], 900),
                          "pred": rng.choice(["cat", "dog", "eel"], 900)})
    result = audit(data=frame, sensitive_features="group", label="label", prediction="pred",
                   classes=["cat", "dog", "eel"], n_bootstrap=50)
    assert result.class_labels == ["cat", "dog", "eel"]
    for name in ("cat", "dog", "eel"):
        expected = demographic_parity_difference(
            (frame.label == name).astype(int), (frame.pred == name).astype(int),
            sensitive_features=frame.group)
        assert result.difference(class_label=name) == pytest.approx(expected)


def test_every_result_renders_offline_html():
    import re

    from explain.fairness import weat

    words = ("a", "b", "c", "d", "e", "f", "g", "h")
    vectors = (words, np.random.default_rng(0).normal(size=(8, 4)))
    results = [
        audit(data=_frame(n=300), sensitive_features="sex", label="y", score="score",
              n_bootstrap=20),
        weat(vectors, tests={"t": {"first_target": ["a", "b"], "second_target": ["c", "d"],
                                   "first_attribute": ["e", "f"],
                                   "second_attribute": ["g", "h"]}}, n_permutations=10),
    ]
    for result in results:
        page = result._repr_html_()
        assert "<img" in page and "data:image/png;base64," in page
        assert not re.search(r"(src|href)=['\"]https?://", page)
