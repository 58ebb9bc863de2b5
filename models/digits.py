"""Reference model ``digits``: a small CNN on scikit-learn's 8x8 handwritten digits.

Recipe (fixed seed 0, seconds on 2 CPU cores):

* data: ``sklearn.datasets.load_digits()`` (1,797 grey-scale 8x8 images of the digits 0-9, the
  UCI "Optical Recognition of Handwritten Digits" test set, CC BY 4.0; ships with
  scikit-learn, BSD-3-Clause), pixel values 0..16 scaled to [0, 1] by dividing by 16;
* split: 20% held out, stratified by digit (``numpy`` generator, seed 0): 1,438 train / 359
  held-out images;
* model: ``explain.nets.SmallCNN`` (input ``(1, 8, 8)``, conv 16 and 32 channels, 10 logits);
* training: AdamW (lr 3e-3, weight decay 1e-4), batch 64, ``EPOCHS`` epochs, cross-entropy,
  batches drawn by a seeded ``torch.Generator``;
* evaluation: held-out accuracy against the majority class.

The checkpoint is an ``explain`` native directory (``config.json`` + ``model.safetensors``) with
``model_card.json`` and ``heldout.csv``: pixel columns ``p0``..``p63`` (row-major, already scaled
to [0, 1]) and ``label``. Label names are ``"0"``..``"9"``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import explain
from explain import nets

from ._recipe import heldout_metrics, make_card, save_checkpoint, stratified_split

__all__ = ["train"]

SEED = 0
HELDOUT_FRACTION = 0.2
EPOCHS = 30
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
LABEL_NAMES = tuple(str(d) for d in range(10))


def train(name: str, target: Path, *, progress: bool = True, epochs: int | None = None) -> dict:
    """Train, evaluate and save the digits CNN into ``target``; return its card.

    ``epochs``: ``None`` for ``EPOCHS`` (the reference model); fewer only for quick checks of
    the recipe itself (the card records what was used).
    """
    from sklearn.datasets import load_digits
    from tqdm.auto import tqdm

    epochs = EPOCHS if epochs is None else epochs
    started = time.perf_counter()
    digits = load_digits()
    images = (np.asarray(digits.images, dtype=np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    labels = np.asarray(digits.target, dtype=np.int64)
    train_index, heldout_index = stratified_split(labels, fraction=HELDOUT_FRACTION, seed=SEED)
    x_train = torch.from_numpy(images[train_index])
    y_train = torch.from_numpy(labels[train_index])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        cnn = nets.SmallCNN(in_channels=1, n_classes=10, height=8, width=8)
        generator = torch.Generator().manual_seed(SEED)
        optimizer = torch.optim.AdamW(cnn.parameters(), lr=LEARNING_RATE,
                                      weight_decay=WEIGHT_DECAY)
        loss_fn = torch.nn.CrossEntropyLoss()
        cnn.train()
        for _ in tqdm(range(epochs), desc=f"{name}: train", disable=not progress):
            order = torch.randperm(len(y_train), generator=generator)
            for start in range(0, len(order), BATCH_SIZE):
                index = order[start:start + BATCH_SIZE]
                loss = loss_fn(cnn(x_train[index]), y_train[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        cnn.eval()
    train_seconds = time.perf_counter() - started

    with torch.inference_mode():
        predicted = cnn(torch.from_numpy(images[heldout_index])).argmax(dim=-1).numpy()
    heldout_labels = labels[heldout_index]
    metrics = heldout_metrics(predicted, labels[train_index], heldout_labels)
    loaded = explain.load_model(cnn, input_shape=(1, 8, 8), label_names=list(LABEL_NAMES),
                                name=name)
    heldout = pd.DataFrame(images[heldout_index].reshape(len(heldout_index), 64),
                           columns=[f"p{i}" for i in range(64)])
    heldout["label"] = heldout_labels
    card = make_card(
        name=name,
        description="small CNN classifying scikit-learn's 8x8 handwritten digits",
        data={"loader": "sklearn.datasets.load_digits", "source_package": "scikit-learn",
              "licence": "CC BY 4.0 (UCI Optical Recognition of Handwritten Digits); "
                         "scikit-learn BSD-3-Clause",
              "rows": len(labels), "preprocessing": "pixels 0..16 divided by 16 -> [0, 1]",
              "label": "digit 0-9"},
        split={"method": "stratified by label", "heldout_fraction": HELDOUT_FRACTION,
               "train_rows": len(train_index), "heldout_rows": len(heldout_index),
               "seed": SEED},
        seed=SEED,
        input_shape=[1, 8, 8],
        label_names=list(LABEL_NAMES),
        training={"architecture": "explain.nets.SmallCNN", "channels": [16, 32],
                  "epochs": epochs, "batch_size": BATCH_SIZE, "optimizer": "AdamW",
                  "learning_rate": LEARNING_RATE, "weight_decay": WEIGHT_DECAY,
                  "loss": "cross-entropy"},
        metrics=metrics,
        training_time_seconds=train_seconds,
    )
    save_checkpoint(loaded, target, card=card, heldout=heldout)
    return card
