"""What an audit measures: the per-group metrics, the disparity measures, the conclusions, and
the arithmetic from per-group counts to rates and disparities."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import pandas as pd

__all__ = ["CONCLUSIONS", "DISPARITIES", "GROUP_METRICS"]

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

#: What the ``conclusion`` column of ``AuditResult.disparities`` says, value -> meaning.
CONCLUSIONS: Mapping[str, str] = MappingProxyType({
    "disparity": "Holm-adjusted p < alpha and difference >= negligible_difference",
    "negligible": "Holm-adjusted p < alpha but difference < negligible_difference",
    "not significant": "Holm-adjusted p >= alpha: no evidence of a disparity (not evidence "
                       "of parity)",
    "not tested": "no test: n_permutations=0, or fewer than two groups have a value",
})


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


def _extremes(values: Mapping[str, np.ndarray], measure: str, names: Sequence[str]
              ) -> tuple[str, str]:
    """The groups with the largest and the smallest value behind ``measure``'s difference."""
    metric = {"demographic_parity": "selection_rate", "equal_opportunity": "true_positive_rate",
              "predictive_parity": "precision", "accuracy_parity": "accuracy"}.get(measure)
    if metric is None:  # equalized odds: whichever of TPR and FPR differs more
        spread = {m: np.nanmax(values[m]) - np.nanmin(values[m]) if np.isfinite(values[m]).any()
                  else -1.0 for m in ("true_positive_rate", "false_positive_rate")}
        metric = max(spread, key=spread.get)
    v = values[metric]
    if not np.isfinite(v).any():
        return "", ""
    return names[int(np.nanargmax(v))], names[int(np.nanargmin(v))]



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
