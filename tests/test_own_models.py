"""The user's own plain torch module on an encoded table: audit, representation probe and
attribution in two lines each (issue 12, point 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import explain

FEATURES = ["income", "debt", "sex=F", "sex=M"]


@pytest.fixture(scope="module")
def own_model():
    """A seeded nn.Sequential trained a few steps on a synthetic encoded table (one-hot 'sex')."""
    rng = np.random.default_rng(0)
    n = 400
    sex = rng.choice(["F", "M"], n)
    income, debt = rng.normal(size=n), rng.normal(size=n)
    y = (income - 0.5 * debt + 0.8 * (sex == "M") + 0.3 * rng.normal(size=n) > 0.4).astype(int)
    table = pd.DataFrame({"income": income, "debt": debt, "sex=F": (sex == "F") * 1.0,
                          "sex=M": (sex == "M") * 1.0, "sex": sex, "approved": y})
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    x = torch.tensor(table[FEATURES].to_numpy(), dtype=torch.float32)
    for _ in range(50):
        optimiser.zero_grad()
        nn.functional.cross_entropy(net(x), torch.tensor(y)).backward()
        optimiser.step()
    loaded = explain.load_model(net, feature_names=FEATURES, feature_groups=[["sex=F", "sex=M"]],
                                label_names=["denied", "approved"])
    with torch.no_grad():
        predicted = net(x).argmax(1).numpy()
    return loaded, table, predicted


def test_audit_of_own_module_is_the_audit_of_its_predictions(own_model):
    loaded, table, predicted = own_model
    result = explain.audit(loaded, table, sensitive_features="sex", label="approved",
                           n_permutations=0)
    rows = result.by_group.set_index(["group", "metric"])["value"]
    by_hand = pd.Series(predicted == 1).groupby(table["sex"].to_numpy()).mean()
    accuracy = pd.Series(predicted == table["approved"].to_numpy()).groupby(
        table["sex"].to_numpy()).mean()
    assert 0 < by_hand.min() < by_hand.max() < 1  # both classes are predicted
    for group in ("F", "M"):
        assert rows[(group, "selection_rate")] == pytest.approx(by_hand[group], abs=1e-12)
        assert rows[(group, "accuracy")] == pytest.approx(accuracy[group], abs=1e-12)


def test_representation_probe_of_own_module_shows_its_baselines(own_model):
    loaded, table, _ = own_model
    frame = explain.representation_probe(loaded, table, "sex").to_frame()
    assert list(frame["layer"]) == ["0", "2"]  # the two Linear layers
    majority = table["sex"].value_counts(normalize=True).max()
    assert frame["majority_baseline"].to_numpy() == pytest.approx(majority)
    # 'sex' is the one-hot group of the model's inputs, so the raw-input probe reads it
    assert frame["is_model_input"].all() and (frame["input_accuracy"] > 0.95).all()
    assert frame["accuracy"].between(0, 1).all()


def test_integrated_gradients_of_own_module_is_complete_with_groups_summed(own_model):
    loaded, table, _ = own_model
    rows = table.head(8)
    frame = explain.attribute(loaded, rows, method="integrated_gradients").to_frame()
    assert list(frame.loc[frame["input_id"] == 0, "label"]) == ["income", "debt", "sex"]
    x = torch.tensor(rows[FEATURES].to_numpy(), dtype=torch.float32)
    with torch.no_grad():
        probabilities = torch.softmax(loaded.model(x).double(), -1)
        at_baseline = torch.softmax(loaded.model(torch.zeros(1, 4)).double(), -1)[0]
    for i, group in frame.groupby("input_id"):
        target = loaded.label_index(group["target"].iloc[0])
        change = float(probabilities[i, target] - at_baseline[target])
        assert abs(group["score"].sum() - change) < 1e-3 * abs(change)
    # the same from the encoded tensor
    again = explain.attribute(loaded, x, method="integrated_gradients").to_frame()
    assert np.allclose(again["score"], frame["score"], atol=1e-6)
