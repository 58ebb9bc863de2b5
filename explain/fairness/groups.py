"""Group fairness of a classifier's decisions: ``audit`` and ``AuditResult``.

Point estimates come from fairlearn (``MetricFrame`` and its ``demographic_parity_difference``
family) on every group, so our numbers equal fairlearn's on the same inputs. Uncertainty comes
from three methods, each chosen for its coverage with groups as small as 20 rows and rates near
0 or 1 (measured in ``bench/bench_calibration.py``, checked in
``tests/test_fairness_calibration.py``):

* a group's rate: the **Wilson score interval**. Given its denominator (the group's rows,
  positives, negatives or predicted positives), a rate's numerator is binomial, and Wilson's
  interval stays near nominal coverage down to a handful of trials, where a percentile bootstrap
  collapses to ``[0, 0]`` whenever a small group has no event (at 20 rows and a 5% rate that
  happens in 36% of samples, so the bootstrap covers at most 64%).
* a group's rate minus the reference group's (``contrasts``): **Newcombe's hybrid score
  interval** (method 10 of Newcombe, Statistics in Medicine 1998), the square-and-add of the
  two Wilson intervals; the groups are disjoint sets of rows, hence independent.
* "no disparity" (every group has the same rate): a **permutation test of the group labels**
  whose statistic is Pearson's chi-square of group against the measure's outcome (each group
  weighted by its rows, so a group of 3 rows cannot drive the test as it drives a largest minus
  smallest difference). Labels are permuted among all rows (demographic parity, accuracy
  parity: decision or correctness independent of the group), within each true label (equalized
  odds, equal opportunity: decision independent of the group given the label) or within each
  decision (predictive parity), so each test is exact under its own null. The permuted count
  tables are drawn directly, by sequential hypergeometric draws of each group's cell counts
  (the exact distribution of a permutation's counts), so the cost of 9,999 permutations grows
  with the number of groups, not of rows (0.1 s for 2 groups, 0.7 s for 12, on 2 cores).
  p-values are Holm-adjusted over all the disparities of one audit.

A largest-minus-smallest difference gets no interval: it is bounded below by 0 and biased
upwards, so a percentile bootstrap of it excludes 0 even when the groups do not differ.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ExplainWarning
from ..results import Result, make_meta
from ._common import (
    as_names,
    check_columns,
    check_confidence,
    check_count,
    class_probabilities,
    holm,
    interval_errors,
    resolve_model,
)

__all__ = ["CONCLUSIONS", "DISPARITIES", "GROUP_METRICS", "AuditResult", "audit",
           "newcombe_interval", "permutation_tables", "wilson_interval"]

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

# How each measure's permutation test permutes the group labels: among all rows, within each
# true label, or within each decision (the strata that keep its null hypothesis exact).
_STRATA = {"demographic_parity": "all", "accuracy_parity": "all", "equalized_odds": "label",
           "equal_opportunity": "label", "predictive_parity": "decision"}
_TEST_NAMES = {"all": "permutation of group labels",
               "label": "permutation of group labels within each true label",
               "decision": "permutation of group labels within each decision"}
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


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(successes, trials, confidence: float = 0.95):
    """Wilson score interval ``(low, high)`` of the proportion ``successes / trials`` (arrays
    of counts, any broadcastable shapes); NaN where ``trials`` is 0."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z2 = _z(confidence) ** 2
    with np.errstate(all="ignore"):
        p = k / n
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = np.sqrt(z2 * p * (1 - p) / n + z2 * z2 / (4 * n * n)) / (1 + z2 / n)
        low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return low, high


