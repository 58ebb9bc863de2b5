"""Predictions of a classifier on a labelled table, for the report's predictions section.

``predict`` runs a text or tabular classifier over a ``pandas.DataFrame`` in batches and returns
a ``PredictionResult`` (accuracy, confusion matrix, confidence), the input of example selection
and of group metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..checks import check_columns, positive_int
from ..plotting import SEQUENTIAL, axes_or_new, text_colour
from ..results import Result, make_meta
from ..text import read_texts
from .examples import select_examples
from .protocol import Analysis, Context
from .sections import Section

__all__ = ["PREDICTIONS", "PredictionResult", "predict"]

_CLASSIFIERS = ("sequence-classification", "tabular-classification", "image-classification")


class PredictionResult(Result):
    """Class probabilities of a classifier on ``N`` rows, with labels when known.

    ``probabilities``: ``(N, C)`` float array. ``labels``: ``(N,)`` true class indices, or
    ``None``. ``label_names``: ``C`` class names. ``groups``: ``(N,)`` sensitive-group values or
    ``None``. ``rows``: ``(N,)`` row labels of the input table.

    ``to_frame()`` columns: ``row``, ``predicted`` (class index), ``predicted_name``,
    ``confidence`` (probability of the predicted class), ``label``, ``label_name`` and ``correct``
    (when labels are known), ``group`` (when groups are known).
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "confusion": "confusion matrix: rows are true classes, columns predicted classes",
        "confidence": "distribution of the predicted-class probability, correct vs wrong",
    })
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({"confusion": (),
                                                                    "confidence": ()})

    def __init__(self, probabilities, *, label_names: Sequence[str], labels=None, groups=None,
                 rows=None, meta: Mapping[str, Any] | None = None):
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if probabilities.ndim != 2 or probabilities.shape[1] != len(label_names):
            raise ValueError(f"probabilities must be (N, {len(label_names)}), got "
                             f"{probabilities.shape}")
        n = probabilities.shape[0]
        self.probabilities = probabilities
        self.label_names = tuple(str(x) for x in label_names)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.groups = None if groups is None else np.asarray([str(g) for g in groups], dtype=object)
        self.rows = np.arange(n) if rows is None else np.asarray(rows)
        for name, values in (("labels", self.labels), ("groups", self.groups),
                             ("rows", self.rows)):
            if values is not None and len(values) != n:
                raise ValueError(f"{name} has {len(values)} values for {n} predictions")
        self.meta = dict(meta or {})
        self._freeze()

    @property
    def predicted(self) -> np.ndarray:
        """``(N,)`` predicted class indices (ties go to the lower index)."""
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """``(N,)`` probability of the predicted class."""
        return self.probabilities.max(axis=1)

    @property
    def accuracy(self) -> float | None:
        if self.labels is None or not len(self.labels):
            return None
        return float((self.predicted == self.labels).mean())

    def confusion(self) -> pd.DataFrame:
        """Tidy confusion matrix: ``true_label``, ``predicted_label``, ``count``, ``share`` (of
        the true class's rows)."""
        if self.labels is None:
            raise ValueError("a confusion matrix needs labels; pass labels= to predict()")
        k = len(self.label_names)
        counts = np.zeros((k, k), dtype=np.int64)
        np.add.at(counts, (self.labels, self.predicted), 1)
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros_like(counts, dtype=float),
                          where=totals > 0)
        return pd.DataFrame({
            "true_label": np.repeat(self.label_names, k),
            "predicted_label": np.tile(self.label_names, k),
            "count": counts.ravel(),
            "share": share.ravel(),
        })

    def to_frame(self) -> pd.DataFrame:
        names = np.asarray(self.label_names, dtype=object)
        frame = pd.DataFrame({"row": self.rows, "predicted": self.predicted,
                              "predicted_name": names[self.predicted],
                              "confidence": self.confidence})
        if self.labels is not None:
            frame["label"] = self.labels
            frame["label_name"] = names[self.labels]
            frame["correct"] = self.predicted == self.labels
        if self.groups is not None:
            frame["group"] = self.groups
        return frame

    def summary(self) -> str:
        n = len(self.probabilities)
        if self.labels is None:
            return f"{n:,} predictions (no labels)"
        return f"accuracy {self.accuracy:.3f} on {n:,} labelled rows"

    def applicable_plots(self) -> tuple[str, ...]:
        """The confusion matrix needs labels; the confidence histogram is always drawn."""
        return tuple(self.PLOTS) if self.labels is not None else ("confidence",)

    def _plot(self, kind: str, *, ax=None):
        if kind == "confusion":
            return self._plot_confusion(ax)
        return self._plot_confidence(ax)

    def _plot_confusion(self, ax):
        table = self.confusion()
        k = len(self.label_names)
        counts = table["count"].to_numpy().reshape(k, k)
        share = table["share"].to_numpy().reshape(k, k)
        fig, ax = axes_or_new(ax, 1.6 + 1.1 * k, 1.2 + 1.0 * k)
        image = ax.imshow(share, cmap=SEQUENTIAL, vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{counts[i, j]:,}\n{share[i, j]:.0%}", ha="center", va="center",
                        color=text_colour(image.cmap(image.norm(share[i, j]))), fontsize=8)
        ax.set_xticks(range(k), self.label_names, rotation=30 if k > 3 else 0)
        ax.set_yticks(range(k), self.label_names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"Confusion matrix (accuracy {self.accuracy:.3f}, n={len(self.labels):,})")
        fig.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
        return fig

    def _plot_confidence(self, ax):
        fig, ax = axes_or_new(ax, 6.0, 3.2)
        bins = np.linspace(1.0 / len(self.label_names), 1.0, 21)
        if self.labels is not None:
            correct = self.predicted == self.labels
            ax.hist([self.confidence[correct], self.confidence[~correct]], bins=bins,
                    label=[f"correct ({correct.sum():,})", f"wrong ({(~correct).sum():,})"],
                    color=["#4c78a8", "#e45756"], stacked=True)
            ax.legend(frameon=False)
        else:
            ax.hist(self.confidence, bins=bins, color="#4c78a8")
        ax.set_xlabel("probability of the predicted class")
        ax.set_ylabel("rows")
        ax.set_title("Prediction confidence")
        return fig


