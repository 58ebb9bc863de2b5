"""Representation probes recover an attribute from the layer where it was planted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import explain
from explain.fairness import default_layers, representation_probe
from explain.fairness.representation import _held_out
from explain.plotting import figure_bytes


class Planted(nn.Module):
    """Four linear blocks on 10 noise features; the attribute (input column 10) enters only at
    block ``planted_at``, so blocks before it cannot know it and blocks from it on can."""

    def __init__(self, planted_at: int = 2, width: int = 16):
        super().__init__()
        self.planted_at = planted_at
        self.blocks = nn.ModuleList(
            nn.Linear((10 if i == 0 else width) + (1 if i == planted_at else 0), width)
            for i in range(4))
        self.out = nn.Linear(width, 2)

    def forward(self, x):
        h, attribute = x[:, :10], x[:, 10:]
        for i, block in enumerate(self.blocks):
            h = torch.tanh(block(torch.cat([h, attribute], 1) if i == self.planted_at else h))
        return self.out(h)


def _planted(planted_at):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = Planted(planted_at)
    return explain.load_model(module, feature_names=[f"x{i}" for i in range(11)],
                              label_names=["a", "b"], name="planted")


def _planted_data(n=300):
    rng = np.random.default_rng(0)
    attribute = rng.integers(0, 2, n)
    return np.hstack([rng.normal(size=(n, 10)), attribute[:, None] * 2.0 - 1.0]), attribute


@pytest.mark.parametrize("planted_at", [1, 2])
def test_probe_finds_the_planted_layer(planted_at):
    x, attribute = _planted_data()
    model = _planted(planted_at)
    result = representation_probe(model, x, attribute, n_splits=5)
    table = result.to_frame().set_index("layer")
    assert list(table.index) == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    for i in range(4):
        row = table.loc[f"blocks.{i}"]
        if i < planted_at:
            assert row.accuracy < 0.65  # chance: the block has never seen the attribute
            assert row.accuracy_ci_low < row.majority_baseline
        else:
            assert row.accuracy > 0.95
            assert row.selectivity > 0.3
        assert row.accuracy_ci_low <= row.accuracy <= row.accuracy_ci_high
        assert row.control_accuracy < 0.7
    # the attribute is input column 10: the raw-input probe reads it straight away
    assert table.input_accuracy.eq(table.input_accuracy.iloc[0]).all()
    assert table.input_accuracy.iloc[0] > 0.95
    assert table.is_model_input.isna().all()  # unnamed values: not looked up
    assert "has no name" in result.summary()
    assert explain.hooks.count_hooks(model) == 0
    assert representation_probe(model, x, attribute).to_frame().equals(result.to_frame())


def test_held_out_accuracy_agrees_with_scikit_learn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, attribute = _planted_data()
    model = _planted(2)
    result = representation_probe(model, x, attribute, layers=["blocks.1"], seed=3)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    predicted = cross_val_predict(probe, x, attribute, cv=folds)
    assert result.to_frame().input_accuracy.iloc[0] == pytest.approx(
        np.mean(predicted == attribute))


def test_an_input_attribute_is_named_a_trivial_finding():
    x, attribute = _planted_data()
    model = _planted(2)
    as_input = representation_probe(model, x, pd.Series(attribute, name="x10"), n_splits=3)
    assert as_input.to_frame().is_model_input.eq(True).all()
    assert as_input.meta["parameters"]["attribute"] == "x10"
    assert "'x10' is an input of the model, so the probe recovers it trivially" in \
        as_input.summary()
    assert "(an input of the model)" in as_input.plot().axes[0].get_title()
    # the same values under a name the model does not read
    hidden = representation_probe(model, x, pd.Series(attribute, name="group"), n_splits=3)
    assert hidden.to_frame().is_model_input.eq(False).all()
    assert "trivially" not in hidden.summary() and "'group'" in hidden.summary()
    # a column of a frame is looked up by name
    frame = pd.DataFrame({"x": [0.0] * 6}, index=range(6)).assign(sex=["m", "f"] * 3)
    with pytest.raises(TypeError, match="needs inputs to be a pandas.DataFrame"):
        representation_probe(model, x, "x10")
    with pytest.raises(KeyError, match="'sexx' is not in the data"):
        representation_probe(model, frame, "sexx")


def test_held_out_interval_covers_a_known_accuracy():
    """Labels independent of 16 features: every probe's true accuracy is exactly 0.5 (balanced
    classes), and CV accuracies vary more than a binomial count. On these 120 runs the interval
    covers 0.975; the Wilson interval of the pooled predictions alone would cover 0.875."""
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(0)
    runs, covered = 120, 0
    for run in range(runs):
        x, y = rng.normal(size=(200, 16)), rng.permutation(np.arange(200) % 2)
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=run)
        _, low, high = _held_out(x, y, folds, regularization=1.0, max_iter=2000,
                                 confidence=0.95)
        covered += low <= 0.5 <= high
    assert covered / runs >= 0.92


def test_text_model_layers_and_figure(tiny_bert):
    assert default_layers(tiny_bert) == ["bert.embeddings", "bert.encoder.layer.0",
                                         "bert.encoder.layer.1"]
    texts = [f"{p} is a doctor number {i}" for i in range(12) for p in ("he", "she")]
    result = representation_probe(tiny_bert, texts, ["m", "f"] * 12, n_splits=3)
    table = result.to_frame()
    assert len(table) == 3
    assert table.majority_baseline.eq(0.5).all()
    # bag of tokens: the pronoun is a word of the input, so the raw-input probe is perfect
    assert table.input_accuracy.eq(1.0).all()
    assert result.meta["parameters"]["input_baseline"] == "bag of tokens"
    distinct = {t for text in texts for t in tiny_bert.tokenizer(text, add_special_tokens=False)
                ["input_ids"]}
    assert result.meta["parameters"]["n_input_features"] == len(distinct)
    assert table.is_model_input.isna().all() and "has no name" not in result.summary()
    figure = result.plot()
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == ["control (shuffled attribute)", "majority baseline", "probe (attribute)",
                      "raw input (bag of tokens)"]
    assert figure.axes[0].get_xticklabels()[0].get_text() == "raw input"
    assert figure_bytes(figure)[:4] == b"\x89PNG"
    assert explain.hooks.count_hooks(tiny_bert) == 0


def test_bad_input(tiny_bert):
    with pytest.raises(ValueError, match="one value"):
        representation_probe(tiny_bert, ["a b", "c d"], ["x", "x"])
    with pytest.raises(ValueError, match="2 inputs but 3"):
        representation_probe(tiny_bert, ["a b", "c d"], ["x", "y", "z"])
    with pytest.raises(ValueError, match="fewer than n_splits"):
        representation_probe(tiny_bert, ["a", "b", "c", "d"], ["x", "x", "x", "y"], n_splits=2)
    with pytest.raises(KeyError, match="did you mean"):
        representation_probe(tiny_bert, ["a", "b", "c", "d"], ["x", "y"] * 2, n_splits=2,
                             layers=["bert.encoder.layer.7"])
    assert explain.hooks.count_hooks(tiny_bert) == 0


def test_no_hook_left_when_the_forward_raises():
    model = _planted(2)
    wrong_width = np.zeros((20, 7))  # the model needs 11 features
    with pytest.raises(RuntimeError):
        representation_probe(model, wrong_width, [0, 1] * 10, n_splits=2)
    assert explain.hooks.count_hooks(model) == 0
    assert not model.model.training


def test_default_layers_are_the_families_representation_names(family_registry):
    """The probe reads what the model's family names, so a family registered from outside
    chooses the probed layers (here the odd blocks only)."""
    from explain.families import Family, register_family

    class OddProbe(Planted):
        pass

    register_family(Family(
        name="test-fairness-odd-blocks", description="test: a Planted network probed at its odd "
        "blocks", matches=lambda module: isinstance(module, OddProbe),
        representation_names=lambda module: ("blocks.1", "blocks.3")))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = OddProbe(1)
    model = explain.load_model(module, feature_names=[f"x{i}" for i in range(11)],
                               label_names=["a", "b"], name="odd")
    assert model.family.name == "test-fairness-odd-blocks"
    assert default_layers(model) == default_layers(module) == ["blocks.1", "blocks.3"]
    x, attribute = _planted_data(100)
    result = representation_probe(model, x, attribute, n_splits=3, control=False)
    assert list(result.to_frame()["layer"]) == ["blocks.1", "blocks.3"]
    assert default_layers(_planted(1)) == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