def newcombe_interval(successes, trials, reference_successes, reference_trials,
                      confidence: float = 0.95):
    """Newcombe's hybrid score interval ``(low, high)`` of ``successes / trials -
    reference_successes / reference_trials`` for two independent binomial samples (method 10 of
    Newcombe 1998); NaN where either has no trials."""
    k1, n1 = np.asarray(successes, float), np.asarray(trials, float)
    k2, n2 = np.asarray(reference_successes, float), np.asarray(reference_trials, float)
    l1, u1 = wilson_interval(k1, n1, confidence)
    l2, u2 = wilson_interval(k2, n2, confidence)
    with np.errstate(all="ignore"):
        p1, p2 = k1 / n1, k2 / n2
        d = p1 - p2
        return (d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
                d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def permutation_tables(codes: np.ndarray, cells: np.ndarray, strata: np.ndarray, *,
                       n_groups: int, n_cells: int, n_permutations: int,
                       rng: np.random.Generator) -> np.ndarray:
    """Count tables ``(n_permutations, n_groups, n_cells)`` of random permutations of the group
    labels ``codes`` within each stratum of ``strata``: entry ``[b, g, c]`` counts the rows of
    cell ``c`` (``cells``, ints in ``[0, n_cells)``) that permutation ``b`` puts in group ``g``.

    No permutation is materialised: within a stratum, a permutation keeps each group's size
    and each cell's size, and its table then has the multivariate hypergeometric distribution,
    drawn group by group and cell by cell with ``rng.hypergeometric``. Cost: one vectorised
    draw per stratum x group x cell, whatever the number of rows.
    """
    table = np.zeros((n_permutations, n_groups, n_cells), dtype=np.int64)
    for stratum in np.unique(strata):
        inside = strata == stratum
        sizes = np.bincount(codes[inside], minlength=n_groups)
        left = np.tile(np.bincount(cells[inside], minlength=n_cells), (n_permutations, 1))
        present = np.flatnonzero(left[0])
        for g in range(n_groups - 1):
            draw = np.full(n_permutations, sizes[g], dtype=np.int64)
            rest = left[:, present].sum(1)
            for c in present[:-1]:
                rest = rest - left[:, c]
                taken = rng.hypergeometric(left[:, c], rest, draw)
                table[:, g, c] += taken
                left[:, c] -= taken
                draw = draw - taken
            table[:, g, present[-1]] += draw
            left[:, present[-1]] -= draw
        table[:, n_groups - 1] += left
    return table


def _chi_square(successes: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """Pearson's chi-square of the groups x (success, failure) table, over the last axis."""
    with np.errstate(all="ignore"):
        pooled = successes.sum(-1, keepdims=True) / trials.sum(-1, keepdims=True)
        expected = trials * pooled
        terms = (successes - expected) ** 2 / (expected * (1.0 - pooled))
    return np.where(np.isfinite(terms), terms, 0.0).sum(-1)


def _statistics(table: np.ndarray) -> dict[str, np.ndarray]:
    """Each measure's test statistic from count tables ``(..., n_groups, 4)`` whose cells are
    ``2 * label + decision``: Pearson's chi-square of group against the measure's outcome, summed
    over its strata (equalized odds: the positives' and the negatives' tables)."""
    n = table.sum(-1)
    pos = table[..., 2] + table[..., 3]
    sel = table[..., 1] + table[..., 3]
    tp = table[..., 3]
    tpr = _chi_square(tp, pos)
    return {"demographic_parity": _chi_square(sel, n),
            "accuracy_parity": _chi_square(table[..., 0] + tp, n),
            "equal_opportunity": tpr,
            "equalized_odds": tpr + _chi_square(table[..., 1], n - pos),
            "predictive_parity": _chi_square(tp, sel)}


def _p_values(y: np.ndarray, p: np.ndarray, codes: np.ndarray, n_groups: int,
              measures: Sequence[str], *, n_permutations: int, seed: Sequence[int]
              ) -> dict[str, float]:
    """Permutation p-value of each measure's "no disparity" (``_STRATA`` says how)."""
    cells = y.astype(np.int64) * 2 + p.astype(np.int64)
    observed = np.zeros((n_groups, 4), dtype=np.int64)
    np.add.at(observed, (codes, cells), 1)
    observed_stat = _statistics(observed)
    out = {}
    for k, scheme in enumerate(dict.fromkeys(_STRATA[m] for m in measures)):
        strata = {"all": np.zeros(len(y), np.int64), "label": y.astype(np.int64),
                  "decision": p.astype(np.int64)}[scheme]
        rng = np.random.default_rng([*seed, k])
        permuted = _statistics(permutation_tables(
            codes, cells, strata, n_groups=n_groups, n_cells=4, n_permutations=n_permutations,
            rng=rng))
        for measure in (m for m in measures if _STRATA[m] == scheme):
            statistic = float(observed_stat[measure])
            # ties count as at least as extreme; the relative 1e-9 absorbs float noise only
            extreme = np.count_nonzero(permuted[measure] >= statistic * (1 - 1e-9))
            out[measure] = (1.0 + extreme) / (1.0 + n_permutations)
    return out


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


def _check_fraction(value: float, what: str, *, low_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) \
            or not (0.0 < value < 1.0 if low_open else 0.0 <= value < 1.0):
        bound = "(0, 1)" if low_open else "[0, 1)"
        raise ValueError(f"{what} must be a number in {bound}, got {value!r}")
    return float(value)


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
    the column of texts), a reference-model name such as ``"compas"``, or ``None`` to audit
    decisions already in ``data`` (``prediction``: a column of decisions; or ``score``: a column
    of scores, thresholded at ``threshold``: 0.5 by default, which scores outside [0, 1] must
    replace). ``sensitive_features``: one column or several (each is audited alone and, with
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
    model = resolve_model(model)
    sensitive = check_columns(data, as_names(sensitive_features, "sensitive_features"),
                              "sensitive")
    if label is not None:
        check_columns(data, [label], "label")
    for name, value in (("prediction", prediction), ("score", score)):
        if value is not None:
            check_columns(data, [value], name)
    n_permutations = check_count(n_permutations, "n_permutations")
    min_group_size = check_count(min_group_size, "min_group_size")
    n_bins = check_count(n_bins, "n_bins", 1)
    confidence = check_confidence(confidence)
    alpha = _check_fraction(alpha, "alpha")
    negligible_difference = _check_fraction(negligible_difference, "negligible_difference",
                                            low_open=False)
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
    estimate), ``ci_low``, ``ci_high`` (Wilson score interval at ``confidence``; NaN for
    ``count`` and where the denominator is 0), ``count`` (rows in the group), ``denominator``
    (the rows the rate is computed over: positives for TPR/FNR, negatives for FPR, predicted
    positives for precision, else ``count``; a small denominator explains a wide interval),
    ``small_group`` (fewer than ``min_group_size`` rows).

    ``disparities``: one row per sensitive feature x class x measure (``DISPARITIES``):
    ``difference`` and ``ratio`` (fairlearn's ``between_groups`` values over the compared
    groups: all groups unless ``exclude_small_groups``), ``high_group`` and ``low_group`` (the
    groups with the largest and smallest value behind the difference), ``test`` (how the
    permutation test of "no disparity" permutes the group labels), ``p_value`` (its p-value:
    every group has the same rate under its null), ``p_value_holm`` (Holm-adjusted over all rows), ``significant``
    (``p_value_holm < alpha``), ``conclusion`` (a key of ``CONCLUSIONS``), ``n_groups`` (groups
    compared), ``small_groups`` (compared groups under ``min_group_size``, with their rows: the
    noisiest part of the difference), ``excluded_groups`` (groups left out by
    ``exclude_small_groups``). A difference has no interval (see the module docstring); the
    intervals of disparities are the signed ``contrasts``.

    ``contrasts``: one row per sensitive feature x class x metric x compared group other than
    the reference: ``metric`` (selection rate, and with labels TPR, FPR, precision and accuracy:
    the rates behind ``DISPARITIES``), ``group``, ``reference_group`` (``reference_groups``, by
    default the largest group), ``value``, ``reference_value``, ``difference`` (``value -
    reference_value``), ``ci_low``, ``ci_high`` (Newcombe interval at ``confidence``),
    ``denominator``, ``reference_denominator``, ``small_group``.

    ``calibration``: per group and score bin: ``bin``, ``bin_low``, ``bin_high``,
    ``mean_score``, ``observed_rate``, ``count``. ``threshold_sweep``: per group, threshold and
    metric: ``threshold``, ``metric``, ``value``. Both are empty without scores.
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "metrics": "per-group selection rate, TPR, FPR and precision with Wilson intervals",
        "disparities": "difference between groups of each disparity measure, with its "
                       "Holm-adjusted permutation p-value",
        "contrasts": "each group minus the reference group, per rate, with Newcombe intervals",
        "calibration": "observed positive rate against mean score per bin, one line per group",
        "thresholds": "selection rate, TPR and FPR of each group as the threshold moves",
    })

    def __init__(self, *, by_group: pd.DataFrame, disparities: pd.DataFrame,
                 contrasts: pd.DataFrame, calibration: pd.DataFrame,
                 threshold_sweep: pd.DataFrame, meta: dict[str, Any]) -> None:
        self.by_group = by_group
        self.disparities = disparities
        self.contrasts = contrasts
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
        parameters = self.meta["parameters"]
        parts = []
        rows = self.disparities[self.disparities["measure"] == "demographic_parity"]
        several = len(self.class_labels) > 1
        for row in rows.itertuples():
            text = (f"{row.sensitive_feature}{f' (class {row.class_label})' if several else ''}: "
                    f"demographic parity difference {row.difference:.3f}")
            if np.isfinite(row.p_value_holm):
                text += f" (Holm-adjusted p = {_format_p(row.p_value_holm)}; {row.conclusion})"
            parts.append(text)
        if parameters["n_permutations"]:
            test = (f"{parameters['n_permutations']:,} permutations of the group labels per "
                    f"test, Holm over {parameters['n_tests']} tests, alpha "
                    f"{parameters['alpha']:g}; negligible below "
                    f"{parameters['negligible_difference']:g}")
        else:
            test = "not tested (n_permutations=0)"
        text = (f"Group fairness audit ({parameters['n_rows']} rows; {test}): " +
                "; ".join(parts) + ".")
        if parameters["small_groups"]:
            verb = "excluded" if parameters["exclude_small_groups"] else "kept and flagged"
            detail = "; ".join(f"{k}: {v}" for k, v in parameters["small_groups"].items())
            text += (f" Groups under {parameters['min_group_size']} rows ({verb}): "
                     f"{detail}.")
        return text

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
        if kind == "contrasts":
            return self._plot_contrasts(ax, sensitive_feature, class_label)
        if kind == "calibration":
            return self._plot_calibration(ax, sensitive_feature, class_label)
        return self._plot_thresholds(ax, sensitive_feature, class_label)

    def _confidence(self) -> str:
        return f"{self.meta['parameters']['confidence'] * 100:g}%"

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
                    if is_small:  # few rows: drawn faint (its interval shows how wide)
                        bar.set_alpha(0.35)
                        bar.set_hatch("//")
                    if not np.isfinite(value):
                        ax.text(position, 0.01, "n/a", rotation=90, ha="center", va="bottom",
                                fontsize=6, color="grey")
            parameters = self.meta["parameters"]
            ticks = [f"{g}{' †' if is_small else ''}\n(n={int(n)})"
                     for g, n, is_small in zip(groups, info["count"], small, strict=True)]
            ax.set_xticks(x, ticks, rotation=30 if len(groups) > 4 else 0,
                          ha="right" if len(groups) > 4 else "center")
            if small.any():
                where = ("left out of" if parameters["exclude_small_groups"] else "kept in")
                ax.text(1.0, 1.0, f"† fewer than {parameters['min_group_size']} rows: faint, "
                        f"{where} the disparities", transform=ax.transAxes, ha="right",
                        va="bottom", fontsize=7, color="grey")
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("rate")
            ax.set_title(f"Group metrics by {feature} (class {label}; bars: "
                         f"{self._confidence()} Wilson intervals)",
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
        fig, ax = axes_or_new(ax, 7.5, 0.35 * len(rows) + 1.6)
        with style():
            y = np.arange(len(rows))[::-1]
            values = rows["difference"].to_numpy(float)
            features = list(dict.fromkeys(rows["sensitive_feature"]))
            colours = {f: c for f, c in zip(features, ["#4C72B0", "#DD8452", "#55A868",
                                                        "#8172B3", "#937860"] * 4, strict=False)}
            significant = rows["significant"].to_numpy(bool)
            bars = ax.barh(y, np.nan_to_num(values),
                           color=[colours[f] for f in rows["sensitive_feature"]])
            for bar, flag in zip(bars, significant, strict=True):
                if not flag:  # not significant: faint
                    bar.set_alpha(0.4)
            finite = values[np.isfinite(values)]  # all NaN when no two groups are comparable
            right = max(0.05, float(finite.max()) if finite.size else 0.05)
            for position, value, row in zip(y, values, rows.itertuples(), strict=True):
                note = (f"p = {_format_p(row.p_value_holm)}, {row.conclusion}"
                        if np.isfinite(row.p_value_holm) else row.conclusion)
                ax.text(np.nan_to_num(value) + right * 0.02, position, note, va="center",
                        fontsize=7)
            ax.set_yticks(y, labels)
            ax.axvline(0, color="black", linewidth=0.8)
            parameters = self.meta["parameters"]
            which = ("groups with at least "
                     f"{parameters['min_group_size']} rows" if parameters["exclude_small_groups"]
                     else "all groups")
            ax.set_xlabel(f"largest minus smallest group value ({which}); intervals: "
                          f"plot('contrasts')")
            ax.set_xlim(0, right * 1.6)
            ax.set_title(f"Disparities (class {label}; p: permutation test of group labels, "
                         f"Holm-adjusted; faint: not significant at {parameters['alpha']:g})")
        return fig

    def _plot_contrasts(self, ax, sensitive_feature, class_label):
        from ..plotting import axes_or_new, style

        rows, feature, label = self._pick(self.contrasts, sensitive_feature, class_label)
        if rows.empty:
            raise ValueError(f"no contrasts for {feature!r}: fewer than two compared groups")
        metrics = list(dict.fromkeys(rows["metric"]))
        groups = list(dict.fromkeys(rows["group"]))
        fig, ax = axes_or_new(ax, 7.0, 0.16 * len(rows) + 0.2 * len(groups) + 1.5)
        with style():
            palette = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3"]
            ticks, positions = [], []
            position = 0.0
            for group in groups:
                part = rows[rows["group"] == group].set_index("metric")
                small = bool(part["small_group"].iloc[0])
                for k, metric in enumerate(metrics):
                    if metric not in part.index:
                        continue
                    entry = part.loc[metric]
                    value = float(entry["difference"])
                    err = interval_errors(np.array([value]), [entry["ci_low"]],
                                          [entry["ci_high"]])
                    ax.errorbar(np.nan_to_num(value), -position, xerr=err, fmt="o",
                                markersize=3, capsize=2, color=palette[k % len(palette)],
                                alpha=0.45 if small else 1.0,
                                label=metric.replace("_", " ") if group == groups[0] else None)
                    position += 1
                ticks.append(f"{group}{' †' if small else ''}")
                positions.append(-(position - (len(part) + 1) / 2))
                position += 0.6
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set_yticks(positions, ticks)
            reference = rows["reference_group"].iloc[0]
            ax.set_xlabel(f"group minus reference group {reference!r} "
                          f"({self._confidence()} Newcombe intervals)")
            ax.set_title(f"Contrasts by {feature} (class {label}; † fewer than "
                         f"{self.meta['parameters']['min_group_size']} rows)")
            ax.legend(frameon=False, fontsize=7, loc="best")
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
                if threshold is not None:  # None: decisions were not a threshold on scores
                    axis.axvline(threshold, color="grey", linestyle=":", linewidth=0.8)
                axis.set_xlabel("decision threshold on score")
                axis.set_ylabel(metric.replace("_", " "))
                axis.set_ylim(-0.02, 1.02)
                axis.set_title(metric.replace("_", " "))
            axes[-1].legend(frameon=False, fontsize=7)
            line = (f"vertical line: threshold {threshold:g}" if threshold is not None
                    else "decisions: highest-probability class")
            fig.suptitle(f"Threshold sweep by {feature} (class {label}; {line}; † dotted: "
                         f"fewer than {self.meta['parameters']['min_group_size']} rows)")
        return fig

    def _repr_html_(self) -> str:
        table = self.disparities.to_html(index=False, border=0, float_format=lambda v: f"{v:.3g}")
        return (f"<div class='explain-audit'>{super()._repr_html_()}"
                f"<details><summary>disparities</summary>{table}</details></div>")


def _format_p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"
