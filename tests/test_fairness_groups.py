"""Group fairness audits: equality with fairlearn, planted bias, invariants, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _fairness_models import linear_tabular

import explain
from explain.fairness import audit
from explain.fairness._common import holm
from explain.fairness.groups import CONCLUSIONS, permutation_tables
from explain.fairness.intervals import newcombe_interval, wilson_interval
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
                   prediction="pred", n_permutations=0)
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
        assert result.ratio("equalized_odds", sensitive_feature=feature) == \
            pytest.approx(fm.equalized_odds_ratio(frame["y"], frame["pred"],
                                                  sensitive_features=frame[feature]))
        from sklearn.metrics import accuracy_score, precision_score

        others = fm.MetricFrame(metrics={"predictive_parity": precision_score,
                                         "accuracy_parity": accuracy_score},
                                y_true=frame["y"], y_pred=frame["pred"],
                                sensitive_features=frame[feature])
        for measure in ("predictive_parity", "accuracy_parity"):
            assert result.difference(measure, sensitive_feature=feature) == \
                pytest.approx(others.difference()[measure])
            assert result.ratio(measure, sensitive_feature=feature) == \
                pytest.approx(others.ratio()[measure])
    # the intersection equals fairlearn's with both columns
    dpd = fm.demographic_parity_difference(frame["y"], frame["pred"],
                                           sensitive_features=frame[["sex", "race"]])
    assert result.difference(sensitive_feature="sex & race") == pytest.approx(dpd)


def test_permutation_tables_keep_margins_and_have_hypergeometric_moments():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 3, 60)
    cells = rng.integers(0, 4, 60)
    strata = rng.integers(0, 2, 60)
    b = 20000
    table = permutation_tables(codes, cells, strata, n_groups=3, n_cells=4, n_permutations=b,
                               rng=np.random.default_rng(3))
    again = permutation_tables(codes, cells, strata, n_groups=3, n_cells=4, n_permutations=b,
                               rng=np.random.default_rng(3))
    np.testing.assert_array_equal(table, again)
    # a permutation within strata keeps each group's size and each cell's size
    np.testing.assert_array_equal(table.sum(2), np.tile(np.bincount(codes, minlength=3), (b, 1)))
    np.testing.assert_array_equal(table.sum(1), np.tile(np.bincount(cells, minlength=4), (b, 1)))
    # the counts of one stratum are hypergeometric: compare mean and variance with theory
    one = permutation_tables(codes, cells, np.zeros(60, int), n_groups=3, n_cells=4,
                             n_permutations=b, rng=np.random.default_rng(4))
    m = np.bincount(codes, minlength=3)[:, None]
    c = np.bincount(cells, minlength=4)[None, :]
    mean = m * c / 60
    var = m * (c / 60) * (1 - c / 60) * (60 - m) / 59
    np.testing.assert_array_less(np.abs(one.mean(0) - mean), 5 * np.sqrt(var / b))
    np.testing.assert_allclose(one.var(0), var, rtol=5 * np.sqrt(2 / b) + 0.02)
    # against explicit permutations of the labels: same distribution of one cell's count
    explicit = np.array([np.sum((rng.permutation(codes) == 0) & (cells == 1))
                         for _ in range(4000)])
    assert abs(explicit.mean() - one[:, 0, 1].mean()) < 5 * np.sqrt(var[0, 1] / 4000)


def test_wilson_equals_scipy_and_newcombe_the_published_values():
    from scipy import stats

    for k, n in ((0, 20), (1, 20), (10, 20), (19, 20), (20, 20), (3, 7), (480, 1000)):
        low, high = wilson_interval(k, n, 0.95)
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert np.isnan(wilson_interval(0, 0)[0])
    # Newcombe (1998), Statistics in Medicine 17:873, Table II, method 10
    published = {(56, 70, 48, 80): (0.0524, 0.3339), (9, 10, 3, 10): (0.1705, 0.8090),
                 (5, 56, 0, 29): (-0.0381, 0.1926), (0, 10, 0, 20): (-0.1611, 0.2775)}
    for counts, expected in published.items():
        low, high = newcombe_interval(*counts, 0.95)
        assert (round(float(low), 4), round(float(high), 4)) == expected


def test_group_intervals_agree_with_fairlearn_bootstrap_on_large_groups():
    from fairlearn import metrics as fm

    rng = np.random.default_rng(3)
    n = 6000
    frame = pd.DataFrame({"sex": rng.choice(["female", "male"], n)})
    frame["y"] = (rng.random(n) < 0.4).astype(int)  # interior rates: both methods are valid
    frame["pred"] = (rng.random(n) < 0.2 + 0.5 * frame["y"]).astype(int)
    result = audit(data=frame, sensitive_features="sex", label="y", prediction="pred",
                   n_permutations=0)
    n_boot = 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mf = fm.MetricFrame(metrics={"selection_rate": fm.selection_rate,
                                     "true_positive_rate": fm.true_positive_rate},
                            y_true=frame["y"], y_pred=frame["pred"],
                            sensitive_features=frame["sex"], n_boot=n_boot,
                            ci_quantiles=[0.025, 0.975], random_state=0)
    table = result.by_group.set_index(["metric", "group"])
    for metric in ("selection_rate", "true_positive_rate"):
        for group in ("female", "male"):
            row = table.loc[(metric, group)]
            se = np.sqrt(row.value * (1 - row.value) / row.denominator)
            # Monte-Carlo sd of a bootstrap 2.5% quantile: sqrt(q(1-q)/B) / density there
            mc = np.sqrt(0.025 * 0.975 / n_boot) / 0.0584 * se
            low = mf.by_group_ci[0].loc[group, metric]
            high = mf.by_group_ci[1].loc[group, metric]
            assert abs(row.ci_low - low) < 4 * mc + 1 / row.denominator
            assert abs(row.ci_high - high) < 4 * mc + 1 / row.denominator


def test_p_values_agree_with_scipy_permutation_test_and_chi_square():
    from scipy import stats

    rng = np.random.default_rng(7)
    n = 900
    frame = pd.DataFrame({"g": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])})
    frame["y"] = (rng.random(n) < 0.5).astype(int)
    frame["pred"] = (rng.random(n) < 0.35 + 0.08 * (frame["g"] == "c")).astype(int)
    b = 4999
    result = audit(data=frame, sensitive_features="g", label="y", prediction="pred",
                   n_permutations=b, seed=1)
    rows = result.disparities.set_index("measure")

    def chi_square(*samples, axis=-1):
        k = np.stack([s.sum(axis) for s in samples], -1)
        m = np.array([s.shape[axis] for s in samples])
        r = k.sum(-1, keepdims=True) / m.sum()
        return ((k - m * r) ** 2 / (m * r * (1 - r))).sum(-1)

    def reference(outcome, groups):
        samples = [outcome[groups == g] for g in ("a", "b", "c")]
        return stats.permutation_test(samples, chi_square, n_resamples=b, vectorized=True,
                                      alternative="greater", random_state=2).pvalue

    tolerance = lambda p: 4 * np.sqrt(2 * p * (1 - p) / b) + 2 / b  # noqa: E731
    pred, y, g = frame["pred"].to_numpy(), frame["y"].to_numpy(), frame["g"].to_numpy()
    expected = {"demographic_parity": reference(pred, g),
                "equal_opportunity": reference(pred[y == 1], g[y == 1]),
                "predictive_parity": reference(y[pred == 1], g[pred == 1]),
                "accuracy_parity": reference((pred == y).astype(int), g)}
    for measure, p in expected.items():
        assert rows.loc[measure, "p_value"] == pytest.approx(p, abs=tolerance(p)), measure
    # large groups: the permutation p-value is close to the asymptotic chi-square one
    chi2 = stats.chi2_contingency(pd.crosstab(frame["g"], frame["pred"]), correction=False)
    assert rows.loc["demographic_parity", "p_value"] == pytest.approx(
        chi2.pvalue, abs=tolerance(chi2.pvalue) + 0.01)


def test_p_values_are_drawn_in_chunks_of_flat_memory(monkeypatch):
    """Many permutations (1e8 used to raise MemoryError) are drawn chunk after chunk: each
    count table holds at most PERMUTATION_CHUNK permutations, and the p-values stay valid."""
    from explain.fairness.groups import permutation

    rng = np.random.default_rng(3)
    n = 600
    frame = pd.DataFrame({"g": rng.choice(["a", "b"], n), "y": rng.integers(0, 2, n)})
    frame["pred"] = (rng.random(n) < 0.3 + 0.3 * (frame["g"] == "b")).astype(int)
    whole = audit(data=frame, sensitive_features="g", label="y", prediction="pred",
                  n_permutations=2000, seed=1).disparities.set_index("measure")["p_value"]
    sizes = []
    draw = permutation.permutation_tables

    def recorded(*args, **kwargs):
        sizes.append(kwargs["n_permutations"])
        return draw(*args, **kwargs)

    monkeypatch.setattr(permutation, "PERMUTATION_CHUNK", 300)
    monkeypatch.setattr(permutation, "permutation_tables", recorded)
    chunked = audit(data=frame, sensitive_features="g", label="y", prediction="pred",
                    n_permutations=2000, seed=1).disparities.set_index("measure")["p_value"]
    assert max(sizes) == 300 and sum(sizes) % 2000 == 0 and sizes.count(200) == sum(sizes) // 2000
    for measure, p in whole.items():
        if np.isfinite(p):  # the same test, other draws: within Monte Carlo error
            assert chunked[measure] == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / 2000)
                                                     + 2 / 2000), measure


def test_holm_adjustment():
    adjusted = holm(np.array([0.01, 0.04, 0.03, 0.005, np.nan]))
    np.testing.assert_allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(adjusted[4])


def test_results_repeat_with_the_seed_and_intervals_cover_the_estimate():
    frame = _frame(n=1500)
    one = audit(data=frame, sensitive_features=["sex", "race"], label="y", score="score",
                n_permutations=300, seed=5)
    two = audit(data=frame, sensitive_features=["sex", "race"], label="y", score="score",
                n_permutations=300, seed=5)
    pd.testing.assert_frame_equal(one.by_group, two.by_group)
    pd.testing.assert_frame_equal(one.disparities, two.disparities)
    pd.testing.assert_frame_equal(one.contrasts, two.contrasts)
    rates = one.by_group[one.by_group.metric != "count"]
    assert (rates.ci_low <= rates.value + 1e-12).all() and (rates.value <= rates.ci_high + 1e-12).all()
    c = one.contrasts
    assert (c.ci_low <= c.difference + 1e-12).all() and (c.difference <= c.ci_high + 1e-12).all()
    other = audit(data=frame, sensitive_features=["sex", "race"], label="y", score="score",
                  n_permutations=300, seed=6)
    assert not np.allclose(other.disparities.p_value, one.disparities.p_value)


def test_identical_groups_give_difference_zero_and_ratio_one():
    half = _frame(n=600, seed=2)[["race", "y", "pred", "score"]]
    frame = pd.concat([half.assign(group="g1"), half.assign(group="g2")], ignore_index=True)
    result = audit(data=frame, sensitive_features="group", label="y", score="score",
                   n_permutations=199)
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
    r_biased = audit(biased, frame, sensitive_features="sex", label="y", n_permutations=999)
    r_fair = audit(fair, frame, sensitive_features="sex", label="y", n_permutations=999)
    sel = r_biased.by_group[r_biased.by_group.metric == "selection_rate"].set_index("group")
    assert sel.loc["male", "value"] - sel.loc["female", "value"] > 0.2
    row = r_biased.disparities.set_index("measure").loc["demographic_parity"]
    assert row.significant and row.conclusion == "disparity" and row.high_group == "male"
    contrast = r_biased.contrasts.set_index("metric").loc["selection_rate"]
    # the reference is the larger group; the signed interval says which way and how much
    sign = 1 if contrast.group == "male" else -1
    assert sign * contrast.ci_low > 0.1 or sign * contrast.ci_high < -0.1
    fpr = r_biased.by_group[r_biased.by_group.metric == "false_positive_rate"].set_index("group")
    assert fpr.loc["male", "value"] > fpr.loc["female", "value"]
    fair_row = r_fair.disparities.set_index("measure").loc["demographic_parity"]
    assert fair_row.difference < 0.06 and fair_row.p_value > 0.01
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
                       n_permutations=199)
        binary = audit(tiny_bert, frame.assign(label=frame.label.clip(0, 1)),
                       sensitive_features="gender", label="label", text="text", n_permutations=0)
    assert set(result.by_group.class_label) == {"class_0", "class_1", "class_2"}
    assert set(binary.by_group.class_label) == {"pos"}
    sel = result.by_group[result.by_group.metric == "selection_rate"]
    # one-vs-rest over argmax: each group's selection rates sum to 1 over the classes
    np.testing.assert_allclose(sel.groupby("group")["value"].sum().to_numpy(), 1.0)
    assert explain.hooks.count_hooks(three) == 0


def test_small_groups_are_kept_and_flagged_and_excluded_only_when_asked():
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    frame = _frame(n=500)
    frame.loc[:9, "race"] = "tiny"
    with warnings.catch_warnings():
        warnings.simplefilter("error", explain.ExplainWarning)
        result = audit(data=frame, sensitive_features="race", label="y", prediction="pred",
                       n_permutations=199)
    tiny = result.by_group[result.by_group.group == "tiny"]
    assert tiny.small_group.all()
    assert tiny[tiny.metric != "count"].ci_low.notna().all()  # Wilson holds at 10 rows
    row = result.disparities.set_index("measure").loc["demographic_parity"]
    assert row.n_groups == 4 and row.small_groups == "tiny (10)" and row.excluded_groups == ""
    # by default every group, as fairlearn's functions of the same name
    assert row.difference == pytest.approx(demographic_parity_difference(
        frame.y, frame.pred, sensitive_features=frame.race))
    assert result.difference("equalized_odds") == pytest.approx(equalized_odds_difference(
        frame.y, frame.pred, sensitive_features=frame.race))
    assert "tiny" in set(result.contrasts.group)
    assert "Groups under 30 rows (kept and flagged): race: tiny (10)" in result.summary()
    excluded = audit(data=frame, sensitive_features="race", label="y", prediction="pred",
                     n_permutations=199, exclude_small_groups=True)
    row = excluded.disparities.set_index("measure").loc["demographic_parity"]
    assert row.excluded_groups == "tiny" and row.n_groups == 3 and row.small_groups == ""
    rest = frame[frame.race != "tiny"]
    assert row.difference == pytest.approx(demographic_parity_difference(
        rest.y, rest.pred, sensitive_features=rest.race))
    assert "tiny" not in set(excluded.contrasts.group)
    assert excluded.meta["parameters"]["exclude_small_groups"] is True
    assert "(excluded)" in excluded.summary()


def test_reference_group_and_conclusions():
    frame = _frame(n=800)
    result = audit(data=frame, sensitive_features="race", label="y", prediction="pred",
                   n_permutations=199, reference_groups={"race": "c"})
    assert set(result.contrasts.reference_group) == {"c"}
    assert set(result.contrasts.group) == {"a", "b"}
    default = audit(data=frame, sensitive_features="race", label="y", prediction="pred",
                    n_permutations=199)
    assert set(default.contrasts.reference_group) == {"a"}  # the largest group
    with pytest.raises(ValueError, match="'zz'.*compared groups"):
        audit(data=frame, sensitive_features="race", label="y", prediction="pred",
              reference_groups={"race": "zz"})
    with pytest.raises(ValueError, match="'sex'.*not an audited"):
        audit(data=frame, sensitive_features="race", label="y", prediction="pred",
              reference_groups={"sex": "male"})
    # a real but tiny gap on many rows: significant, and called negligible
    rng = np.random.default_rng(0)
    n = 60_000
    big = pd.DataFrame({"g": np.repeat(["a", "b"], n // 2)})
    big["pred"] = (rng.random(n) < np.where(big.g == "a", 0.50, 0.515)).astype(int)
    small_gap = audit(data=big, sensitive_features="g", prediction="pred", n_permutations=999)
    row = small_gap.disparities.iloc[0]
    assert row.significant and row.difference < 0.02 and row.conclusion == "negligible"
    assert "negligible" in small_gap.summary() and "Holm-adjusted p = " in small_gap.summary()
    assert "permutations of the group labels" in small_gap.summary()
    strict = audit(data=big, sensitive_features="g", prediction="pred", n_permutations=999,
                   negligible_difference=0.01)
    assert strict.disparities.iloc[0].conclusion == "disparity"
    with pytest.warns(explain.ExplainWarning, match="n_permutations=9 is too few"):
        audit(data=big.iloc[::50], sensitive_features="g", prediction="pred", n_permutations=9)


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
                   n_permutations=0)
    assert result.difference() == pytest.approx(
        audit(data=frame, sensitive_features="sex", label="y", prediction="pred",
              n_permutations=0).difference())
    with pytest.raises(ValueError, match="NaN"):
        audit(data=frame.assign(score=frame.score.where(frame.index > 3)),
              sensitive_features="sex", label="y", score="score")
    with pytest.raises(ValueError, match="prediction=COLUMN"):
        audit(data=frame, sensitive_features="sex", label="y")
    with pytest.raises(ValueError, match="alpha"):
        audit(data=frame, sensitive_features="sex", prediction="pred", alpha=1.5)
    with pytest.raises(ValueError, match="n_permutations"):
        audit(data=frame, sensitive_features="sex", prediction="pred", n_permutations=-1)


def test_a_reference_model_name_is_refused_with_the_way_to_load_it(tmp_path, monkeypatch,
                                                                   tiny_mlm):
    """The library never builds a reference model: every analysis refuses its name (before any
    work) and shows how to load it; a checkpoint directory is still loaded."""
    from explain import fairness

    monkeypatch.chdir(tmp_path)  # no directory called "compas" or "sentiment" here
    frame = _frame(n=60)
    calls = {
        "audit": lambda: audit("compas", frame, sensitive_features="sex", label="y"),
        "counterfactual": lambda: fairness.counterfactual("sentiment", axis="gender"),
        "seat": lambda: fairness.seat("minilm"),
        "representation_probe": lambda: fairness.representation_probe(
            "sentiment", ["a b"] * 10, ["x", "y"] * 5),
        "a likelihood probe": lambda: fairness.crows_pairs("sentiment", tmp_path / "no.csv"),
        "proxies": lambda: fairness.proxies(frame, "sex", model="compas"),
        "attribution_by_group": lambda: fairness.attribution_by_group(
            "compas", frame, sensitive_feature="sex", features=["x"]),
    }
    for analysis, call in calls.items():
        with pytest.raises(ValueError, match=rf"^{analysis}.*is not a checkpoint directory.*"
                                             r"explain\.load_model\(explain_models\.ensure\('"):
            call()
    pairs = pd.DataFrame({"sent_more": ["He is a nurse.", "She can fix cars."],
                          "sent_less": ["She is a nurse.", "He can fix cars."],
                          "stereo_antistereo": ["stereo", "antistereo"],
                          "bias_type": ["gender", "gender"]})
    directory = explain.save_model(tiny_mlm, tmp_path / "mlm")
    by_path = fairness.crows_pairs(str(directory), pairs).to_frame()
    pd.testing.assert_frame_equal(by_path, fairness.crows_pairs(tiny_mlm, pairs).to_frame())


def test_scores_outside_zero_one_need_a_threshold_and_a_threshold_must_split_the_rows():
    frame = _frame(n=300)
    frame["decile"] = np.random.default_rng(0).integers(1, 11, len(frame))
    with pytest.raises(ValueError, match=r"score 'decile' ranges from 1 to 10.*threshold=.*"
                                         r"prediction="):
        audit(data=frame, sensitive_features="sex", label="y", score="decile")
    result = audit(data=frame, sensitive_features="sex", label="y", score="decile",
                   threshold=5, n_permutations=0)
    assert result.meta["parameters"]["threshold"] == 5
    share = result.by_group[result.by_group.metric == "selection_rate"]
    assert 0.3 < share.value.mean() < 0.8
    with pytest.raises(ValueError, match=r"threshold=11 gives every row the same decision "
                                         r"\(negative\).*from 1 to 10"):
        audit(data=frame, sensitive_features="sex", label="y", score="decile", threshold=11)
    with pytest.raises(ValueError, match=r"threshold=0.99 .*\(negative\)"):
        audit(data=frame.assign(score=frame.score * 0.5), sensitive_features="sex", label="y",
              score="score", threshold=0.99)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        audit(data=frame, sensitive_features="sex", label="y", score="decile",
              threshold=float("nan"))


def test_a_model_with_one_decision_for_every_row_is_warned_about():
    frame = _frame(n=300, seed=4)
    frame["y"] = (frame["x"] > 0).astype(int)
    model = _linear_model({"x": 3.0}, frame)
    with pytest.warns(explain.ExplainWarning, match="threshold=1 gives every row the same"):
        audit(model, frame, sensitive_features="sex", label="y", threshold=1.0,
              n_permutations=0)


def test_figures_render_and_frames_are_tidy():
    result = audit(data=_frame(n=800), sensitive_features=["sex", "race"], label="y",
                   score="score", n_permutations=399)
    assert list(result.to_frame().columns) == ["sensitive_feature", "group", "class_label",
                                               "metric", "value", "ci_low", "ci_high", "count",
                                               "denominator", "small_group"]
    frame = result.to_frame()
    tpr = frame[(frame.metric == "true_positive_rate") & (frame.sensitive_feature == "sex")]
    data = _frame(n=800)
    assert sorted(tpr.denominator) == sorted(data.groupby("sex").y.sum())
    assert list(result.disparities.columns) == [
        "sensitive_feature", "class_label", "measure", "difference", "ratio", "high_group",
        "low_group", "test", "p_value", "p_value_holm", "significant", "conclusion", "n_groups",
        "small_groups", "excluded_groups"]
    assert list(result.contrasts.columns) == [
        "sensitive_feature", "class_label", "metric", "group", "reference_group", "value",
        "reference_value", "difference", "ci_low", "ci_high", "denominator",
        "reference_denominator", "small_group"]
    assert set(result.disparities.conclusion) <= set(CONCLUSIONS)
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
                   classes=["cat", "dog", "eel"], n_permutations=399)
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
              n_permutations=199),
        weat(vectors, tests={"t": {"first_target": ["a", "b"], "second_target": ["c", "d"],
                                   "first_attribute": ["e", "f"],
                                   "second_attribute": ["g", "h"]}}, n_permutations=10),
    ]
    for result in results:
        page = result._repr_html_()
        assert "<img" in page and "data:image/png;base64," in page
        assert not re.search(r"(src|href)=['\"]https?://", page)


def test_every_fairness_result_follows_the_result_protocol(tmp_path, tiny_mlm, tiny_mlp):
    """One behaviour for every result: unknown options raise, plot(kind, ax=ax) draws the same
    figure as plot(kind) (or refuses ax), results are immutable, export writes what applies."""
    from explain import fairness
    from explain.plotting import new_figure

    frame = _frame(n=300)
    words = ("a", "b", "c", "d", "e", "f", "g", "h")
    vectors = (words, np.random.default_rng(0).normal(size=(8, 4)))
    pairs = pd.DataFrame({"sent_more": ["He is a nurse.", "She can fix cars."],
                          "sent_less": ["She is a nurse.", "He can fix cars."],
                          "stereo_antistereo": ["stereo", "antistereo"],
                          "bias_type": ["gender", "gender"]})
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(60, 5)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", explain.ExplainWarning)
        results = {
            "scores": audit(data=frame, sensitive_features="sex", label="y", score="score",
                            n_permutations=199),
            "decisions": audit(data=frame, sensitive_features="sex", prediction="pred",
                               n_permutations=199),
            "weat": fairness.weat(vectors, tests={"t": {
                "first_target": ["a", "b"], "second_target": ["c", "d"],
                "first_attribute": ["e", "f"], "second_attribute": ["g", "h"]}},
                min_words=2, n_permutations=10),
            "crows_pairs": fairness.crows_pairs(tiny_mlm, pairs),
            "proxies": fairness.proxies(frame, "sex", features=["x", "race"]),
            "probe": fairness.representation_probe(tiny_mlp, inputs, ["u", "v"] * 30,
                                                   n_splits=3),
        }
    assert results["decisions"].applicable_plots() == ("metrics", "disparities", "contrasts")
    assert set(results["decisions"].tables()) == {"by_group", "disparities", "contrasts"}
    for name, result in results.items():
        with pytest.raises(TypeError, match=r"unknown option\(s\) 'colour'; valid: ax"):
            result.plot(colour="red")
        for kind in result.applicable_plots():
            alone = result.plot(kind)
            fig, ax = new_figure(*alone.get_size_inches())
            if kind == "thresholds":
                with pytest.raises(TypeError, match="takes no ax"):
                    result.plot(kind, ax=ax)
                continue
            assert result.plot(kind, ax=ax) is fig
            assert figure_bytes(fig) == figure_bytes(alone), (name, kind)
        with pytest.raises(AttributeError, match="immutable"):
            result.meta = {}
        with pytest.raises(TypeError, match="read-only"):
            result.meta["method"] = "changed"
        directory = result.export(tmp_path / name)
        written = sorted(path.name for path in directory.iterdir())
        assert written == sorted([*(f"{table}.csv" for table in result.tables()),
                                  *(f"{kind}.png" for kind in result.applicable_plots()),
                                  "meta.json", ".explain-output.json"]), name
        for table, content in result.tables().items():
            assert (directory / f"{table}.csv").read_text() == content.to_csv(index=False)


def test_holm_matches_the_step_down_definition_and_keeps_nan():
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = rng.uniform(size=7) ** 3
        p[rng.uniform(size=7) < 0.2] = np.nan
        finite = np.flatnonzero(np.isfinite(p))
        order = finite[np.argsort(p[finite], kind="stable")]
        expected, running = np.full(7, np.nan), 0.0
        for rank, index in enumerate(order):  # Holm (1979): max over the smaller ones, capped
            running = max(running, min(1.0, (len(order) - rank) * p[index]))
            expected[index] = running
        np.testing.assert_array_equal(holm(p), expected)
