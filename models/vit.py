"""Reference model ``vit``: a small vision transformer on scikit-learn's 8x8 handwritten digits.

Recipe (fixed seed 0, about a minute on 2 idle CPU cores):

* data and split: exactly those of ``digits`` (``sklearn.datasets.load_digits()``, pixels 0..16
  divided by 16; 20% held out, stratified by digit, seed 0: 1,438 train / 359 held-out images),
  so the two reference image models are compared on the same held-out images;
* model: ``explain.nets.VisionTransformer`` (input ``(1, 8, 8)``; 2x2 patches, so 16 patch
  tokens after a learned ``[CLS]``; learned positions; ``N_LAYERS`` pre-norm blocks of
  ``nn.MultiheadAttention`` with ``N_HEADS`` heads, width ``D_MODEL``; 10 logits from ``[CLS]``);
* training: AdamW (peak lr ``LEARNING_RATE``, weight decay ``WEIGHT_DECAY``) on a one-cycle
  schedule (15% warm-up, cosine decay), batch 64, ``EPOCHS`` epochs, cross-entropy, batches
  drawn by a seeded ``torch.Generator``;
* evaluation: held-out accuracy against the majority class (target >= 0.95).

The checkpoint is an ``explain`` native directory (``config.json`` naming the architecture
``vit`` + ``model.safetensors``) with ``model_card.json`` and ``heldout.csv`` laid out as
``digits``'s: pixel columns ``p0``..``p63`` (row-major, in [0, 1]) and ``label``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from explain import nets

from .digits import SEED, load_split, save_evaluated

__all__ = ["train"]

EPOCHS = 40
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.05
PATCH_SIZE = 2
D_MODEL = 64
N_HEADS = 4
N_LAYERS = 2
D_FF = 128
RECIPE_VERSION = 1


def train(name: str, target: Path, *, progress: bool = True, epochs: int | None = None) -> dict:
    """Train, evaluate and save the digits ViT into ``target``; return its card.

    ``epochs``: ``None`` for ``EPOCHS`` (the reference model); fewer only for quick checks of
    the recipe itself (the card records what was used).
    """
    epochs = EPOCHS if epochs is None else epochs
    started = time.perf_counter()
    images, labels, train_index, heldout_index = load_split()

    threads = torch.get_num_threads()
    # As in digits: batches of 64 tiny images do not pay for a second thread, and one thread
    # makes the weights independent of the machine's thread count. Put back below.
    torch.set_num_threads(1)
    try:
        net = _fit(torch.from_numpy(images[train_index]), torch.from_numpy(labels[train_index]),
                   epochs=epochs, name=name, progress=progress)
    finally:
        torch.set_num_threads(threads)
    train_seconds = time.perf_counter() - started

    return save_evaluated(
        net, name, target, images, labels, train_index, heldout_index,
        description="small vision transformer (2x2 patches + [CLS]) classifying "
                    "scikit-learn's 8x8 handwritten digits",
        split_method="stratified by label (the split of the digits recipe)",
        recipe_version=RECIPE_VERSION,
        training={"architecture": "explain.nets.VisionTransformer", **net.config,
                  "epochs": epochs, "batch_size": BATCH_SIZE, "optimizer": "AdamW",
                  "schedule": "one-cycle (15% warm-up, cosine decay)",
                  "learning_rate": LEARNING_RATE, "weight_decay": WEIGHT_DECAY,
                  "loss": "cross-entropy"},
        train_seconds=train_seconds)


def _fit(x_train: torch.Tensor, y_train: torch.Tensor, *, epochs: int, name: str,
         progress: bool) -> nets.VisionTransformer:
    """The ViT after ``epochs`` seeded AdamW epochs, in eval mode; global RNG untouched."""
    from tqdm.auto import tqdm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        net = nets.VisionTransformer(in_channels=1, n_classes=10, height=8, width=8,
                                     patch_size=PATCH_SIZE, d_model=D_MODEL, n_heads=N_HEADS,
                                     n_layers=N_LAYERS, d_ff=D_FF)
        generator = torch.Generator().manual_seed(SEED)
        optimizer = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE,
                                      weight_decay=WEIGHT_DECAY)
        steps = epochs * -(-len(y_train) // BATCH_SIZE)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LEARNING_RATE,
                                                       total_steps=steps, pct_start=0.15)
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
                schedule.step()
        net.eval()
    return net
