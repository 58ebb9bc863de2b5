"""What the fairness analyses share: the model they run on, class probabilities, the Holm
adjustment, the confidence check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..checks import check_columns, positive_int, probability
from ..loading import LoadedModel, as_loaded
from ..text import read_texts

__all__ = ["check_confidence", "class_probabilities", "holm", "loaded_model"]


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values over the finite entries (NaN stays NaN)."""
    p_values = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(p_values), np.nan)
    finite = np.flatnonzero(np.isfinite(p_values))
    order = finite[np.argsort(p_values[finite], kind="stable")]
    scaled = (len(order) - np.arange(len(order))) * p_values[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def loaded_model(model: Any, *, analysis: str) -> LoadedModel | None:
    """The model an analysis runs on (``explain.loading.as_loaded``); ``None`` as it is (the
    analyses that can run without a model say so)."""
    return None if model is None else as_loaded(model, analysis=analysis)


def class_probabilities(model: Any, data: pd.DataFrame | Sequence[str], *,
                        text: str | None = None, batch_size: int = 64) -> np.ndarray:
    """Softmax class probabilities ``(n_rows, n_classes)`` (float64) of a classifier.

    Tabular models read ``data`` through ``model.encode_frame``; text models read the column
    ``text`` of ``data`` (or ``data`` itself when it is a list of strings).
    """
    from ..hooks import preserved_state

    positive_int(batch_size, "batch_size")
    if model.task == "tabular-classification":
        if not isinstance(data, pd.DataFrame):
            raise TypeError("a tabular model reads a pandas.DataFrame of its raw columns")
        inputs = model.encode_frame(data)
        chunks = []
        with preserved_state(model), torch.no_grad():
            model.model.eval()
            for start in range(0, len(inputs), batch_size * 16):
                rows = model.to_device(inputs[start:start + batch_size * 16])
                chunks.append(torch.softmax(model.model(rows).double(), -1).cpu())
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, 2))
    if model.task != "sequence-classification":
        raise TypeError(f"{model.name} is a {model.task!r} model; group audits and "
                        f"counterfactual probes need a classifier (sequence-classification or "
                        f"tabular-classification)")
    if isinstance(data, pd.DataFrame):
        if text is None:
            raise ValueError(f"{model.name} is a text classifier: pass text=COLUMN, the column "
                             f"of data that holds the texts")
        check_columns(data, {"text": text}, where="the data")
        texts = read_texts(data, text)
    else:
        texts = [data] if isinstance(data, str) else list(data)
    chunks = []
    with preserved_state(model), torch.no_grad():
        model.model.eval()
        for start in range(0, len(texts), batch_size):
            batch = model.encode_texts(texts[start:start + batch_size])
            output = model.model(**model.to_device(batch.model_inputs()))
            logits = output.logits if hasattr(output, "logits") else output
            chunks.append(torch.softmax(logits.double(), -1).cpu())
    return torch.cat(chunks).numpy()


def check_confidence(confidence: Any) -> float:
    """The level of an interval, in (0, 1)."""
    return probability(confidence, "confidence", fix="pass e.g. confidence=0.95")
