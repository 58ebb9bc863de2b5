"""Reference model ``digits``: a small ResNet on scikit-learn's 8x8 handwritten digits.

Recipe (fixed seed 0, seconds on 2 CPU cores):

* data: ``sklearn.datasets.load_digits()`` (1,797 grey-scale 8x8 images of the digits 0-9, the
  UCI "Optical Recognition of Handwritten Digits" test set, CC BY 4.0; ships with
  scikit-learn, BSD-3-Clause), pixel values 0..16 scaled to [0, 1] by dividing by 16;
* split: 20% held out, stratified by digit (``numpy`` generator, seed 0): 1,438 train / 359
  held-out images;
* model: ``explain.nets.SmallResNet`` (input ``(1, 8, 8)``; a 16-channel stem, a residual block
  of 16 and one of 32 channels at stride 2 with a 1x1 projection shortcut, BatchNorm after every
  convolution, global average pool, 10 logits);
* training: AdamW (lr 3e-3, weight decay 1e-4), batch 64, ``EPOCHS`` epochs, cross-entropy,
  batches drawn by a seeded ``torch.Generator``;
* evaluation: held-out accuracy against the majority class (target >= 0.97).

``RECIPE_VERSION`` is stored in the card; raise it whenever the recipe changes what it trains,
so that a checkpoint cached by an older recipe is not taken for the current one.

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

__all__ = ["load_split", "save_evaluated", "train"]

SEED = 0
HELDOUT_FRACTION = 0.2
EPOCHS = 20
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
CHANNELS = (16, 32)
LABEL_NAMES = tuple(str(d) for d in range(10))
#: Version 1 was the plain two-convolution ``SmallCNN``; 2 is the ResNet.
RECIPE_VERSION = 2


def train(name: str, target: Path, *, progress: bool = True, epochs: int | None = None) -> dict:
    """Train, evaluate and save the digits ResNet into ``target``; return its card.

    ``epochs``: ``None`` for ``EPOCHS`` (the reference model); fewer only for quick checks of
    the recipe itself (the card records what was used).
    """
    epochs = EPOCHS if epochs is None else epochs
    started = time.perf_counter()
    images, labels, train_index, heldout_index = load_split()
    x_train = torch.from_numpy(images[train_index])
    y_train = torch.from_numpy(labels[train_index])

    threads = torch.get_num_threads()
    # Batches of 64 8x8 images are too small to share between threads: on 2 busy cores two
    # threads trained 6x slower than one. One thread also makes the weights independent of the
    # machine's thread count. The caller's setting is put back below.
    torch.set_num_threads(1)
    try:
        net = _fit(x_train, y_train, epochs=epochs, name=name, progress=progress)
    finally:
        torch.set_num_threads(threads)
    train_seconds = time.perf_counter() - started

    return save_evaluated(
        net, name, target, images, labels, train_index, heldout_index,
        description="small ResNet classifying scikit-learn's 8x8 handwritten digits",
        split_method="stratified by label", recipe_version=RECIPE_VERSION,
        training={"architecture": "explain.nets.SmallResNet", "channels": list(CHANNELS),
                  "residual_blocks": len(CHANNELS), "batch_norm": True,
                  "epochs": epochs, "batch_size": BATCH_SIZE, "optimizer": "AdamW",
                  "learning_rate": LEARNING_RATE, "weight_decay": WEIGHT_DECAY,
                  "loss": "cross-entropy"},
        train_seconds=train_seconds)


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits (``(N, 1, 8, 8)`` in [0, 1]), their labels, and the recipe's stratified
    ``(train_indices, heldout_indices)``: the split every digits recipe (also ``vit``) uses."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (np.asarray(digits.images, dtype=np.float32) / 16.0)[:, None]
    labels = np.asarray(digits.target, dtype=np.int64)
    return (images, labels,
            *stratified_split(labels, fraction=HELDOUT_FRACTION, seed=SEED))


def save_evaluated(net, name: str, target: Path, images, labels, train_index, heldout_index, *,
                   description: str, split_method: str, recipe_version: int,
                   training: dict, train_seconds: float) -> dict:
    """Evaluate a trained digits classifier on the held-out split, write its checkpoint (card
    and ``heldout.csv`` of pixels ``p0``..``p63`` and ``label``) into ``target``; the card."""
    with torch.inference_mode():
        predicted = net(torch.from_numpy(images[heldout_index])).argmax(dim=-1).numpy()
    heldout_labels = labels[heldout_index]
    metrics = heldout_metrics(predicted, labels[train_index], heldout_labels)
    loaded = explain.load_model(net, input_shape=(1, 8, 8), label_names=list(LABEL_NAMES),
                                name=name)
    heldout = pd.DataFrame(images[heldout_index].reshape(len(heldout_index), 64),
                           columns=[f"p{i}" for i in range(64)])
    heldout["label"] = heldout_labels
    card = make_card(
        name=name, description=description,
        data={"loader": "sklearn.datasets.load_digits", "source_package": "scikit-learn",
              "licence": "CC BY 4.0 (UCI Optical Recognition of Handwritten Digits); "
                         "scikit-learn BSD-3-Clause",
              "rows": len(labels), "preprocessing": "pixels 0..16 divided by 16 -> [0, 1]",
              "label": "digit 0-9"},
        split={"method": split_method, "heldout_fraction": HELDOUT_FRACTION,
               "train_rows": len(train_index), "heldout_rows": len(heldout_index),
               "seed": SEED},
        seed=SEED,
        recipe_version=recipe_version,
        input_shape=[1, 8, 8],
        label_names=list(LABEL_NAMES),
        training=training,
        metrics=metrics,
        training_time_seconds=train_seconds,
    )
    save_checkpoint(loaded, target, card=card, heldout=heldout)
    return card


def _fit(x_train: torch.Tensor, y_train: torch.Tensor, *, epochs: int, name: str,
         progress: bool) -> nets.SmallResNet:
    """The ResNet after ``epochs`` seeded AdamW epochs, in eval mode; global RNG untouched."""
    from tqdm.auto import tqdm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        net = nets.SmallResNet(in_channels=1, n_classes=10, channels=CHANNELS)
        generator = torch.Generator().manual_seed(SEED)
        optimizer = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE,
                                      weight_decay=WEIGHT_DECAY)
        loss_fn = torch.nn.CrossEntropyLoss()
        net.train()
        for _ in tqdm(range(epochs), desc=f"{name}: train", disable=not progress):
            order = torch.randperm(len(y_train), generator=generator)
            for start in range(0, len(order), BATCH_SIZE):
                index = order[start:start + BATCH_SIZE]
                loss = loss_fn(net(x_train[index]), y_train[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        net.eval()
    return net
