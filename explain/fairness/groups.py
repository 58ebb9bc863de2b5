"""Group fairness of a classifier's decisions: ``audit`` and ``AuditResult``.

Point estimates come from fairlearn (``MetricFrame`` and its ``demographic_parity_difference``
family), so our numbers equal fairlearn's on the same inputs. Intervals come from one vectorised
percentile bootstrap: the rows are resampled ``n_bootstrap`` times as an index matrix, and every
per-group count (rows, positives, predicted positives, true positives, correct) of every
resample is one ``bincount``; every rate, difference and ratio of a resample is computed from
those counts, so differences and ratios get intervals from the same resamples as the rates.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ExplainWarning
from ..results import Result, make_meta
from ._common import (
    as_names,
    check_columns,
    check_confidence,
    check_count,
    class_probabilities,
    interval_errors,
    percentile_interval,
    resolve_model,
)

__all__ = ["DISPARITIES", "GROUP_METRICS", "AuditResult", "audit"]

#: Per-group metrics of ``audit``, name -> meaning (all rates in [0, 1]).
GROUP_METRICS: Mapping[str, str] = MappingProxyType({
    "count": "number of rows in the group",
    "base_rate": "share of rows whose true label is positive",
    "selection_rate": "share of rows predicted positive",
    "accuracy": "share of rows predicted correctly",
    "true_positive_rate": "TP / (TP + FN): positives predicted positive (recall)",
    "false_positive_rate": "FP / (FP + TN): negatives predicted positive",
    "false_negative_rate": "FN / (TP + FN): positives predicted negative",
    "precision": "TP / (TP + FP): predicted positives that are positive",
})

#: Disparity measures, name -> how it is computed from the per-group metrics. ``difference`` is
#: the largest minus the smallest group value, ``ratio`` the smallest over the largest (fairlearn's
#: ``between_groups`` method); equalized odds takes the worse of TPR and FPR.
DISPARITIES: Mapping[str, str] = MappingProxyType({
    "demographic_parity": "selection_rate between groups",
    "equalized_odds": "worse of true_positive_rate and false_positive_rate between groups",
    "equal_opportunity": "true_positive_rate between groups",
    "predictive_parity": "precision between groups",
    "accuracy_parity": "accuracy between groups",
})

_LABEL_METRICS = ("base_rate", "accuracy", "true_positive_rate", "false_positive_rate",
                  "false_negative_rate", "precision")
_SEPARATOR = " & "


def _binary_values(values: pd.Series, positive_label: Any, what: str) -> np.ndarray:
    """A column of labels or decisions -> bool array (True = positive)."""
    if values.isna().any():
        rows = np.flatnonzero(values.isna().to_numpy())[:5].tolist()
        raise ValueError(f"{what} column {values.name!r} has {int(values.isna().sum())} missing "
                         f"values (rows {rows} ...); drop or fill them first")
    unique = pd.unique(values)
    if positive_label is not None:
        if positive_label not in set(unique.tolist()):
            raise ValueError(f"positive_label={positive_label!r} does not occur in {what} column "
                             f"{values.name!r}; its values are {sorted(map(str, unique))[:10]}")
        return (values == positive_label).to_numpy()
    if values.dtype == bool or set(unique.tolist()) <= {0, 1}:
        return values.astype(int).to_numpy() == 1
    raise ValueError(f"{what} column {values.name!r} holds {sorted(map(str, unique))[:10]}, not "
                     f"0/1; pass positive_label= the value that counts as positive (e.g. "
                     f"positive_label={unique[0]!r})")


def _check_scores(scores: np.ndarray, name: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ValueError(f"score {name!r} has {int(bad.sum())} NaN or infinite values (rows "
                         f"{np.flatnonzero(bad)[:5].tolist()} ...); drop those rows or fill them")
    return scores


def _group_codes(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, list[str]]:
    """Rows -> group index, with group names (values joined by ', ' for intersections)."""
    if len(columns) == 1:
        values = frame[columns[0]]
        if values.isna().any():
            raise ValueError(f"sensitive column {columns[0]!r} has missing values; fill them "
                             f"(e.g. with 'unknown') so those rows form a group of their own")
        keys = values.astype(str)
    else:
        for c in columns:
            if frame[c].isna().any():
                raise ValueError(f"sensitive column {c!r} has missing values; fill them first")
        keys = frame[columns[0]].astype(str)
        for c in columns[1:]:
            keys = keys + ", " + frame[c].astype(str)
    names = sorted(keys.unique().tolist())
    lookup = {n: i for i, n in enumerate(names)}
    return keys.map(lookup).to_numpy(dtype=np.int64), names


def _rates(n, pos, sel, tp, correct):
    """Per-group rates from per-group counts (any broadcastable shapes); NaN where undefined."""
    with np.errstate(all="ignore"):
        neg = n - pos
        tpr = np.where(pos > 0, tp / np.where(pos > 0, pos, 1), np.nan)
        return {
            "base_rate": np.where(n > 0, pos / np.where(n > 0, n, 1), np.nan),
            "selection_rate": np.where(n > 0, sel / np.where(n > 0, n, 1), np.nan),
            "accuracy": np.where(n > 0, correct / np.where(n > 0, n, 1), np.nan),
            "true_positive_rate": tpr,
            "false_positive_rate": np.where(neg > 0, (sel - tp) / np.where(neg > 0, neg, 1),
                                            np.nan),
            "false_negative_rate": 1.0 - tpr,
            "precision": np.where(sel > 0, tp / np.where(sel > 0, sel, 1), np.nan),
        }


def _between(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Difference (max - min) and ratio (min / max) over the last axis, NaN groups ignored."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        high = np.nanmax(values, axis=-1)
        low = np.nanmin(values, axis=-1)
        ratio = np.where(high > 0, low / np.where(high > 0, high, 1), np.where(low == 0, 1.0,
                                                                                np.nan))
    return high - low, ratio


def _disparities(rates: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    dp = _between(rates["selection_rate"])
    tpr = _between(rates["true_positive_rate"])
    fpr = _between(rates["false_positive_rate"])
    out["demographic_parity"] = dp
    out["equalized_odds"] = (np.fmax(tpr[0], fpr[0]), np.fmin(tpr[1], fpr[1]))
    out["equal_opportunity"] = tpr
    out["predictive_parity"] = _between(rates["precision"])
    out["accuracy_parity"] = _between(rates["accuracy"])
    return out


def bootstrap_counts(y: np.ndarray, p: np.ndarray, codes: np.ndarray, n_groups: int, *,
                     n_bootstrap: int, seed: int, chunk_cells: int = 4_000_000):
    """Per-resample, per-group counts ``(n_bootstrap, n_groups)`` of rows, positives, predicted
    positives, true positives and correct predictions.

    Resamples rows with replacement (``numpy.random.default_rng(seed)``); chunked so that at
    most ``chunk_cells`` indices are held at once. The same seed gives the same counts.
    """
    n = len(y)
    rng = np.random.default_rng(seed)
    # One cell per (resample, group, label, decision): a single gather and a single bincount
    # per chunk give every count.
    cells = (codes.astype(np.int64) * 4 + y.astype(np.int64) * 2 + p.astype(np.int64))
    width = n_groups * 4
    table = np.zeros((n_bootstrap, n_groups, 2, 2))
    per_chunk = max(1, chunk_cells // max(n, 1))
    for start in range(0, n_bootstrap, per_chunk):
        size = min(per_chunk, n_bootstrap - start)
        index = rng.integers(0, n, size=(size, n))
        flat = (np.arange(size, dtype=np.int64)[:, None] * width + cells[index]).ravel()
        table[start:start + size] = np.bincount(flat, minlength=size * width).reshape(
            size, n_groups, 2, 2)
    # table[..., label, decision]
    return {"n": table.sum((2, 3)), "pos": table[:, :, 1, :].sum(2),
            "sel": table[:, :, :, 1].sum(2), "tp": table[:, :, 1, 1],
            "correct": table[:, :, 0, 0] + table[:, :, 1, 1]}


def _fairlearn_frame(y: np.ndarray, p: np.ndarray, sensitive: pd.DataFrame):
    """fairlearn MetricFrame with our metrics (precision: NaN when nothing is selected)."""
    from fairlearn import metrics as fm
    from sklearn.metrics import accuracy_score, precision_score

    def base_rate(y_true, y_pred):
        return float(np.mean(y_true)) if len(y_true) else float("nan")

    metrics = {
        "count": fm.count,
        "base_rate": base_rate,
        "selection_rate": fm.selection_rate,
        "accuracy": accuracy_score,
        "true_positive_rate": fm.true_positive_rate,
        "false_positive_rate": fm.false_positive_rate,
        "false_negative_rate": fm.false_negative_rate,
        "precision": functools.partial(precision_score, zero_division=np.nan),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fm.MetricFrame(metrics=metrics, y_true=y.astype(int), y_pred=p.astype(int),
                              sensitive_features=sensitive)


def _bins(scores: np.ndarray, n_bins: int) -> np.ndarray:
    low, high = (0.0, 1.0) if scores.min() >= 0 and scores.max() <= 1 else (scores.min(),
                                                                              scores.max())
    if high <= low:
        high = low + 1.0
    return np.linspace(low, high, n_bins + 1)


def audit(
    model: Any = None,
    data: pd.DataFrame | None = None,
    *,
    sensitive_features: str | Sequence[str],
    label: str | None = None,
    prediction: str | None = None,
    score: str | None = None,
    text: str | None = None,
    positive_label: Any = None,
    classes: Sequence[Any] | None = None,
    threshold: float = 0.5,
    intersections: bool = True,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_group_size: int = 30,
    n_bins: int = 10,
    thresholds: Sequence[float] | None = None,
    batch_size: int = 64,
) -> AuditResult:
    """Audit a classifier's decisions for group fairness.

    ``model``: a ``LoadedModel`` (tabular: ``data`` holds its raw columns; text: ``text`` names
    the column of texts), a reference-model name such as ``"compas"``, or ``None`` to audit
    decisions already in ``data`` (``prediction``: a column of decisions; or ``score``: a column
    of scores, thresholded at ``threshold``). ``sensitive_features``: one column or several
    (each is audited alone and, with ``intersections``, all of them together). ``label``: the
    column of true outcomes (without it only counts and selection rates exist).
    ``positive_label``: the label value that counts as positive when labels are not 0/1; for a
    model, a class name or index (default: class 1). ``classes``: audit these classes one vs
    rest (multi-class; a model with more than two classes does this for all its classes).

    Per group: ``GROUP_METRICS``; per sensitive feature: ``DISPARITIES`` (difference and ratio),
    all with percentile bootstrap intervals (``n_bootstrap`` resamples of the rows, ``seed``);
    with scores, calibration per score bin (``n_bins``) and a threshold sweep. Groups smaller
    than ``min_group_size`` get an ``ExplainWarning``, no intervals, and are left out of the
    disparities (their own rates are still reported); ``min_group_size=0`` keeps every group.
    """
    if data is None:
        raise TypeError("audit needs data=DataFrame (the rows to audit)")
    if isinstance(model, pd.DataFrame):
        raise TypeError("pass the table as data=...: audit(model, data, ...) or "
                        "audit(data=frame, prediction=COLUMN, ...) without a model")
    model = resolve_model(model)
    sensitive = check_columns(data, as_names(sensitive_features, "sensitive_features"),
                              "sensitive")
    if label is not None:
        check_columns(data, [label], "label")
    for name, value in (("prediction", prediction), ("score", score)):
        if value is not None:
            check_columns(data, [value], name)
    n_bootstrap = check_count(n_bootstrap, "n_bootstrap")
    min_group_size = check_count(min_group_size, "min_group_size")
    n_bins = check_count(n_bins, "n_bins", 1)
    confidence = check_confidence(confidence)
    if not isinstance(threshold, (int, float)) or not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    if len(data) == 0:
        raise ValueError("data has no rows")

    # -- decisions and scores, one entry per audited class ------------------------------------
    tasks = []  # (class name, y bool or None, p bool, score or None)
    source: dict[str, Any]
    if model is not None:
        if prediction is not None or score is not None:
            raise ValueError("pass either a model or prediction=/score= columns, not both")
        probabilities = class_probabilities(model, data, text=text, batch_size=batch_size)
        _check_scores(probabilities, "model probabilities")
        names = list(model.label_names or [str(i) for i in range(probabilities.shape[1])])
        raw_labels = data[label] if label is not None else None
        if raw_labels is not None and raw_labels.isna().any():
            raise ValueError(f"label column {label!r} has missing values; drop those rows")
        if raw_labels is not None and not set(map(str, pd.unique(raw_labels))) <= \
                {str(i) for i in range(len(names))} | set(names):
            raise ValueError(f"label column {label!r} holds {sorted(map(str, pd.unique(raw_labels)))[:10]}"
                             f"; the model's classes are {names} (indices 0..{len(names) - 1})")

        def label_index(value):
            text_value = str(value)
            return names.index(text_value) if text_value in names else int(text_value)

        label_idx = (np.array([label_index(v) for v in raw_labels])
                     if raw_labels is not None else None)
        if probabilities.shape[1] == 2 and classes is None:
            positive = 1 if positive_label is None else model.label_index(positive_label)
            s = probabilities[:, positive]
            y = None if label_idx is None else label_idx == positive
            tasks.append((names[positive], y, s >= threshold, s))
        else:
            chosen = names if classes is None else [names[model.label_index(c)] for c in classes]
            argmax = probabilities.argmax(1)
            for name in chosen:
                c = names.index(name)
                y = None if label_idx is None else label_idx == c
                tasks.append((name, y, argmax == c, probabilities[:, c]))
        source = {"decisions": "model", "model": model.name}
    else:
        if prediction is None and score is None:
            raise ValueError("without a model, pass prediction=COLUMN (decisions) or "
                             "score=COLUMN (scores, thresholded at threshold=)")
        if classes is not None:
            if prediction is None or label is None:
                raise ValueError("a multi-class audit without a model needs prediction= and "
                                 "label= columns")
            for c in classes:
                y = _binary_values(data[label], c, "label")
                tasks.append((str(c), y, _binary_values(data[prediction], c, "prediction"),
                              None))
        else:
            s = _check_scores(data[score].to_numpy(), score) if score is not None else None
            p = (_binary_values(data[prediction], positive_label, "prediction")
                 if prediction is not None else s >= threshold)
            y = (_binary_values(data[label], positive_label, "label")
                 if label is not None else None)
            tasks.append((str(positive_label if positive_label is not None else 1), y, p, s))
        source = {"decisions": "column", "prediction": prediction, "score": score}

    feature_sets = [[c] for c in sensitive]
    if intersections and len(sensitive) > 1:
        feature_sets.append(list(sensitive))

    group_rows, disparity_rows, calibration_rows, sweep_rows = [], [], [], []
    small: dict[str, list[str]] = {}
    for columns in feature_sets:
        feature = _SEPARATOR.join(columns)
        codes, names = _group_codes(data, columns)
        if len(names) < 2:
            raise ValueError(f"sensitive column {feature!r} has one group ({names[0]!r}); a "
                             f"fairness audit compares at least two groups")
        counts = np.bincount(codes, minlength=len(names))
        too_small = counts < min_group_size
        if too_small.any():
            small[feature] = [f"{names[i]} ({counts[i]})" for i in np.flatnonzero(too_small)]
        sensitive_frame = data[columns].astype(str).reset_index(drop=True)
        if len(columns) == 1:
            sensitive_frame = sensitive_frame[columns[0]]
        for class_name, y, p, s in tasks:
            y_used = y if y is not None else np.zeros(len(p), dtype=bool)
            frame = _fairlearn_frame(y_used, p, sensitive_frame)
            by_group = frame.by_group
            if len(columns) > 1:
                by_group.index = [", ".join(map(str, k)) for k in by_group.index]
            by_group = by_group.reindex(names)
            boot = None
            if n_bootstrap:
                counts_b = bootstrap_counts(y_used, p, codes, len(names),
                                            n_bootstrap=n_bootstrap, seed=seed)
                boot = _rates(**counts_b)
            metrics = ["count", "selection_rate"] + (list(_LABEL_METRICS) if y is not None
                                                     else [])
            positives = np.bincount(codes, weights=y_used, minlength=len(names))
            selected = np.bincount(codes, weights=p, minlength=len(names))
            denominators = {"true_positive_rate": positives, "false_negative_rate": positives,
                            "false_positive_rate": counts - positives, "precision": selected}
            for g, group in enumerate(names):
                for metric in metrics:
                    value = float(by_group.loc[group, metric])
                    denominator = int(denominators.get(metric, counts)[g])
                    low = high = np.nan
                    if boot is not None and metric != "count" and not too_small[g]:
                        low, high = percentile_interval(boot[metric][:, g], confidence)
                    group_rows.append({
                        "sensitive_feature": feature, "group": group, "class_label": class_name,
                        "metric": metric, "value": value, "ci_low": float(low),
                        "ci_high": float(high), "count": int(counts[g]),
                        "denominator": denominator, "small_group": bool(too_small[g])})
            # Disparities compare the groups large enough to estimate (all groups when
            # min_group_size=0): fairlearn's numbers on those groups' rows, and intervals from
            # the same resamples as the rates.
            kept = ~too_small
            compared = [names[i] for i in np.flatnonzero(kept)]
            excluded = [names[i] for i in np.flatnonzero(too_small)]
            wanted = DISPARITIES if y is not None else ["demographic_parity"]
            measures = {m: (np.nan, np.nan) for m in wanted}
            boot_disp = None
            if kept.sum() >= 2:
                # fairlearn's between-groups difference and ratio are functions of its
                # per-group values (equalized odds: the worse of TPR and FPR), so they are
                # computed from MetricFrame.by_group of the compared groups.
                point = {m: by_group[m].to_numpy(float)[kept] for m in
                         ("selection_rate", "true_positive_rate", "false_positive_rate",
                          "precision", "accuracy")}
                computed = _disparities(point)
                measures = {m: (float(computed[m][0]), float(computed[m][1])) for m in wanted}
                if boot is not None:
                    boot_disp = _disparities({k: v[:, kept] for k, v in boot.items()})
            for measure, (difference, ratio) in measures.items():
                row = {"sensitive_feature": feature, "class_label": class_name,
                       "measure": measure, "difference": difference, "ratio": ratio,
                       "difference_ci_low": np.nan, "difference_ci_high": np.nan,
                       "ratio_ci_low": np.nan, "ratio_ci_high": np.nan,
                       "n_groups": len(compared), "excluded_groups": "; ".join(excluded)}
                if boot_disp is not None:
                    d_low, d_high = percentile_interval(boot_disp[measure][0], confidence)
                    r_low, r_high = percentile_interval(boot_disp[measure][1], confidence)
                    row.update(difference_ci_low=float(d_low), difference_ci_high=float(d_high),
                               ratio_ci_low=float(r_low), ratio_ci_high=float(r_high))
                disparity_rows.append(row)
            if s is not None and y is not None:
                edges = _bins(s, n_bins)
                bin_index = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, n_bins - 1)
                for g, group in enumerate(names):
                    member = codes == g
                    for b in range(n_bins):
                        inside = member & (bin_index == b)
                        k = int(inside.sum())
                        if k == 0:
                            continue
                        calibration_rows.append({
                            "sensitive_feature": feature, "group": group,
                            "class_label": class_name, "bin": b, "bin_low": float(edges[b]),
                            "bin_high": float(edges[b + 1]), "mean_score": float(s[inside].mean()),
                            "observed_rate": float(y[inside].mean()), "count": k})
            if s is not None:
                grid = (np.asarray(thresholds, dtype=float) if thresholds is not None
                        else np.linspace(*_bins(s, 1)[[0, -1]], 101))
                sweep_rows += _sweep(s, y, codes, names, grid, feature, class_name)

    if small:
        detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in small.items())
        warnings.warn(f"groups smaller than min_group_size={min_group_size} get no intervals and "
                      f"are left out of the disparities (pass min_group_size=0 to keep them): "
                      f"{detail}", ExplainWarning, stacklevel=2)

    parameters = {"sensitive_features": list(sensitive), "label": label, "positive_label":
                  None if positive_label is None else str(positive_label), "threshold": threshold,
                  "n_bootstrap": n_bootstrap, "confidence": confidence,
                  "min_group_size": min_group_size, "n_bins": n_bins, "n_rows": len(data),
                  **source}
    return AuditResult(
        by_group=pd.DataFrame(group_rows), disparities=pd.DataFrame(disparity_rows),
        calibration=pd.DataFrame(calibration_rows, columns=[
            "sensitive_feature", "group", "class_label", "bin", "bin_low", "bin_high",
            "mean_score", "observed_rate", "count"]),
        threshold_sweep=pd.DataFrame(sweep_rows, columns=[
            "sensitive_feature", "group", "class_label", "threshold", "metric", "value"]),
        meta=make_meta(model, method="group-fairness-audit", parameters=parameters, seed=seed))


def _sweep(s, y, codes, names, grid, feature, class_name) -> list[dict]:
    """Selection rate, TPR, FPR and precision of every group at every threshold (vectorised)."""
    onehot = np.zeros((len(s), len(names)))
    onehot[np.arange(len(s)), codes] = 1.0
    selected = (s[None, :] >= grid[:, None]).astype(np.float64)  # (T, n)
    n = onehot.sum(0)[None, :]
    sel = selected @ onehot
    values = {"selection_rate": sel / n}
    if y is not None:
        yf = y.astype(np.float64)
        pos = (yf @ onehot)[None, :]
        tp = selected @ (onehot * yf[:, None])
        values.update(_subset(_rates(n, pos, sel, tp, tp + (n - pos - (sel - tp))),
                              ("true_positive_rate", "false_positive_rate", "precision",
                               "accuracy")))
    rows = []
    for metric, table in values.items():
        for g, group in enumerate(names):
            for t, threshold in enumerate(grid):
                rows.append({"sensitive_feature": feature, "group": group,
                             "class_label": class_name, "threshold": float(threshold),
                             "metric": metric, "value": float(table[t, g])})
    return rows


def _subset(mapping, keys):
    return {k: mapping[k] for k in keys}


class AuditResult(Result):
    """What ``audit`` found.

    ``by_group`` (also ``to_frame()``): one row per sensitive feature x group x class x metric:
    ``sensitive_feature`` (a column, or columns joined by ``" & "`` for an intersection),
    ``group`` (its value; values joined by ``", "`` for an intersection), ``class_label`` (the
    class audited one vs rest), ``metric`` (a key of ``GROUP_METRICS``), ``value`` (fairlearn's
    estimate), ``ci_low``, ``ci_high`` (percentile bootstrap interval; NaN for small groups),
    ``count`` (rows in the group), ``denominator`` (the rows the rate is computed over: positives
    for TPR/FNR, negatives for FPR, predicted positives for precision, else ``count``; a small
    denominator explains a wide interval), ``small_group`` (below ``min_group_size``).

    ``disparities``: one row per sensitive feature x class x measure (``DISPARITIES``):
    ``difference``, ``ratio`` (fairlearn's ``between_groups`` on the rows of the compared
    groups), their intervals ``difference_ci_low``, ``difference_ci_high``, ``ratio_ci_low``,
    ``ratio_ci_high``, ``n_groups`` (groups compared) and ``excluded_groups`` (groups below
    ``min_group_size``, left out of the comparison; empty when none).

    ``calibration``: per group and score bin: ``bin``, ``bin_low``, ``bin_high``,
    ``mean_score``, ``observed_rate``, ``count``. ``threshold_sweep``: per group, threshold and
    metric: ``threshold``, ``metric``, ``value``. Both are empty without scores.
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "metrics": "per-group selection rate, TPR, FPR and precision with intervals",
        "disparities": "difference between groups of each disparity measure, with intervals",
        "calibration": "observed positive rate against mean score per bin, one line per group",
        "thresholds": "selection rate, TPR and FPR of each group as the threshold moves",
    })

    def __init__(self, *, by_group: pd.DataFrame, disparities: pd.DataFrame,
                 calibration: pd.DataFrame, threshold_sweep: pd.DataFrame,
                 meta: dict[str, Any]) -> None:
        self.by_group = by_group
        self.disparities = disparities
        self.calibration = calibration
        self.threshold_sweep = threshold_sweep
        self.meta = meta

    @property
    def sensitive_features(self) -> list[str]:
        return list(dict.fromkeys(self.by_group["sensitive_feature"]))

    @property
    def class_labels(self) -> list[str]:
        return list(dict.fromkeys(self.by_group["class_label"]))

    def to_frame(self) -> pd.DataFrame:
        """``by_group`` (see the class docstring for its columns)."""
        return self.by_group.copy()

    def _pick(self, frame: pd.DataFrame, sensitive_feature: str | None,
              class_label: str | None) -> tuple[pd.DataFrame, str, str]:
        feature = sensitive_feature or self.sensitive_features[0]
        if feature not in self.sensitive_features:
            raise ValueError(f"unknown sensitive_feature {feature!r}; valid: "
                             f"{', '.join(map(repr, self.sensitive_features))}")
        label = class_label if class_label is not None else self.class_labels[0]
        if str(label) not in self.class_labels:
            raise ValueError(f"unknown class_label {label!r}; valid: {self.class_labels}")
        chosen = frame[(frame["sensitive_feature"] == feature) &
                       (frame["class_label"] == str(label))]
        return chosen, feature, str(label)

    def difference(self, measure: str = "demographic_parity", *,
                   sensitive_feature: str | None = None, class_label: str | None = None) -> float:
        """Largest minus smallest group value of ``measure`` (a key of ``DISPARITIES``)."""
        return float(self._measure(measure, sensitive_feature, class_label)["difference"])

    def ratio(self, measure: str = "demographic_parity", *,
              sensitive_feature: str | None = None, class_label: str | None = None) -> float:
        """Smallest over largest group value of ``measure`` (a key of ``DISPARITIES``)."""
        return float(self._measure(measure, sensitive_feature, class_label)["ratio"])

    def _measure(self, measure, sensitive_feature, class_label) -> pd.Series:
        if measure not in DISPARITIES:
            raise ValueError(f"unknown measure {measure!r}; valid: {', '.join(DISPARITIES)}")
        rows, _, _ = self._pick(self.disparities, sensitive_feature, class_label)
        rows = rows[rows["measure"] == measure]
        if rows.empty:
            raise ValueError(f"{measure!r} needs true labels; audit was run without label=")
        return rows.iloc[0]

    def summary(self) -> str:
        parts = []
        for feature in self.sensitive_features:
            rows = self.disparities[(self.disparities["sensitive_feature"] == feature) &
                                    (self.disparities["measure"] == "demographic_parity")]
            if not rows.empty:
                parts.append(f"{feature}: demographic parity difference "
                             f"{rows['difference'].iloc[0]:.3f}")
        return f"Group fairness audit ({self.meta['parameters']['n_rows']} rows); " + \
            "; ".join(parts)

    # -- figures -------------------------------------------------------------------------------
    def plot(self, kind: str | None = None, *, ax=None, sensitive_feature: str | None = None,
             class_label: str | None = None):
        """Draw ``kind`` (a key of ``PLOTS``) for one sensitive feature (default: the first) and
        one class (default: the first audited)."""
        kind = self._check_kind(kind)
        if kind == "disparities":
            return self._plot_disparities(ax, class_label)
        if kind == "metrics":
            return self._plot_metrics(ax, sensitive_feature, class_label)
        if kind == "calibration":
            return self._plot_calibration(ax, sensitive_feature, class_label)
        return self._plot_thresholds(ax, sensitive_feature, class_label)

    def _plot_metrics(self, ax, sensitive_feature, class_label):
        from ..plotting import axes_or_new, style

        rows, feature, label = self._pick(self.by_group, sensitive_feature, class_label)
        wanted = [m for m in ("selection_rate", "true_positive_rate", "false_positive_rate",
                              "precision") if m in set(rows["metric"])]
        groups = list(dict.fromkeys(rows["group"]))
        fig, ax = axes_or_new(ax, max(6.0, 1.1 * len(groups) + 3), 4.0)
        with style():
            width = 0.8 / len(wanted)
            x = np.arange(len(groups))
            palette = ["#4C72B0", "#DD8452", "#55A868", "#C44E52"]
            info = rows.drop_duplicates("group").set_index("group").reindex(groups)
            small = info["small_group"].to_numpy(bool)
            for k, metric in enumerate(wanted):
                part = rows[rows["metric"] == metric].set_index("group").reindex(groups)
                values = part["value"].to_numpy(float)
                err = interval_errors(values, part["ci_low"], part["ci_high"])
                positions = x + (k - (len(wanted) - 1) / 2) * width
                bars = ax.bar(positions, np.nan_to_num(values), width, yerr=err, capsize=2,
                              label=metric.replace("_", " "), color=palette[k % len(palette)],
                              error_kw={"elinewidth": 0.8})
                for bar, is_small, value, position in zip(bars, small, values, positions,
                                                          strict=True):
                    if is_small:  # too few rows: drawn faint, no interval
                        bar.set_alpha(0.35)
                        bar.set_hatch("//")
                    if not np.isfinite(value):
                        ax.text(position, 0.01, "n/a", rotation=90, ha="center", va="bottom",
                                fontsize=6, color="grey")
            minimum = self.meta["parameters"]["min_group_size"]
            ticks = [f"{g}{' †' if is_small else ''}\n(n={int(n)})"
                     for g, n, is_small in zip(groups, info["count"], small, strict=True)]
            ax.set_xticks(x, ticks, rotation=30 if len(groups) > 4 else 0,
                          ha="right" if len(groups) > 4 else "center")
            if small.any():
                ax.text(1.0, 1.0, f"† fewer than {minimum} rows: faint, no interval, not in "
                        f"the disparities", transform=ax.transAxes, ha="right", va="bottom",
                        fontsize=7, color="grey")
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("rate")
            ax.set_title(f"Group metrics by {feature} (class {label}; bars: "
                         f"{int(self.meta['parameters']['confidence'] * 100)}% bootstrap CI)",
                         pad=14 if small.any() else 6)
            ax.legend(ncols=len(wanted), loc="upper center", bbox_to_anchor=(0.5, -0.18 if
                      len(groups) <= 4 else -0.35), frameon=False)
        return fig

    def _plot_disparities(self, ax, class_label):
        from ..plotting import axes_or_new, style

        label = class_label if class_label is not None else self.class_labels[0]
        rows = self.disparities[self.disparities["class_label"] == str(label)]
        labels = [f"{m.replace('_', ' ')} | {f}" for f, m in
                  zip(rows["sensitive_feature"], rows["measure"], strict=True)]
        fig, ax = axes_or_new(ax, 7.0, 0.35 * len(rows) + 1.5)
        with style():
            y = np.arange(len(rows))[::-1]
            values = rows["difference"].to_numpy(float)
            low = rows["difference_ci_low"].to_numpy(float)
            high = rows["difference_ci_high"].to_numpy(float)
            err = interval_errors(values, low, high)
            features = list(dict.fromkeys(rows["sensitive_feature"]))
            colours = {f: c for f, c in zip(features, ["#4C72B0", "#DD8452", "#55A868",
                                                        "#8172B3", "#937860"] * 4, strict=False)}
            ax.barh(y, values, xerr=err, capsize=2,
                    color=[colours[f] for f in rows["sensitive_feature"]])
            ax.set_yticks(y, labels)
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set_xlabel(f"difference between groups (max - min; groups with at least "
                          f"{self.meta['parameters']['min_group_size']} rows)")
            finite = np.r_[values, high]
            finite = finite[np.isfinite(finite)]  # all NaN when no two groups are comparable
            ax.set_xlim(0, max(0.05, float(finite.max()) * 1.1 if finite.size else 0.05))
            ax.set_title(f"Disparities (class {label}; "
                         f"{int(self.meta['parameters']['confidence'] * 100)}% bootstrap CI)")
        return fig

    def _group_label(self, feature: str, group: str) -> tuple[str, str]:
        """Legend text with the group's size; small groups are dotted and marked with †."""
        rows = self.by_group[(self.by_group["sensitive_feature"] == feature) &
                             (self.by_group["group"] == group)]
        count = int(rows["count"].iloc[0]) if len(rows) else 0
        small = bool(rows["small_group"].iloc[0]) if len(rows) else False
        return f"{group} (n={count}){' †' if small else ''}", (":" if small else "-")

    def _plot_calibration(self, ax, sensitive_feature, class_label):
        from ..plotting import axes_or_new, style

        rows, feature, label = self._pick(self.calibration, sensitive_feature, class_label)
        if rows.empty:
            raise ValueError("no calibration table: audit needs scores (a model or score=) and "
                             "label=")
        fig, ax = axes_or_new(ax, 5.5, 4.5)
        with style():
            low = float(rows["bin_low"].min())
            high = float(rows["bin_high"].max())
            if low >= 0.0 and high <= 1.0:  # a diagonal only means something for probabilities
                ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8,
                        label="perfect calibration")
            for group, part in rows.groupby("group", sort=True):
                label_text, line = self._group_label(feature, group)
                ax.plot(part["mean_score"], part["observed_rate"], marker="o", markersize=3,
                        label=label_text, linestyle=line)
            ax.set_xlabel("mean predicted score in bin")
            ax.set_ylabel("observed positive rate")
            ax.set_title(f"Calibration by {feature} (class {label}; † dotted: fewer than "
                         f"{self.meta['parameters']['min_group_size']} rows)")
            ax.legend(loc="upper left", frameon=False)
        return fig

    def _plot_thresholds(self, ax, sensitive_feature, class_label):
        from ..plotting import new_figure, style

        rows, feature, label = self._pick(self.threshold_sweep, sensitive_feature, class_label)
        if rows.empty:
            raise ValueError("no threshold sweep: audit needs scores (a model or score=)")
        metrics = [m for m in ("selection_rate", "true_positive_rate", "false_positive_rate")
                   if m in set(rows["metric"])]
        if ax is not None:
            fig, axes = ax.figure, [ax]
            metrics = metrics[:1]
        else:
            fig, axes = new_figure(4.0 * len(metrics), 3.8, ncols=len(metrics))
            axes = np.atleast_1d(axes)
        threshold = self.meta["parameters"]["threshold"]
        with style():
            for metric, axis in zip(metrics, axes, strict=True):
                part = rows[rows["metric"] == metric]
                for group, g in part.groupby("group", sort=True):
                    label_text, line = self._group_label(feature, group)
                    axis.plot(g["threshold"], g["value"], label=label_text, linestyle=line)
                axis.axvline(threshold, color="grey", linestyle=":", linewidth=0.8)
                axis.set_xlabel("decision threshold on score")
                axis.set_ylabel(metric.replace("_", " "))
                axis.set_ylim(-0.02, 1.02)
                axis.set_title(metric.replace("_", " "))
            axes[-1].legend(frameon=False, fontsize=7)
            fig.suptitle(f"Threshold sweep by {feature} (class {label}; vertical line: "
                         f"threshold {threshold:g}; † dotted: fewer than "
                         f"{self.meta['parameters']['min_group_size']} rows)")
        return fig

    def _repr_html_(self) -> str:
        table = self.disparities.to_html(index=False, border=0, float_format=lambda v: f"{v:.3g}")
        return (f"<div class='explain-audit'>{super()._repr_html_()}"
                f"<details><summary>disparities</summary>{table}</details></div>")
