"""``audit``: checks its inputs, turns a model or columns into decisions, and assembles the
per-group, disparity, contrast, calibration and threshold tables of an ``AuditResult``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ...checks import as_names, check_columns, positive_int, probability
from ...errors import ExplainWarning
from ...results import make_meta
from .._common import check_confidence, class_probabilities, holm, loaded_model
from ..intervals import newcombe_interval, wilson_interval
from .measures import DISPARITIES, _bins, _disparities, _extremes, _fairlearn_frame, _sweep
from .permutation import _STRATA, _TEST_NAMES, _p_values
from .result import AuditResult

__all__ = ["audit"]

# The per-group rate behind each measure (equalized odds: both TPR and FPR).
_CONTRAST_METRICS = ("selection_rate", "true_positive_rate", "false_positive_rate", "precision",
                     "accuracy")
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



def _check_threshold(scores: np.ndarray, threshold: float | None, name: str, *,
                     from_model: bool) -> float:
    """The decision threshold on ``scores``: 0.5 by default, which only means something for
    scores in [0, 1]; a threshold that gives every row the same decision is refused (a score
    column) or warned about (a model's probabilities, where it can be the model's own doing)."""
    low, high = float(scores.min()), float(scores.max())
    if threshold is None:
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"score {name!r} ranges from {low:g} to {high:g}, not within [0, 1], so the "
                f"default threshold=0.5 does not apply to it; pass threshold= a cut-off on its "
                f"own scale (e.g. threshold={(low + high) / 2:g}) or prediction= a column of "
                f"decisions")
        threshold = 0.5
    decided = scores >= threshold
    if decided.all() or not decided.any():
        message = (f"threshold={threshold:g} gives every row the same decision "
                   f"({'positive' if decided.all() else 'negative'}): score {name!r} ranges from "
                   f"{low:g} to {high:g}; pass a threshold inside that range")
        if not from_model:
            raise ValueError(message)
        warnings.warn(message + " (every rate difference between groups is then 0)",
                      ExplainWarning, stacklevel=3)
    return float(threshold)


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
    threshold: float | None = None,
    intersections: bool = True,
    n_permutations: int = 9999,
    confidence: float = 0.95,
    alpha: float = 0.05,
    negligible_difference: float = 0.02,
    reference_groups: Mapping[str, str] | None = None,
    min_group_size: int = 30,
    exclude_small_groups: bool = False,
    seed: int = 0,
    n_bins: int = 10,
    thresholds: Sequence[float] | None = None,
    batch_size: int = 64,
) -> AuditResult:
    """Audit a classifier's decisions for group fairness.

    ``model``: a ``LoadedModel`` (tabular: ``data`` holds its raw columns; text: ``text`` names
    the column of texts; a checkpoint directory is loaded with ``explain.load_model``), or
    ``None`` to audit decisions already in ``data`` (``prediction``: a column of decisions;
    or ``score``: a column of scores, thresholded at ``threshold``: 0.5 by default, which
    scores outside [0, 1] must replace). ``sensitive_features``: one column or several (each is audited alone and, with
    ``intersections``, all of them together). ``label``: the column of true outcomes (without it
    only counts and selection rates exist). ``positive_label``: the label value that counts as
    positive when labels are not 0/1; for a model, a class name or index (default: class 1).
    ``classes``: audit these classes one vs rest (multi-class; a model with more than two
    classes does this for all its classes).

    Per group: ``GROUP_METRICS`` with ``confidence`` Wilson intervals. Per sensitive feature:
    ``DISPARITIES`` over all groups (fairlearn's numbers), each with a permutation test of "no
    disparity" (``n_permutations``, ``seed``; Holm-adjusted over the audit, ``significant`` at
    ``alpha``; a significant difference below ``negligible_difference`` is called
    negligible), and the contrast of every group with a reference group (``reference_groups``,
    feature -> group; default the largest group) with Newcombe intervals. With scores,
    calibration per score bin (``n_bins``) and a threshold sweep. Groups with fewer than
    ``min_group_size`` rows are flagged (``small_group``) and kept; ``exclude_small_groups=True``
    leaves them out of the disparities and contrasts (their own rates are still reported).
    See the module docstring for why these methods.
    """
    if data is None:
        raise TypeError("audit needs data=DataFrame (the rows to audit)")
    if isinstance(model, pd.DataFrame):
        raise TypeError("pass the table as data=...: audit(model, data, ...) or "
                        "audit(data=frame, prediction=COLUMN, ...) without a model")
    model = loaded_model(model, analysis="audit")
    sensitive = as_names(sensitive_features, "sensitive_features")
    check_columns(data, {"sensitive": sensitive, "label": label, "prediction": prediction,
                         "score": score}, where="the data")
    n_permutations = positive_int(n_permutations, "n_permutations", minimum=0,
                                  fix="0 skips the tests")
    min_group_size = positive_int(min_group_size, "min_group_size", minimum=0)
    n_bins = positive_int(n_bins, "n_bins")
    confidence = check_confidence(confidence)
    alpha = probability(alpha, "alpha", fix="e.g. alpha=0.05")
    negligible_difference = probability(negligible_difference, "negligible_difference",
                                        open_interval=False, fix="e.g. 0.02")
    if not isinstance(exclude_small_groups, bool):
        raise TypeError(f"exclude_small_groups must be True or False, got "
                        f"{exclude_small_groups!r}")
    if threshold is not None and (isinstance(threshold, bool) or
                                  not isinstance(threshold, (int, float)) or
                                  not np.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    if len(data) == 0:
        raise ValueError("data has no rows")

    # -- decisions and scores, one entry per audited class ------------------------------------
    tasks = []  # (class name, y bool or None, p bool, score or None)
    source: dict[str, Any]
    used_threshold = threshold
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
            used_threshold = _check_threshold(s, threshold, f"{model.name} probability of "
                                              f"{names[positive]!r}", from_model=True)
            y = None if label_idx is None else label_idx == positive
            tasks.append((names[positive], y, s >= used_threshold, s))
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
            if prediction is not None:
                p = _binary_values(data[prediction], positive_label, "prediction")
            else:
                used_threshold = _check_threshold(s, threshold, score, from_model=False)
                p = s >= used_threshold
            y = (_binary_values(data[label], positive_label, "label")
                 if label is not None else None)
            tasks.append((str(positive_label if positive_label is not None else 1), y, p, s))
        source = {"decisions": "column", "prediction": prediction, "score": score}

    feature_sets = [[c] for c in sensitive]
    if intersections and len(sensitive) > 1:
        feature_sets.append(list(sensitive))
    features = [_SEPARATOR.join(columns) for columns in feature_sets]
    references = dict(reference_groups or {})
    unknown = sorted(set(references) - set(features))
    if unknown:
        raise ValueError(f"reference_groups names {unknown}, not an audited sensitive feature; "
                         f"valid: {features}")

    group_rows, disparity_rows, contrast_rows, calibration_rows, sweep_rows = [], [], [], [], []
    small: dict[str, list[str]] = {}
    chosen_references: dict[str, str] = {}
    for f_index, columns in enumerate(feature_sets):
        feature = features[f_index]
        codes, names = _group_codes(data, columns)
        if len(names) < 2:
            raise ValueError(f"sensitive column {feature!r} has one group ({names[0]!r}); a "
                             f"fairness audit compares at least two groups")
        counts = np.bincount(codes, minlength=len(names))
        too_small = counts < min_group_size
        if too_small.any():
            small[feature] = [f"{names[i]} ({counts[i]})" for i in np.flatnonzero(too_small)]
        kept = ~too_small if exclude_small_groups else np.ones(len(names), bool)
        compared = [names[i] for i in np.flatnonzero(kept)]
        excluded = [names[i] for i in np.flatnonzero(~kept)]
        if feature in references:
            reference = str(references[feature])
            if reference not in compared:
                raise ValueError(f"reference group {reference!r} of {feature!r} is not among "
                                 f"its compared groups {compared}" + (
                                     " (small groups are excluded)" if excluded else ""))
        elif compared:
            # the largest compared group (first in sorted order on ties)
            reference = compared[int(np.argmax(counts[kept]))]
        else:
            reference = ""
        chosen_references[feature] = reference
        sensitive_frame = data[columns].astype(str).reset_index(drop=True)
        if len(columns) == 1:
            sensitive_frame = sensitive_frame[columns[0]]
        for c_index, (class_name, y, p, s) in enumerate(tasks):
            y_used = y if y is not None else np.zeros(len(p), dtype=bool)
            frame = _fairlearn_frame(y_used, p, sensitive_frame)
            by_group = frame.by_group
            if len(columns) > 1:
                by_group.index = [", ".join(map(str, k)) for k in by_group.index]
            by_group = by_group.reindex(names)
            metrics = ["count", "selection_rate"] + (list(_LABEL_METRICS) if y is not None
                                                     else [])
            positives = np.bincount(codes, weights=y_used, minlength=len(names))
            selected = np.bincount(codes, weights=p, minlength=len(names))
            true_pos = np.bincount(codes, weights=y_used & p, minlength=len(names))
            correct = np.bincount(codes, weights=y_used == p, minlength=len(names))
            # numerator and denominator of each rate: the binomial counts of its interval
            fractions = {
                "base_rate": (positives, counts), "selection_rate": (selected, counts),
                "accuracy": (correct, counts), "true_positive_rate": (true_pos, positives),
                "false_positive_rate": (selected - true_pos, counts - positives),
                "false_negative_rate": (positives - true_pos, positives),
                "precision": (true_pos, selected)}
            intervals = {m: wilson_interval(*fractions[m], confidence) for m in metrics[1:]}
            for g, group in enumerate(names):
                for metric in metrics:
                    low, high = intervals[metric] if metric != "count" else (
                        [np.nan] * len(names), [np.nan] * len(names))
                    group_rows.append({
                        "sensitive_feature": feature, "group": group, "class_label": class_name,
                        "metric": metric, "value": float(by_group.loc[group, metric]),
                        "ci_low": float(low[g]), "ci_high": float(high[g]),
                        "count": int(counts[g]),
                        "denominator": int(fractions.get(metric, (None, counts))[1][g]),
                        "small_group": bool(too_small[g])})
            # Disparities: fairlearn's between-groups difference and ratio are functions of its
            # per-group values (equalized odds: the worse of TPR and FPR), so they are computed
            # from MetricFrame.by_group of the compared groups.
            wanted = list(DISPARITIES) if y is not None else ["demographic_parity"]
            point = {m: by_group[m].to_numpy(float)[kept] for m in
                     ("selection_rate", "true_positive_rate", "false_positive_rate",
                      "precision", "accuracy")}
            computed = _disparities(point) if len(compared) >= 2 else {}
            tested = {}
            if n_permutations and len(compared) >= 2:
                member = kept[codes]
                remap = np.cumsum(kept) - 1
                tested = _p_values(y_used[member], p[member], remap[codes[member]],
                                   len(compared), wanted, n_permutations=n_permutations,
                                   seed=[seed, f_index, c_index])
            small_kept = "; ".join(f"{names[i]} ({counts[i]})"
                                   for i in np.flatnonzero(too_small & kept))
            for measure in wanted:
                difference, ratio = ((float(computed[measure][0]), float(computed[measure][1]))
                                     if computed else (np.nan, np.nan))
                high, low = (_extremes(point, measure, compared) if computed else ("", ""))
                disparity_rows.append({
                    "sensitive_feature": feature, "class_label": class_name,
                    "measure": measure, "difference": difference, "ratio": ratio,
                    "high_group": high, "low_group": low,
                    "test": _TEST_NAMES[_STRATA[measure]],
                    "p_value": float(tested.get(measure, np.nan)),
                    "n_groups": len(compared), "small_groups": small_kept,
                    "excluded_groups": "; ".join(excluded)})
            # Contrasts: each compared group against the reference group, signed.
            r = names.index(reference) if reference else -1
            for metric in (m for m in _CONTRAST_METRICS if m in metrics):
                num, den = fractions[metric]
                value = by_group[metric].to_numpy(float)
                low, high = newcombe_interval(num, den, num[r], den[r], confidence)
                for g in np.flatnonzero(kept):
                    if g == r:
                        continue
                    contrast_rows.append({
                        "sensitive_feature": feature, "class_label": class_name,
                        "metric": metric, "group": names[g], "reference_group": reference,
                        "value": float(value[g]), "reference_value": float(value[r]),
                        "difference": float(value[g] - value[r]),
                        "ci_low": float(low[g]), "ci_high": float(high[g]),
                        "denominator": int(den[g]), "reference_denominator": int(den[r]),
                        "small_group": bool(too_small[g])})
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

    disparities = pd.DataFrame(disparity_rows)
    disparities.insert(disparities.columns.get_loc("p_value") + 1, "p_value_holm",
                       holm(disparities["p_value"].to_numpy(float)))
    significant = disparities["p_value_holm"].to_numpy(float) < alpha
    disparities.insert(disparities.columns.get_loc("p_value_holm") + 1, "significant",
                       significant)
    conclusion = np.where(~np.isfinite(disparities["p_value_holm"].to_numpy(float)),
                          "not tested", np.where(~significant, "not significant", np.where(
                              disparities["difference"].to_numpy(float) < negligible_difference,
                              "negligible", "disparity")))
    disparities.insert(disparities.columns.get_loc("significant") + 1, "conclusion", conclusion)
    n_tests = int(np.isfinite(disparities["p_value"].to_numpy(float)).sum())
    if n_tests and n_tests / (n_permutations + 1) >= alpha:
        warnings.warn(f"n_permutations={n_permutations} is too few for {n_tests} Holm-corrected "
                      f"tests at alpha={alpha:g}: no disparity can be significant; pass "
                      f"n_permutations >= {int(np.ceil(n_tests / alpha))}", ExplainWarning,
                      stacklevel=2)

    parameters = {"sensitive_features": list(sensitive), "label": label, "positive_label":
                  None if positive_label is None else str(positive_label),
                  "threshold": used_threshold, "n_permutations": n_permutations,
                  "confidence": confidence, "alpha": alpha,
                  "negligible_difference": negligible_difference,
                  "reference_groups": chosen_references, "min_group_size": min_group_size,
                  "exclude_small_groups": exclude_small_groups,
                  "small_groups": {k: "; ".join(v) for k, v in small.items()},
                  "rate_interval": "wilson", "contrast_interval": "newcombe",
                  "test": "permutation of group labels (statistic: chi-square), Holm over the audit",
                  "n_tests": n_tests, "n_bins": n_bins, "n_rows": len(data), **source}
    return AuditResult(
        by_group=pd.DataFrame(group_rows), disparities=disparities,
        contrasts=pd.DataFrame(contrast_rows, columns=[
            "sensitive_feature", "class_label", "metric", "group", "reference_group", "value",
            "reference_value", "difference", "ci_low", "ci_high", "denominator",
            "reference_denominator", "small_group"]),
        calibration=pd.DataFrame(calibration_rows, columns=[
            "sensitive_feature", "group", "class_label", "bin", "bin_low", "bin_high",
            "mean_score", "observed_rate", "count"]),
        threshold_sweep=pd.DataFrame(sweep_rows, columns=[
            "sensitive_feature", "group", "class_label", "threshold", "metric", "value"]),
        meta=make_meta(model, method="group-fairness-audit", parameters=parameters, seed=seed))
