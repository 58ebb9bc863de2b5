"""Reference models of `explain`, installed as the package ``explain_models``.

The directory is ``models/`` in the repository; ``pyproject.toml`` installs it under the name
``explain_models`` so it never shadows a user's own ``models`` module. Each recipe trains (or
builds) one model with a fixed seed and saves it as a checkpoint that ``explain.load_model``
reads without this package and without pickle.

    path = explain_models.ensure("sentiment")     # trains on first use, then reuses the cache
    model = explain.load_model(path)

Checkpoints live in ``cache_dir()``: ``$EXPLAIN_CACHE/models`` (the Makefile sets
``EXPLAIN_CACHE=<repo>/.cache/explain``), else ``~/.cache/explain/models``. Each holds the
weights, ``model_card.json`` (data, split, seed, metrics, training time) and, for the dataset
models, ``heldout.csv``: the held-out rows with their label and protected columns, for audits.
The tiny randomly initialised models for tests are in ``explain_models.tiny``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

__all__ = ["RECIPES", "cache_dir", "ensure", "path"]

#: Recipe name -> module of this package that defines ``train(directory) -> dict`` (the card).
RECIPES: Mapping[str, str] = MappingProxyType({
    "sentiment": "sentiment",
    "compas": "tabular",
    "adult": "tabular",
    "digits": "digits",
    "lm": "lm",
    "mlm": "mlm",
    "seq2seq": "seq2seq",
    "vit": "vit",
    "imagenet": "imagenet",
})


def cache_dir() -> Path:
    """Where trained checkpoints are kept (created on demand)."""
    root = os.environ.get("EXPLAIN_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "explain"
    return base / "models"


def path(name: str) -> Path:
    """The checkpoint directory of recipe ``name`` (it may not exist yet)."""
    if name not in RECIPES:
        raise ValueError(f"unknown reference model {name!r}; valid: {', '.join(RECIPES)}")
    return cache_dir() / name


def ensure(name: str, *, retrain: bool = False, progress: bool = True) -> Path:
    """Return the checkpoint of ``name``, training it first if it is missing, was made by
    another version of its recipe (``RECIPE_VERSION`` against the card's ``recipe_version``),
    or ``retrain``."""
    from ._recipe import is_current

    target = path(name)
    module = importlib.import_module(f"{__name__}.{RECIPES[name]}")
    if not retrain and is_current(target, recipe_version=getattr(module, "RECIPE_VERSION", None)):
        return target
    module.train(name, target, progress=progress)
    return target