def _label_indices(values: pd.Series, label_names: Sequence[str], column: str) -> np.ndarray:
    names = list(label_names)
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values.tolist()):
        if isinstance(value, str) and value in names:
            out[i] = names.index(value)
        elif isinstance(value, (int, np.integer, float)) and not isinstance(value, bool) \
                and float(value).is_integer() and 0 <= int(value) < len(names):
            out[i] = int(value)
        else:
            raise ValueError(f"label column {column!r} holds {value!r} (row {i}), which is "
                             f"neither a class index 0..{len(names) - 1} nor a class name "
                             f"({', '.join(names)})")
    return out


def predict(loaded, data: pd.DataFrame, *, text_column: str | None = None,
            label: str | None = None, sensitive: str | None = None, batch_size: int = 32,
            max_length: int | None = None) -> PredictionResult:
    """Run classifier ``loaded`` (a ``LoadedModel``) over the rows of ``data``.

    Text models read ``text_column`` (default ``"text"``); tabular models read their raw
    feature columns through ``loaded.encoder`` (without an encoder, the ``feature_names``
    columns are read as numbers). ``label``: column of true classes (indices or
    names); ``sensitive``: column of group values kept with the predictions. ``max_length``:
    token limit of text models (default: the model's own).
    """
    if loaded.task not in _CLASSIFIERS:
        raise ValueError(f"predictions apply to classifiers; {loaded.name!r} is a {loaded.task!r} "
                         f"model")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError("the dataset is empty: there is nothing to predict")
    positive_int(batch_size, "batch_size")
    label_names = loaded.label_names
    if not label_names:
        raise ValueError(f"{loaded.name!r} has no label names; load it with label_names=[...]")
    if loaded.is_text:
        text_column = text_column or "text"
        check_columns(data, {"text": text_column, "label": label, "sensitive": sensitive},
                      where="the data")
    else:
        check_columns(data, {"label": label, "sensitive": sensitive}, where="the data")
        if loaded.task == "image-classification":
            raise ValueError("predict() reads tables; image models are not supported by the "
                             "report's predictions section")
        if loaded.encoder is None:
            if not loaded.feature_names:
                raise ValueError(f"{loaded.name!r} has neither a tabular encoder nor feature "
                                 f"names, so the columns it reads are unknown")
            check_columns(data, {"feature": list(loaded.feature_names)}, where="the data")
    # every row checked before any is predicted: the error lists all bad rows at once
    texts = read_texts(data, text_column) if loaded.is_text else None
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            part = data.iloc[start:start + batch_size]
            if loaded.is_text:
                batch = loaded.encode_texts(texts[start:start + batch_size],
                                            max_length=max_length)
                output = loaded.model(**batch.model_inputs())
            else:  # through the encoder, or the feature columns as numbers (checked)
                output = loaded.model(loaded.encode_frame(part))
            logits = getattr(output, "logits", output)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            chunks.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    probabilities = np.concatenate(chunks)
    labels = _label_indices(data[label], label_names, label) if label else None
    groups = data[sensitive].to_numpy() if sensitive else None
    meta = make_meta(loaded, method="predict",
                     parameters={"text_column": text_column, "label": label,
                                 "sensitive": sensitive, "batch_size": batch_size,
                                 "max_length": max_length if loaded.is_text else None,
                                 "n_rows": len(data)})
    return PredictionResult(probabilities, label_names=label_names, labels=labels, groups=groups,
                            rows=data.index.to_numpy(), meta=meta)


