"""Representation probes recover an attribute from the layer where it was planted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import explain
from explain.fairness import default_layers, representation_probe
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


@pytest.mark.parametrize("planted_at", [1, 2])
def test_probe_finds_the_planted_layer(planted_at):
    rng = np.random.default_rng(0)
    attribute = rng.integers(0, 2, 300)
    x = np.hstack([rng.normal(size=(300, 10)), attribute[:, None] * 2.0 - 1.0])
    model = _planted(planted_at)
    result = representation_probe(model, x, attribute, n_splits=5)
    table = result.to_frame().set_index("layer")
    assert list(table.index) == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    for i in range(4):
        row = table.loc[f"blocks.{i}"]
        if i < planted_at:
            assert row.accuracy < 0.65  # chance: the block has never seen the attribute
        else:
            assert row.accuracy > 0.95
            assert row.selectivity > 0.3
        assert row.control_accuracy < 0.7
    assert explain.hooks.count_hooks(model) == 0
    assert representation_probe(model, x, attribute).to_frame().equals(result.to_frame())


def test_text_model_layers_and_figure(tiny_bert):
    assert default_layers(tiny_bert) == ["bert.embeddings", "bert.encoder.layer.0",
                                         "bert.encoder.layer.1"]
    texts = [f"{p} is a doctor number {i}" for i in range(12) for p in ("he", "she")]
    result = representation_probe(tiny_bert, texts, ["m", "f"] * 12, n_splits=3)
    assert len(result.to_frame()) == 3
    assert result.to_frame().majority_baseline.eq(0.5).all()
    assert figure_bytes(result.plot())[:4] == b"\x89PNG"
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
