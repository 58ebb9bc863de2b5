"""A linear tabular classifier with planted weights, shared by the fairness tests."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

import explain
from explain import nets


def linear_tabular(frame: pd.DataFrame, weights: dict[str, float], *, numeric: list[str],
                   categorical: tuple[str, ...] = ("sex",), **load_options):
    """``LoadedModel`` whose class-1 logit is ``sum(w * feature)`` over ``weights`` (encoded
    feature names such as ``"sex=male"``), with its ``TabularEncoder`` fitted on ``frame``."""
    encoder = nets.TabularEncoder.fit(frame, numeric=numeric, categorical=list(categorical))
    names = encoder.feature_names
    module = nn.Linear(len(names), 2)
    with torch.no_grad():
        module.weight.zero_()
        module.bias.zero_()
        for name, w in weights.items():
            module.weight[1, names.index(name)] = w
    loaded = explain.load_model(module, feature_names=names, label_names=["no", "yes"],
                                **load_options)
    loaded.encoder = encoder
    return loaded