# ------------------------------------------------------------------ the report analysis

SECTION = Section("predictions", "Predictions", caveat=(
    "Accuracy and the confusion matrix describe this sample only: a held-out sample of a few "
    "hundred rows has a sampling error of several points, and a model that is accurate on "
    "average can still be wrong systematically for a subgroup."))


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _findings(report, part: str, predictions: PredictionResult, source: str) -> None:
    accuracy = predictions.accuracy
    if accuracy is None:
        return
    counts = np.bincount(predictions.labels, minlength=len(predictions.label_names))
    majority = counts.max() / counts.sum()
    report.add_metric(f"{part}: accuracy", accuracy, percent=True,
                      note=f"{len(predictions.labels):,} rows; majority class "
                           f"{_percent(majority)}", sources=source, kind="accuracy", part=part)
    confusion = predictions.confusion()
    wrong = confusion[confusion["true_label"] != confusion["predicted_label"]]
    worst = wrong.sort_values(["share", "true_label"], ascending=[False, True], kind="stable")
    sentence = (f"{part}: the model is right on {_percent(accuracy)} of "
                f"{len(predictions.labels):,} labelled rows (always predicting the majority "
                f"class would give {_percent(majority)}).")
    if len(worst):
        top = worst.iloc[0]
        sentence += (f" Its most common error: {_percent(top['share'])} of "
                     f"'{top['true_label']}' rows are predicted '{top['predicted_label']}'.")
    report.add_finding(sentence, sources=source, kind="predictions", part=part)


def _applies(context: Context) -> str | None:
    if not context.is_classifier:
        return f"predictions apply to classifiers; this is a {context.model.task!r} model"
    return None


def _run(context: Context) -> dict[str, Any]:
    report, part, label, frame = context.report, context.part, context.label, context.data
    sensitive = context.sensitive
    predictions = predict(context.model, frame, text_column=context.text_column, label=label,
                          sensitive=sensitive[0] if sensitive else None)
    if label is None:
        context.not_run("accuracy and the confusion matrix need a label column (--label)",
                        section=SECTION.key)
    report.add(predictions, section=SECTION.key, title=f"{part}: predictions",
               plots=predictions.applicable_plots())
    _findings(report, part, predictions, report.last_id)
    chosen = select_examples(predictions.confidence, predicted=predictions.predicted,
                             labels=predictions.labels, groups=predictions.groups,
                             n_examples=context.n_examples)
    rows = chosen["row"].tolist()
    table = chosen.assign(
        predicted=[predictions.label_names[predictions.predicted[r]] for r in rows],
        label=[predictions.label_names[predictions.labels[r]] for r in rows]
        if predictions.labels is not None else None)
    if context.is_text:
        table.insert(1, "text", read_texts(frame, context.text_column, rows))
    table.insert(0, "example", range(1, len(table) + 1))
    per_class = table["predicted"].value_counts()
    shown = ", ".join(f"{per_class.get(name, 0)} predicted '{name}'"
                      for name in predictions.label_names)
    reasons = "most confident, least confident" + (", most confident mistake"
                                                   if predictions.labels is not None else "") + \
        (f", then per '{sensitive[0]}' group" if sensitive else "")
    report.add(table, section=SECTION.key, title=f"{part}: selected examples",
               caption=f"Chosen deterministically, in turn: {reasons}; each pick takes the "
                       f"best row of the predicted class shown least so far, so every "
                       f"predicted class appears (here {shown}). 'example' is the number the "
                       f"attention and attribution sections use; 'row' is the row's position "
                       f"in the data, counting from 0.")
    return {"predictions": predictions, "rows": tuple(rows)}


PREDICTIONS = Analysis(
    "predictions", "accuracy, confusion matrix and confidence on labelled rows (classifiers); "
    "selects the examples the other analyses explain", SECTION, _run, _applies)
