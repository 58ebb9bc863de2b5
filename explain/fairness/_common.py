"""Input checks and model scoring shared by the fairness analyses."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..text import read_texts

__all__ = ["check_columns", "class_probabilities", "holm", "mean_interval", "resolve_model"]


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values over the finite entries (NaN stays NaN)."""
    p_values = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(p_values), np.nan)
    finite = np.flatnonzero(np.isfinite(p_values))
    order = finite[np.argsort(p_values[finite], kind="stable")]
    scaled = (len(order) - np.arange(len(order))) * p_values[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def mean_interval(values: np.ndarray, confidence: float, axis: int = -1
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval of the mean of the finite ``values`` along ``axis``: mean +- t(n-1)
    standard errors (NaN with fewer than 2 finite values; zero width when they are all equal).

    Why Student-t and not a bootstrap: a mean over few units (12 templates) is what these
    intervals are about, and there the percentile bootstrap (used before) covers 0.92 instead
    of 0.95 for normal units (0.86 over 6), and BCa no better (0.91 in a check of 1,000 runs);
    the t interval covers 0.955 for normal units and more than the bootstrap for skewed ones,
    though under 0.95 for strongly skewed units over few templates (0.87-0.90 over 12)
    (bench/bench_calibration.py, section ``means``; bench/RESULTS.md). It equals
    ``scipy.stats.ttest_1samp(values, 0).confidence_interval(confidence)``.
    """
    from scipy import stats

    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    n = finite.sum(axis=axis)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=axis)
        spread = np.nanstd(values, axis=axis, ddof=1) / np.sqrt(n)
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * spread
        low = np.where(n >= 2, mean - half, np.nan)
        high = np.where(n >= 2, mean + half, np.nan)
    return low, high


def check_columns(frame: pd.DataFrame, names: Sequence[str], what: str) -> list[str]:
    """Return ``names`` as a list; ``KeyError`` for a column that ``frame`` lacks, with close
    matches among its columns."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"data must be a pandas.DataFrame, got {type(frame).__name__}")
    columns = [str(c) for c in frame.columns]
    out = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{what} names a column by its name (str), got {name!r}")
        if name not in frame.columns:
            close = difflib.get_close_matches(name, columns, n=3, cutoff=0.5)
            hint = (f"did you mean {', '.join(map(repr, close))}?" if close
                    else f"the columns are {', '.join(map(repr, columns[:20]))}"
                    + (" ..." if len(columns) > 20 else ""))
            raise KeyError(f"{what} column {name!r} is not in the data; {hint}")
        out.append(name)
    return out


def as_names(value: str | Sequence[str], what: str) -> list[str]:
    """A column name or a sequence of them (``"a,b"`` is split on commas) -> list of names."""
    if isinstance(value, str):
        names = [v.strip() for v in value.split(",") if v.strip()]
    else:
        names = list(value)
    if not names:
        raise ValueError(f"no {what} given; pass a column name or a list of column names")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} lists a column twice: {names}")
    return names


def resolve_model(model: Any) -> Any:
    """A ``LoadedModel``, a reference-model name (``"compas"``, ``"sentiment"`` ...) that
    ``explain_models.ensure`` builds, ``"minilm"`` (the offline MiniLM encoder), or a checkpoint
    path -> ``LoadedModel``."""
    from ..loading import LoadedModel, load_model

    if model is None or isinstance(model, LoadedModel):
        return model
    if isinstance(model, str) and model == "minilm":
        from .. import datasets

        return load_model(datasets.minilm_path(), name="all-MiniLM-L6-v2")
    import explain_models

    return explain_models.load(model)


def class_probabilities(model: Any, data: pd.DataFrame | Sequence[str], *,
                        text: str | None = None, batch_size: int = 64) -> np.ndarray:
    """Softmax class probabilities ``(n_rows, n_classes)`` (float64) of a classifier.

    Tabular models read ``data`` through ``model.encode_frame``; text models read the column
    ``text`` of ``data`` (or ``data`` itself when it is a list of strings).
    """
    from ..hooks import preserved_state

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if model.task == "tabular-classification":
        if not isinstance(data, pd.DataFrame):
            raise TypeError("a tabular model reads a pandas.DataFrame of its raw columns")
        inputs = model.encode_frame(data)
        chunks = []
        with preserved_state(model), torch.no_grad():
            model.model.eval()
            for start in range(0, len(inputs), batch_size * 16):
                chunks.append(torch.softmax(model.model(inputs[start:start + batch_size * 16])
                                            .double(), -1))
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, 2))
    if model.task != "sequence-classification":
        raise TypeError(f"{model.name} is a {model.task!r} model; group audits and "
                        f"counterfactual probes need a classifier (sequence-classification or "
                        f"tabular-classification)")
    if isinstance(data, pd.DataFrame):
        if text is None:
            raise ValueError(f"{model.name} is a text classifier: pass text=COLUMN, the column "
                             f"of data that holds the texts")
        check_columns(data, [text], "text")
        texts = read_texts(data, text)
    else:
        texts = [data] if isinstance(data, str) else list(data)
    chunks = []
    with preserved_state(model), torch.no_grad():
        model.model.eval()
        for start in range(0, len(texts), batch_size):
            batch = model.encode_texts(texts[start:start + batch_size])
            output = model.model(**batch.model_inputs())
            logits = output.logits if hasattr(output, "logits") else output
            chunks.append(torch.softmax(logits.double(), -1))
    return torch.cat(chunks).numpy()


def interval_errors(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``(2, n)`` error-bar lengths of the interval ``[low, high]`` around ``values`` for
    matplotlib's ``xerr``/``yerr``: negative lengths clip to 0, missing bounds draw none."""
    err = np.vstack([values - np.asarray(low, float), np.asarray(high, float) - values])
    return np.where(np.isfinite(err), np.clip(err, 0, None), 0)


def check_confidence(confidence: float) -> float:
    if not isinstance(confidence, (int, float)) or not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be a number in (0, 1), e.g. 0.95; got {confidence!r}")
    return float(confidence)


def check_count(value: int, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)
