"""What every reference recipe shares: stratified splits, the model card, atomic saving.

A checkpoint directory is written complete or not at all: the model (``explain.save_model``),
``model_card.json`` and ``heldout.csv`` go to a staging sibling first, which then replaces the
target in one rename.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import explain
from explain.provenance import versions

__all__ = ["HELDOUT_FILE", "accuracy", "heldout_metrics", "is_current", "majority_accuracy",
           "make_card", "save_checkpoint", "stratified_split"]

#: The held-out rows' file in every checkpoint (written by ``save_checkpoint``, named in the card).
HELDOUT_FILE = "heldout.csv"


def stratified_split(labels: np.ndarray, *, fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: ``(train_indices, heldout_indices)``, both sorted.

    Within each class, ``round(fraction * n_class)`` rows chosen by a ``numpy`` generator seeded
    with ``seed`` are held out.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        count = round(fraction * len(members))
        held.append(rng.permutation(members)[:count])
    heldout = np.sort(np.concatenate(held))
    mask = np.ones(len(labels), dtype=bool)
    mask[heldout] = False
    return np.flatnonzero(mask), heldout


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(labels)))


def majority_accuracy(train_labels: np.ndarray, heldout_labels: np.ndarray) -> float:
    """Held-out accuracy of always predicting the most frequent training class."""
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    return accuracy(np.full(len(heldout_labels), values[np.argmax(counts)]), heldout_labels)


def heldout_metrics(predicted: np.ndarray, train_labels: np.ndarray,
                    heldout_labels: np.ndarray, **extra: float) -> dict[str, float]:
    """Held-out accuracy, the majority-class baseline, ``extra`` metrics, then the margin over
    the baseline (``accuracy_over_baseline``): the card's ``metrics``."""
    metrics = {"heldout_accuracy": accuracy(predicted, heldout_labels),
               "majority_baseline_accuracy": majority_accuracy(train_labels, heldout_labels),
               **extra}
    metrics["accuracy_over_baseline"] = (metrics["heldout_accuracy"]
                                         - metrics["majority_baseline_accuracy"])
    return metrics


def make_card(*, name: str, description: str, data: Mapping[str, Any],
              split: Mapping[str, Any], seed: int, metrics: Mapping[str, float],
              training_time_seconds: float, **extra: Any) -> dict[str, Any]:
    """The model card stored as ``model_card.json`` (keys documented in ``models/README.md``);
    ``split`` gains ``heldout_file``."""
    return {
        "name": name,
        "description": description,
        "data": dict(data),
        "split": {**split, "heldout_file": HELDOUT_FILE},
        "seed": seed,
        **extra,
        "metrics": {k: round(float(v), 6) for k, v in metrics.items()},
        "training_time_seconds": round(float(training_time_seconds), 2),
        "versions": versions(),
    }


def is_current(target: Path, *, recipe_version: int | None) -> bool:
    """Whether ``target`` holds a complete checkpoint whose card records ``recipe_version``.

    A recipe that defines no ``RECIPE_VERSION`` passes ``None``, which matches cards without the
    key; a card of an older version (or none) is not current, so the caller retrains.
    """
    card = Path(target) / "model_card.json"
    if not card.is_file():
        return False
    return json.loads(card.read_text()).get("recipe_version") == recipe_version


def save_checkpoint(loaded: explain.LoadedModel, target: Path, *, card: Mapping[str, Any],
                    heldout: pd.DataFrame) -> Path:
    """Write model + card + ``heldout.csv`` to ``target`` atomically (replacing what was there)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging_root = Path(tempfile.mkdtemp(prefix=f".{target.name}-staging-", dir=target.parent))
    old = None
    try:
        staging = explain.save_model(loaded, staging_root / target.name, card=card)
        heldout.to_csv(staging / HELDOUT_FILE, index=False)
        # mkdtemp makes private directories; a checkpoint is as readable as any cache file.
        staging.chmod(0o755)
        for file in staging.iterdir():
            file.chmod(0o644)
        if target.exists():
            old = target.parent / f".{target.name}-old-{os.getpid()}"
            target.rename(old)
        staging.rename(target)
    except BaseException:
        if old is not None and old.exists() and not target.exists():
            old.rename(target)
        raise
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target
