"""The intervals the fairness analyses print, each checked by simulation (bench/RESULTS.md).

* ``wilson_interval``: a rate (a group's rate in ``audit``, the CrowS-Pairs share);
* ``newcombe_interval``: the difference of two independent rates (``audit``'s contrasts);
* ``mean_interval``: the Student-t interval of a mean over few units (counterfactual changes,
  attribution shares per group);
* ``interval_errors``: an interval as matplotlib error-bar lengths.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

__all__ = ["interval_errors", "mean_interval", "newcombe_interval", "wilson_interval"]


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


def interval_errors(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``(2, n)`` error-bar lengths of the interval ``[low, high]`` around ``values`` for
    matplotlib's ``xerr``/``yerr``: negative lengths clip to 0, missing bounds draw none."""
    err = np.vstack([values - np.asarray(low, float), np.asarray(high, float) - values])
    return np.where(np.isfinite(err), np.clip(err, 0, None), 0)
