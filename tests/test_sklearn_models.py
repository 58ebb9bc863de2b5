"""Fitted scikit-learn classifiers through ``explain.load_model(estimator, ...)``: audits,
surrogates and the perturbation attributions work; gradient and layer methods, the logit and
representation probes are refused with what works instead (issue 12, point 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

import explain
from explain.attribution import METHODS, applicable_methods
from explain.attribution.surrogates import global_surrogate

FEATURES = ["income", "debt", "sex=F", "sex=M"]
GROUPS = [["sex=F", "sex=M"]]
PERTURBATION = ("feature_ablation", "shapley_sampling", "lime", "kernel_shap")


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    n = 300
    sex = rng.choice(["F", "M"], n)
    frame = pd.DataFrame({"income": rng.normal(size=n), "debt": rng.normal(size=n),
                          "sex=F": (sex == "F") * 1.0, "sex=M": (sex == "M") * 1.0})
    frame["approved"] = (frame.income - 0.5 * frame.debt + 0.8 * frame["sex=M"]
                         + 0.3 * rng.normal(size=n) > 0.4).map({True: "yes", False: "no"})
    frame["sex"] = sex
    return frame


def _fitted(kind: str, table: pd.DataFrame):
    x, y = table[FEATURES], table["approved"]
    if kind == "logistic":
        return LogisticRegression().fit(x, y)
    if kind == "forest":
        return RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0).fit(x, y)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)


@pytest.fixture(scope="module", params=["logistic", "forest", "pipeline"])
def fitted(request, table):
    estimator = _fitted(request.param, table)
    return estimator, explain.load_model(estimator, feature_groups=GROUPS)


def test_a_fitted_classifier_loads_with_its_names_classes_and_probabilities(fitted, table):
    estimator, loaded = fitted
    assert loaded.task == "tabular-classification"
    assert loaded.family.name == "sklearn" and loaded.family.opaque
    assert loaded.feature_names == tuple(FEATURES)  # from feature_names_in_
    assert loaded.label_names == ("no", "yes")      # from classes_
    assert loaded.feature_groups == {"sex": [2, 3]}
    x = loaded.encode_frame(table)
    with torch.no_grad():
        probabilities = torch.softmax(loaded.model(x).double(), -1).numpy()
    assert np.allclose(probabilities, estimator.predict_proba(table[FEATURES]), atol=1e-6)
    assert len(loaded.provenance["weights_sha256"]) == 64


def test_audit_is_the_audit_of_its_predictions(fitted, table):
    estimator, loaded = fitted
    result = explain.audit(loaded, table, sensitive_features="sex", label="approved",
                           n_permutations=0)
    rows = result.by_group.set_index(["group", "metric"])["value"]
    predicted = pd.Series(estimator.predict(table[FEATURES]) == "yes")
    by_hand = predicted.groupby(table["sex"].to_numpy()).mean()
    assert 0 < by_hand.min() < by_hand.max() < 1
    for group in ("F", "M"):
        assert rows[(group, "selection_rate")] == pytest.approx(by_hand[group], abs=1e-12)


def test_surrogate_fidelity_is_agreement_with_its_predictions(fitted, table):
    estimator, loaded = fitted
    result = global_surrogate(loaded, table)
    fidelity = result.fidelity.set_index("surrogate")
    predicted = loaded.label_names.index  # class name -> index, as the surrogate's labels
    labels = np.array([predicted(c) for c in estimator.predict(table[FEATURES])])
    features = table[FEATURES].to_numpy(dtype=np.float32).astype(np.float64)
    for name, surrogate in (("tree", result.tree), ("linear", result.linear)):
        row = fidelity.loc[name]
        overall = (row.fidelity_train * row.n_train + row.fidelity_test * row.n_test) \
            / (row.n_train + row.n_test)
        assert overall == pytest.approx((surrogate.predict(features) == labels).mean())
    assert fidelity.loc["tree", "fidelity_test"] > 0.8


@pytest.mark.parametrize("method", PERTURBATION)
def test_perturbation_methods_run_on_it(fitted, table, method):
    _, loaded = fitted
    options = {"shapley_sampling": {"n_samples": 5}, "lime": {"n_samples": 40},
               "kernel_shap": {"n_samples": 40}}.get(method, {})
    frame = explain.attribute(loaded, table.head(2), method=method, faithfulness=False,
                              **options)
    frame = frame.to_frame()
    assert list(frame.loc[frame.input_id == 0, "label"]) == ["income", "debt", "sex"]
    assert np.isfinite(frame["score"]).all() and (frame["score"] != 0).any()


def test_feature_ablation_is_the_hand_computed_drop_in_predict_proba(table):
    estimator = _fitted("logistic", table)
    loaded = explain.load_model(estimator, feature_groups=GROUPS)
    rows = table.head(5)
    frame = explain.attribute(loaded, rows, method="feature_ablation", target="yes",
                              faithfulness=False).to_frame()
    x = rows[FEATURES].to_numpy(dtype=float)
    p = estimator.predict_proba(pd.DataFrame(x, columns=FEATURES))[:, 1]
    for unit, columns in (("income", [0]), ("debt", [1]), ("sex", [2, 3])):
        ablated = x.copy()
        ablated[:, columns] = 0.0  # the default baseline: zeros
        drop = p - estimator.predict_proba(pd.DataFrame(ablated, columns=FEATURES))[:, 1]
        scores = frame[frame.label == unit].sort_values("input_id")["score"].to_numpy()
        assert np.allclose(scores, drop, atol=1e-5)


@pytest.mark.parametrize("method", ["feature_ablation", "shapley_sampling", "kernel_shap"])
def test_logistic_regression_agrees_with_the_same_model_in_torch(table, method):
    estimator = _fitted("logistic", table)
    loaded = explain.load_model(estimator, feature_groups=GROUPS)
    # the same model as a torch linear layer: logits (0, w.x + b) have the same softmax
    linear = nn.Linear(4, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(np.vstack([np.zeros(4), estimator.coef_[0]])))
        linear.bias.copy_(torch.tensor([0.0, estimator.intercept_[0]]))
    twin = explain.load_model(linear, feature_names=FEATURES, feature_groups=GROUPS,
                              label_names=["no", "yes"])
    options = {"n_samples": 10} if method != "feature_ablation" else {}
    ours, theirs = (explain.attribute(m, table.head(4), method=method, target="yes",
                                      faithfulness=False, **options).to_frame()
                    for m in (loaded, twin))
    assert np.allclose(ours["score"], theirs["score"], atol=1e-5)
    assert ours["score"].abs().max() > 0.01


@pytest.mark.parametrize("method", [m for m in applicable_methods("tabular-classification")
                                    if METHODS[m].family != "perturbation"])
def test_gradient_methods_are_refused_naming_the_methods_that_work(table, method):
    loaded = explain.load_model(_fitted("forest", table))
    with pytest.raises(ValueError, match=rf"method '{method}' needs gradients.*'sklearn'.*"
                                         rf"methods that work on it: {', '.join(PERTURBATION)}"):
        explain.attribute(loaded, table.head(2), method=method)


def test_logit_layers_and_probes_are_refused(table):
    loaded = explain.load_model(_fitted("logistic", table))
    with pytest.raises(ValueError, match="no score before the softmax.*output='probability'"):
        explain.attribute(loaded, table.head(2), method="feature_ablation", output="logit")
    with pytest.raises(ValueError, match="no layers to attribute to"):
        explain.attribution.attribute_layer(loaded, table.head(2))
    with pytest.raises(ValueError, match="no hidden layers for a probe to read"):
        explain.representation_probe(loaded, table, "sex")
    result = explain.attribute(loaded, table.head(2), method="feature_ablation",
                               faithfulness=False)
    assert result.meta["parameters"]["output"] == "probability"


def test_zero_probabilities_keep_a_finite_log_probability(table):
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(table[FEATURES],
                                                                        table["approved"])
    loaded = explain.load_model(forest)
    probabilities = forest.predict_proba(table[FEATURES])
    assert (probabilities == 0).any()  # the case the floor is for
    frame = explain.attribute(loaded, table.head(8), method="feature_ablation",
                              output="log_probability", faithfulness=False).to_frame()
    assert np.isfinite(frame["score"]).all()


def test_loading_errors_name_the_fix(table):
    with pytest.raises(ValueError, match="LogisticRegression is not fitted; call estimator.fit"):
        explain.load_model(LogisticRegression())
    on_array = LogisticRegression().fit(table[FEATURES].to_numpy(), table["approved"])
    with pytest.raises(ValueError, match=r"fitted on an array.*feature_names=\[\.\.\.\]"):
        explain.load_model(on_array)
    with pytest.raises(ValueError, match="reads 4 features but feature_names has 3"):
        explain.load_model(on_array, feature_names=FEATURES[:3])
    with pytest.raises(ValueError, match="differ from the columns"):
        explain.load_model(_fitted("logistic", table), feature_names=FEATURES[::-1])
    with pytest.raises(ValueError, match="loads as task 'tabular-classification'"):
        explain.load_model(on_array, feature_names=FEATURES, task="image-classification")
    loaded = explain.load_model(on_array, feature_names=FEATURES)
    assert loaded.feature_names == tuple(FEATURES) and loaded.label_names == ("no", "yes")
